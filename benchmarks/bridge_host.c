/* bridge_host.c: time the C bridge the way the Pd external uses it.
 *
 *   bridge_host LIBPYTHON BRIDGE MODEL REPEATS
 *
 * Loads libpython globally and the bridge as the external does, then prints
 * one line per measurement: "load SECONDS" (gss_create + gss_load, i.e. a
 * model from disk to ready, Python and TensorFlow start-up included) and
 * "generate SECONDS" per clip (gss_generate + gss_read at 48 kHz).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef int (*create_fn)(void);
typedef int (*load_fn)(int, const char *, const char *);
typedef int (*generate_fn)(int, double);
typedef int (*read_fn)(int, float *, int);
typedef int (*random_z_fn)(int, int);
typedef int (*mode_fn)(int, const char *);
typedef int (*error_fn)(int, char *, int);

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *need(void *lib, const char *name)
{
    void *f = dlsym(lib, name);
    if (!f) { fprintf(stderr, "missing %s\n", name); exit(1); }
    return f;
}

int main(int argc, char **argv)
{
    if (argc != 5) { fprintf(stderr, "usage: bridge_host LIBPYTHON BRIDGE MODEL REPEATS\n"); return 2; }
    if (!dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL)) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    void *lib = dlopen(argv[2], RTLD_NOW);
    if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    create_fn create = (create_fn)need(lib, "gss_create");
    load_fn load = (load_fn)need(lib, "gss_load");
    generate_fn generate = (generate_fn)need(lib, "gss_generate");
    read_fn read = (read_fn)need(lib, "gss_read");
    random_z_fn random_z = (random_z_fn)need(lib, "gss_random_z");
    mode_fn mode = (mode_fn)need(lib, "gss_set_mode");
    error_fn last_error = (error_fn)need(lib, "gss_last_error");
    char message[512];
    int repeats = atoi(argv[4]);
    static float out[48000 * 5];

    double t0 = now();
    int engine = create();
    if (engine <= 0 || load(engine, argv[3], NULL) < 0)
    {
        last_error(engine, message, sizeof message);
        fprintf(stderr, "load failed: %s\n", message);
        return 1;
    }
    printf("load %.6f\n", now() - t0);
    if (mode(engine, "z") < 0 || random_z(engine, 0) < 0)
    {
        last_error(engine, message, sizeof message);
        fprintf(stderr, "setup failed: %s\n", message);
        return 1;
    }
    for (int i = 0; i < repeats + 1; i++)  /* the first one compiles the graph */
    {
        double t = now();
        int n = generate(engine, 48000.0);
        if (n < 0)
        {
            last_error(engine, message, sizeof message);
            fprintf(stderr, "generate failed: %s\n", message);
            return 1;
        }
        read(engine, out, n);
        if (i > 0)
            printf("generate %.6f\n", now() - t);
    }
    fflush(stdout);
    return 0;
}

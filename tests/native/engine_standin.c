/* engine_standin.c: the bridge's C ABI (bridge/ganspacesynth_bridge.h)
 * without Python, for running [ganspacesynth~] under ThreadSanitizer.
 *
 * The real bridge embeds CPython and TensorFlow; under TSan's interceptors
 * they take many minutes to start, so a sanitised run of the external would
 * mostly measure that. This stand-in keeps what the external can observe
 * of the real engine: every call blocks (generation for GSS_STANDIN_MS
 * milliseconds, default 5, loading four times that), models and PCA files
 * are checked on disk, bad indices, NaN and missing files are errors with a
 * message, progress callbacks come several times and cancel when they
 * return nonzero, and results wait for gss_read(). Handles are independent
 * and each is used by one thread at a time, as the header promises.
 *
 * GSS_STANDIN_RACE=1 adds a data race on purpose (gss_load writes a counter
 * from the caller's thread and from a thread of its own, unsynchronised), so
 * that a test can show ThreadSanitizer's reports reach it.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ganspacesynth_bridge.h"

#define MAX_ENGINES 256
#define COMPONENTS 8
#define SAMPLE_RATE 16000
#define CLIP_LENGTH 64000

typedef struct engine {
    int in_use, model, components;
    float coeffs[COMPONENTS], pitch;
    int steps;
    float *result;
    int result_count;
    char error[512];
} engine;

static engine engines[MAX_ENGINES + 1];
static pthread_mutex_t handles = PTHREAD_MUTEX_INITIALIZER;
static char create_error[128];
static int racy_counter;  /* see GSS_STANDIN_RACE above */

static void *bump(void *unused)
{
    (void)unused;
    racy_counter++;
    return NULL;
}

static void race_on_purpose(void)
{
    const char *text = getenv("GSS_STANDIN_RACE");
    pthread_t other;
    if (!text || *text != '1' || pthread_create(&other, NULL, bump, NULL))
        return;
    racy_counter++;
    pthread_join(other, NULL);
}

static void pause_ms(int factor)
{
    const char *text = getenv("GSS_STANDIN_MS");
    long ms = (text && *text ? atol(text) : 5) * factor;
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) && errno == EINTR)
        ;
}

static engine *get(int handle)
{
    return handle > 0 && handle <= MAX_ENGINES && engines[handle].in_use ? &engines[handle] : NULL;
}

static int fail(engine *e, const char *format, const char *detail)
{
    snprintf(e->error, sizeof(e->error), format, detail ? detail : "");
    return GSS_ERROR;
}

static int exists(const char *path)
{
    struct stat st;
    return path && stat(path, &st) == 0;
}

static int keep(engine *e, float *values, int count)
{
    free(e->result);
    e->result = values;
    e->result_count = count;
    return count;
}

int gss_create(void)
{
    int handle = 0, i;
    pthread_mutex_lock(&handles);
    for (i = 1; i <= MAX_ENGINES && !handle; i++)
        if (!engines[i].in_use)
        {
            memset(&engines[i], 0, sizeof(engines[i]));
            engines[i].in_use = 1;
            engines[i].pitch = 60;
            handle = i;
        }
    pthread_mutex_unlock(&handles);
    if (!handle)
        snprintf(create_error, sizeof(create_error), "too many engines");
    return handle;
}

void gss_destroy(int handle)
{
    engine *e = get(handle);
    if (!e)
        return;
    free(e->result);
    pthread_mutex_lock(&handles);
    e->in_use = 0;
    pthread_mutex_unlock(&handles);
}

int gss_load_pca(int handle, const char *path)
{
    engine *e = get(handle);
    if (!e) return GSS_ERROR;
    if (!e->model) return fail(e, "no model loaded: load one first%s", NULL);
    if (strcmp(path, "default") && !exists(path)) return fail(e, "%s: no such PCA file", path);
    e->components = COMPONENTS;
    memset(e->coeffs, 0, sizeof(e->coeffs));
    return GSS_OK;
}

int gss_load(int handle, const char *model, const char *pca)
{
    engine *e = get(handle);
    if (!e) return GSS_ERROR;
    race_on_purpose();
    pause_ms(4);
    if (strcmp(model, "default") && !exists(model)) return fail(e, "%s: no such model folder", model);
    e->model = 1;
    e->components = 0;
    return pca && *pca ? gss_load_pca(handle, pca) : GSS_OK;
}

int gss_unload(int handle)
{
    engine *e = get(handle);
    if (!e) return GSS_ERROR;
    e->model = e->components = 0;
    return GSS_OK;
}

int gss_info(int handle, int *n_components, int *sample_rate, int *length)
{
    engine *e = get(handle);
    if (!e) return GSS_ERROR;
    *n_components = e->components;
    *sample_rate = e->model ? SAMPLE_RATE : 0;
    *length = e->model ? CLIP_LENGTH : 0;
    return GSS_OK;
}

int gss_set_threads(int handle, int threads)
{
    (void)handle;
    return threads >= 1 ? threads : 1;
}

int gss_set_coeffs(int handle, const float *values, int count)
{
    engine *e = get(handle);
    int i;
    if (!e) return GSS_ERROR;
    if (!e->components) return fail(e, "no PCA loaded%s", NULL);
    if (count > e->components) return fail(e, "more coefficients than components%s", NULL);
    for (i = 0; i < count; i++)
        if (!isfinite(values[i])) return fail(e, "coefficients must be finite numbers%s", NULL);
    memset(e->coeffs, 0, sizeof(e->coeffs));
    memcpy(e->coeffs, values, (size_t)count * sizeof(float));
    return GSS_OK;
}

int gss_set_coeff(int handle, int index, float value)
{
    engine *e = get(handle);
    if (!e) return GSS_ERROR;
    if (!e->components) return fail(e, "no PCA loaded%s", NULL);
    if (index < 0 || index >= e->components) return fail(e, "no such component%s", NULL);
    if (!isfinite(value)) return fail(e, "coefficients must be finite numbers%s", NULL);
    e->coeffs[index] = value;
    return GSS_OK;
}

int gss_set_knob(int handle, const char *name, float value)
{
    engine *e = get(handle);
    if (!e) return GSS_ERROR;
    if (!e->components) return fail(e, "no PCA loaded%s", NULL);
    if (name[0] != 'c' || name[1] < '0' || name[1] >= '0' + e->components || name[2])
        return fail(e, "no component called %s", name);
    return gss_set_coeff(handle, name[1] - '0', value);
}

int gss_component_names(int handle, char *buffer, int size)
{
    static const char names[] = "c0 c1 c2 c3 c4 c5 c6 c7";
    engine *e = get(handle);
    if (!e || !e->components) return 0;
    if (size > 0) snprintf(buffer, (size_t)size, "%s", names);
    return (int)strlen(names);
}

int gss_set_z(int handle, const float *values, int count)
{
    engine *e = get(handle);
    int i;
    if (!e) return GSS_ERROR;
    if (!e->model) return fail(e, "no model loaded%s", NULL);
    if (count != 256) return fail(e, "z must have 256 values%s", NULL);
    for (i = 0; i < count; i++)
        if (!isfinite(values[i])) return fail(e, "z must be finite numbers%s", NULL);
    return GSS_OK;
}

int gss_random_z(int handle, int seed)
{
    engine *e = get(handle);
    (void)seed;
    if (!e) return GSS_ERROR;
    return e->model ? GSS_OK : fail(e, "no model loaded%s", NULL);
}

int gss_set_pitch(int handle, float pitch)
{
    engine *e = get(handle);
    if (!e) return GSS_ERROR;
    if (!(pitch >= 60 && pitch <= 72)) return fail(e, "pitch must be one of 60..72%s", NULL);
    e->pitch = pitch;
    return GSS_OK;
}

int gss_set_mode(int handle, const char *mode)
{
    engine *e = get(handle);
    if (!e) return GSS_ERROR;
    if (strcmp(mode, "layer") && strcmp(mode, "z") && strcmp(mode, "latent"))
        return fail(e, "unknown mode %s: choose layer, z or latent", mode);
    return GSS_OK;
}

int gss_clear_steps(int handle)
{
    engine *e = get(handle);
    if (!e) return GSS_ERROR;
    e->steps = 0;
    return GSS_OK;
}

int gss_add_step(int handle, const float *values, int count)
{
    engine *e = get(handle);
    int i;
    if (!e) return GSS_ERROR;
    for (i = 0; i < count; i++)
        if (!isfinite(values[i])) return fail(e, "steps must be finite numbers%s", NULL);
    e->steps++;
    return GSS_OK;
}

int gss_set_hallu(int handle, const char *name, float value)
{
    engine *e = get(handle);
    if (!e) return GSS_ERROR;
    if (!isfinite(value) || value < 0) return fail(e, "%s must be a number >= 0", name);
    return GSS_OK;
}

/* A clip at the requested rate: a tone at the pitch, brighter with coefficient 0. */
static int make_clip(engine *e, double sample_rate, int seconds)
{
    int n = (int)(seconds * sample_rate), i;
    float *clip;
    double f0 = 440.0 * pow(2.0, (e->pitch - 69.0) / 12.0);
    if (!(sample_rate >= 1000 && sample_rate <= 384000))
        return fail(e, "sample rate out of range%s", NULL);
    if (!(clip = malloc((size_t)n * sizeof(float))))
        return fail(e, "out of memory%s", NULL);
    for (i = 0; i < n; i++)
    {
        double t = i / sample_rate;
        clip[i] = (float)(0.3 * sin(2 * M_PI * f0 * t) + 0.05 * e->coeffs[0] * sin(4 * M_PI * f0 * t));
    }
    return keep(e, clip, n);
}

int gss_generate(int handle, double sample_rate)
{
    engine *e = get(handle);
    if (!e) return GSS_ERROR;
    if (!e->model) return fail(e, "no model loaded%s", NULL);
    pause_ms(1);
    return make_clip(e, sample_rate, CLIP_LENGTH / SAMPLE_RATE);
}

/* The whole clip first (it is only a tone), then its start told to part() before
   the wait a real engine would spend on the rest, asking part(NULL, 0) in the
   middle of it whether to go on, as a real engine does between the steps of
   a long clip. */
int gss_generate_parts(int handle, double sample_rate, gss_part_fn part, void *userdata)
{
    engine *e = get(handle);
    int n;
    if (!e) return GSS_ERROR;
    if (!e->model) return fail(e, "no model loaded%s", NULL);
    if ((n = make_clip(e, sample_rate, CLIP_LENGTH / SAMPLE_RATE)) < 0)
        return n;
    if (part && part(userdata, e->result, (int)(0.09 * sample_rate)))
        return fail(e, "cancelled%s", NULL), GSS_CANCELLED;
    pause_ms(1);
    if (part && part(userdata, NULL, 0))
        return fail(e, "cancelled%s", NULL), GSS_CANCELLED;
    pause_ms(1);
    return n;
}

/* Work in four parts with a progress call after each; cancelled when it says so. */
static int work(gss_progress_fn progress, void *userdata)
{
    int part;
    for (part = 1; part <= 4; part++)
    {
        pause_ms(1);
        if (progress && progress(userdata, part / 4.0f))
            return GSS_CANCELLED;
    }
    return GSS_OK;
}

int gss_hallucinate(int handle, double sample_rate, gss_progress_fn progress, void *userdata)
{
    engine *e = get(handle);
    if (!e) return GSS_ERROR;
    if (!e->model) return fail(e, "no model loaded%s", NULL);
    if (!e->components) return fail(e, "no PCA loaded%s", NULL);
    if (!e->steps) return fail(e, "a composition needs at least one step%s", NULL);
    if (work(progress, userdata) == GSS_CANCELLED)
        return fail(e, "cancelled%s", NULL), GSS_CANCELLED;
    return make_clip(e, sample_rate, 2 + e->steps / 4);
}

int gss_find(int handle, const char *path, int steps, int layer_steps, gss_progress_fn progress,
             void *userdata)
{
    engine *e = get(handle);
    float *found;
    int i;
    (void)steps, (void)layer_steps;
    if (!e) return GSS_ERROR;
    if (!e->model) return fail(e, "no model loaded%s", NULL);
    if (!exists(path)) return fail(e, "%s: cannot read this audio file", path);
    if (work(progress, userdata) == GSS_CANCELLED)
        return fail(e, "cancelled%s", NULL), GSS_CANCELLED;
    if (!(found = calloc(2 + COMPONENTS, sizeof(float))))
        return fail(e, "out of memory%s", NULL);
    found[0] = 1.5f, found[1] = e->pitch;
    for (i = 0; i < e->components; i++)
        found[2 + i] = e->coeffs[i] = 0.5f;
    return keep(e, found, 2 + e->components);
}

int gss_read(int handle, float *out, int count)
{
    engine *e = get(handle);
    int n;
    if (!e || !e->result) return 0;
    n = count < e->result_count ? count : e->result_count;
    memcpy(out, e->result, (size_t)n * sizeof(float));
    return n;
}

int gss_last_error(int handle, char *buffer, int size)
{
    engine *e = get(handle);
    const char *text = e ? e->error : create_error;
    if (size > 0) snprintf(buffer, (size_t)size, "%s", text);
    return (int)strlen(text);
}

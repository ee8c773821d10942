/* ganspacesynth~: play GANSpaceSynth in Pd without ever blocking the audio.
 *
 * Threads. Pd's scheduler thread runs this object's methods, its clocks and
 * its perform routine. Everything that touches the engine (Python,
 * TensorFlow) runs on one worker thread per object, fed by a job queue. The
 * worker never calls Pd's API: it posts replies to a queue that a clock on
 * Pd's thread polls, and hands finished clips to the perform routine through
 * an atomic slot (player.c). The perform routine takes no lock, calls no
 * Python, allocates nothing and never waits.
 *
 * Lifetime. The object and its worker share a reference-counted `shared`.
 * Freeing the object marks it detached and returns at once; the worker
 * finishes (or, for Hallu, abandons) its job, destroys its engine and drops
 * the last reference. Nothing on Pd's thread ever joins the worker.
 *
 * The engine is the bridge library (bridge/ganspacesynth_bridge.h), loaded
 * once from the folder this external was loaded from.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* dladdr */
#endif
#include "m_pd.h"
#include "player.h"
#include "ganspacesynth_bridge.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif

#ifdef __APPLE__
#define GSS_BRIDGE_FILE "libganspacesynth_bridge.dylib"
#else
#define GSS_BRIDGE_FILE "libganspacesynth_bridge.so"
#endif
#ifndef GSS_LIBPYTHON
#define GSS_LIBPYTHON ""
#endif

#define POLL_MS 2           /* how often a busy object looks for replies */
#define MAX_JOBS 1024       /* beyond this a message is refused, not queued */
#define WORKER_STACK (8 << 20)  /* Python and TensorFlow want more than macOS's 512 kB */
#define WORKER_NICE 10      /* how much nicer than Pd the worker and TensorFlow's threads run,
                               unless GANSPACESYNTH_WORKER_NICE says otherwise */
#define WORKER_IDLE (-1)    /* GANSPACESYNTH_WORKER_NICE=idle: Linux's SCHED_IDLE (see worker_nice) */
#define MAX_THREADS 1024    /* the most compute threads `threads` accepts */
#define PERFORM_CPU_BUDGET_US 50  /* `stats` counts the blocks whose own CPU time passed this:
                                    a virtual machine's thread clock passes it now and then for
                                    a block that computed far less, so the count says more than
                                    the worst alone */

/* ------------------------------------------------------------------ */
/* the bridge, loaded once per Pd process                              */

static struct {
    int (*create)(void);
    void (*destroy)(int);
    int (*load)(int, const char *, const char *);
    int (*load_pca)(int, const char *);
    int (*unload)(int);
    int (*info)(int, int *, int *, int *);
    int (*set_threads)(int, int);
    int (*set_coeffs)(int, const float *, int);
    int (*set_coeff)(int, int, float);
    int (*set_knob)(int, const char *, float);
    int (*component_names)(int, char *, int);
    int (*set_z)(int, const float *, int);
    int (*random_z)(int, int);
    int (*set_pitch)(int, float);
    int (*set_mode)(int, const char *);
    int (*clear_steps)(int);
    int (*add_step)(int, const float *, int);
    int (*set_hallu)(int, const char *, float);
    int (*generate)(int, double);
    int (*generate_parts)(int, double, gss_part_fn, void *);
    int (*hallucinate)(int, double, gss_progress_fn, void *);
    int (*find)(int, const char *, int, int, gss_progress_fn, void *);
    int (*read)(int, float *, int);
    int (*last_error)(int, char *, int);
} bridge;
static char bridge_error[MAXPDSTRING + 200];  /* empty when the bridge loaded */

static void bridge_load(void)
{
    char path[MAXPDSTRING];
    const char *libpython = getenv("GANSPACESYNTH_LIBPYTHON");
    void *lib;
    Dl_info self;
    if (!libpython || !*libpython)
        libpython = GSS_LIBPYTHON;
        /* numpy's extension modules expect libpython's symbols in the global
        namespace; Pd loads externals (and so the bridge) with RTLD_LOCAL */
    if (*libpython && !dlopen(libpython, RTLD_NOW | RTLD_GLOBAL))
    {
        snprintf(bridge_error, sizeof(bridge_error),
            "cannot load Python's library (%s); set GANSPACESYNTH_LIBPYTHON", dlerror());
        return;
    }
    if (!dladdr((void *)bridge_load, &self) || !self.dli_fname)
    {
        snprintf(bridge_error, sizeof(bridge_error), "cannot tell where ganspacesynth~ was loaded from");
        return;
    }
    snprintf(path, sizeof(path), "%s", self.dli_fname);
    if (strrchr(path, '/'))
        *strrchr(path, '/') = 0;
    else
        snprintf(path, sizeof(path), ".");
    if (strlen(path) + strlen(GSS_BRIDGE_FILE) + 2 > sizeof(path))
    {
        snprintf(bridge_error, sizeof(bridge_error), "path of ganspacesynth~ too long");
        return;
    }
    strcat(path, "/");
    strcat(path, GSS_BRIDGE_FILE);
    if (!(lib = dlopen(path, RTLD_NOW | RTLD_LOCAL)))
    {
        snprintf(bridge_error, sizeof(bridge_error), "cannot load the engine bridge: %s", dlerror());
        return;
    }
#define GET(field, name) \
    if (!(*(void **)&bridge.field = dlsym(lib, name))) { \
        snprintf(bridge_error, sizeof(bridge_error), \
            "%s: no symbol %s: bridge and external do not match", path, name); \
        return; }
    GET(create, "gss_create") GET(destroy, "gss_destroy") GET(load, "gss_load")
    GET(load_pca, "gss_load_pca") GET(unload, "gss_unload") GET(info, "gss_info")
    GET(set_threads, "gss_set_threads") GET(set_coeffs, "gss_set_coeffs") GET(set_coeff, "gss_set_coeff")
    GET(set_knob, "gss_set_knob") GET(component_names, "gss_component_names") GET(find, "gss_find")
    GET(set_z, "gss_set_z") GET(random_z, "gss_random_z") GET(set_pitch, "gss_set_pitch")
    GET(set_mode, "gss_set_mode") GET(clear_steps, "gss_clear_steps")
    GET(add_step, "gss_add_step") GET(set_hallu, "gss_set_hallu")
    GET(generate, "gss_generate") GET(generate_parts, "gss_generate_parts")
    GET(hallucinate, "gss_hallucinate")
    GET(read, "gss_read") GET(last_error, "gss_last_error")
#undef GET
}

/* ------------------------------------------------------------------ */
/* jobs (Pd -> worker) and replies (worker -> Pd)                      */

typedef enum {
    J_LOAD, J_PCA, J_UNLOAD, J_COEFFS, J_COEFF, J_Z, J_ZRANDOM, J_PITCH, J_MODE,
    J_GENERATE, J_STEPS_CLEAR, J_STEP, J_HALLU_SET, J_HALLUCINATE, J_THREADS, J_KNOB, J_FIND
} job_kind;

typedef struct job {
    struct job *next;
    job_kind kind;
    char *text, *text2;     /* paths, mode, setting name, knob name */
    float *values;          /* coefficients, z, a step */
    int count;              /* of values; find's layer steps */
    float number;           /* coeff or knob value, pitch, seed, setting value */
    int index;              /* coeff index, seed, threads; find's steps; generate: stream */
    double sample_rate;
    t_symbol *array;        /* only compared and handed back, never gensym'd here */
} job;

typedef enum {
    R_LOADING, R_LOADED, R_READY, R_PROGRESS, R_HALLU, R_ERROR, R_THREADS, R_NAMES, R_FOUND
} reply_kind;

typedef struct reply {
    struct reply *next;
    reply_kind kind;
    char *text;             /* an error; the component names */
    float numbers[3];
    float *values;          /* find's: distance, pitch, coefficients */
    int count;
    gss_clip *clip;
    t_symbol *array;
} reply;

typedef struct shared {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    job *jobs, *last_job;
    int njobs;
    reply *replies, *last_reply;
    int busy;               /* the worker is running a job */
    int detached;           /* the object is gone: drop everything */
    int refs;
    atomic_int cancel;      /* read by Hallu's progress callback */
    gss_handoff handoff;
    unsigned long sounds;   /* the worker's only: clips generated, the number of the next sound */
    int pd_gone;            /* Pd's thread only: the object was freed */
} shared;

static void job_free(job *j)
{
    if (!j)
        return;
    free(j->text);
    free(j->text2);
    free(j->values);
    free(j);
}

static void reply_free(reply *r)
{
    if (!r)
        return;
    free(r->text);
    free(r->values);
    gss_clip_free(r->clip);
    free(r);
}

static void shared_release(shared *sh)
{
    int last;
    pthread_mutex_lock(&sh->lock);
    last = (--sh->refs == 0);
    pthread_mutex_unlock(&sh->lock);
    if (!last)
        return;
    while (sh->jobs)
    {
        job *j = sh->jobs;
        sh->jobs = j->next;
        job_free(j);
    }
    while (sh->replies)
    {
        reply *r = sh->replies;
        sh->replies = r->next;
        reply_free(r);
    }
    gss_clip_free(gss_handoff_take(&sh->handoff));
    pthread_cond_destroy(&sh->wake);
    pthread_mutex_destroy(&sh->lock);
    free(sh);
}

/* worker side: queue a reply unless nobody will ever read it */
static void post_reply(shared *sh, reply *r)
{
    pthread_mutex_lock(&sh->lock);
    if (sh->detached)
    {
        pthread_mutex_unlock(&sh->lock);
        reply_free(r);
        return;
    }
        /* progress only matters as its latest value */
    if (r->kind == R_PROGRESS && sh->last_reply && sh->last_reply->kind == R_PROGRESS)
    {
        sh->last_reply->numbers[0] = r->numbers[0];
        pthread_mutex_unlock(&sh->lock);
        reply_free(r);
        return;
    }
    r->next = NULL;
    if (sh->last_reply)
        sh->last_reply->next = r;
    else
        sh->replies = r;
    sh->last_reply = r;
    pthread_mutex_unlock(&sh->lock);
}

static reply *reply_new(reply_kind kind)
{
    reply *r = calloc(1, sizeof(reply));
    if (r)
        r->kind = kind;
    return r;
}

static void post_simple(shared *sh, reply_kind kind, float a, float b, float c)
{
    reply *r = reply_new(kind);
    if (!r)
        return;
    r->numbers[0] = a, r->numbers[1] = b, r->numbers[2] = c;
    post_reply(sh, r);
}

static void post_error(shared *sh, const char *fmt, ...)
{
    char text[2000];
    va_list ap;
    reply *r = reply_new(R_ERROR);
    if (!r)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    r->text = strdup(text);
    post_reply(sh, r);
}

/* ------------------------------------------------------------------ */
/* exiting while workers are inside the engine                         */

/* Pd 0.53 quits by calling exit() straight from the `pd quit` message,
   objects still alive. exit() then runs TensorFlow's static destructors,
   which crash a worker still inside a TensorFlow call. So an atexit handler,
   registered after the engine has loaded its libraries (handlers run in
   reverse order of registration), stops new engine calls and waits for the
   running ones. */

#define EXIT_GRACE_S 10

static pthread_mutex_t engine_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t engine_idle = PTHREAD_COND_INITIALIZER;
static int engine_calls;            /* workers inside the bridge now */
static atomic_int quitting;

/* 0 once Pd is exiting: the caller must not touch the engine */
static int engine_enter(void)
{
    int ok;
    pthread_mutex_lock(&engine_lock);
    if ((ok = !atomic_load(&quitting)))
        engine_calls++;
    pthread_mutex_unlock(&engine_lock);
    return ok;
}

static void engine_leave(void)
{
    pthread_mutex_lock(&engine_lock);
    if (--engine_calls == 0)
        pthread_cond_broadcast(&engine_idle);
    pthread_mutex_unlock(&engine_lock);
}

/* a worker that may no longer call the engine waits here for the end */
__attribute__((noreturn)) static void park_until_exit(void)
{
    pthread_mutex_lock(&engine_lock);
    for (;;)
        pthread_cond_wait(&engine_idle, &engine_lock);
}

static void wait_for_engine_at_exit(void)
{
    struct timespec deadline;
    int busy;
    pthread_mutex_lock(&engine_lock);
    atomic_store(&quitting, 1);  /* also stops a Hallu at its next point */
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += EXIT_GRACE_S;
    while (engine_calls > 0)
        if (pthread_cond_timedwait(&engine_idle, &engine_lock, &deadline) == ETIMEDOUT)
            break;
    busy = engine_calls;
    pthread_mutex_unlock(&engine_lock);
    if (busy)
    {
            /* still computing after the grace period: leaving without the
            remaining exit handlers beats crashing in them */
        fprintf(stderr, "ganspacesynth~: the engine is still busy after %d s; exiting without cleanup\n",
            EXIT_GRACE_S);
        fflush(NULL);
        _exit(0);
    }
}

/* ------------------------------------------------------------------ */
/* the worker thread                                                   */

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static void post_engine_error(shared *sh, int engine)
{
    char text[2000];
    bridge.last_error(engine, text, sizeof(text));
    post_error(sh, "%s", *text ? text : "the engine failed without saying why (see stderr)");
}

static int progress_callback(void *userdata, float fraction)
{
    shared *sh = userdata;
    post_simple(sh, R_PROGRESS, fraction, 0, 0);
    return atomic_load(&sh->cancel) || atomic_load(&quitting);
}

/* `loaded N SR LENGTH`, then `names ...` when the PCA's components have names */
static void post_loaded(shared *sh, int engine)
{
    int n = 0, sr = 0, length = 0, size;
    reply *r;
    if (bridge.info(engine, &n, &sr, &length) < 0)
    {
        post_engine_error(sh, engine);
        return;
    }
    post_simple(sh, R_LOADED, n, sr, length);
    if ((size = bridge.component_names(engine, NULL, 0)) < 0)
        post_engine_error(sh, engine);
    else if (size > 0 && (r = reply_new(R_NAMES)))
    {
        if (!(r->text = malloc(size + 1)))
        {
            reply_free(r);
            post_error(sh, "out of memory for the component names");
            return;
        }
        bridge.component_names(engine, r->text, size + 1);
        post_reply(sh, r);
    }
}

/* `found DISTANCE PITCH C0 C1 ...` from gss_find's count values */
static void post_found(shared *sh, int engine, int count)
{
    reply *r = reply_new(R_FOUND);
    if (!r || !(r->values = malloc((count > 0 ? count : 1) * sizeof(float))))
    {
        reply_free(r);
        post_error(sh, "find: out of memory for the result");
        return;
    }
    r->count = bridge.read(engine, r->values, count);
    post_reply(sh, r);
}

/* the result of gss_generate / gss_hallucinate, copied into a new clip */
static gss_clip *fetch(shared *sh, int engine, int length)
{
    gss_clip *clip = gss_clip_new(length);
    if (!clip)
    {
        post_error(sh, "out of memory for a clip of %d samples", length);
        return NULL;
    }
    clip->length = bridge.read(engine, clip->samples, length);
    return clip;
}

/* worker side: is a newer generate waiting? Then the clip in hand is wanted no more. */
static int generate_waiting(shared *sh)
{
    job *p;
    int waiting = 0;
    pthread_mutex_lock(&sh->lock);
    for (p = sh->jobs; p && !waiting; p = p->next)
        waiting = p->kind == J_GENERATE;
    pthread_mutex_unlock(&sh->lock);
    return waiting;
}

/* One sound being generated in parts (`stream 1`): each part is offered as
   soon as the engine has it, the first as a new sound, the later ones (the
   whole clip last) as its continuation. */
typedef struct streaming {
    shared *sh;
    unsigned long sound;
    int parts_offered;
    int superseded;         /* abandoned for a newer generate */
} streaming;

static void offer(streaming *st, gss_clip *clip)
{
    clip->sound = st->sound;
    clip->from_start = 1;
    if (st->parts_offered++)
        gss_handoff_extend(&st->sh->handoff, clip);
    else
        gss_handoff_put(&st->sh->handoff, clip);
}

/* count 0: the engine asks, between the steps of a long clip or part, whether to go on */
static int part_callback(void *userdata, const float *samples, int count)
{
    streaming *st = userdata;
    gss_clip *clip;
    if (generate_waiting(st->sh) || atomic_load(&quitting))
        return st->superseded = 1;  /* skip the rest: a newer sound is on its way */
    if (count > 0 && (clip = gss_clip_new(count)))
    {
        memcpy(clip->samples, samples, (size_t)count * sizeof(float));
        clip->partial = 1;
        offer(st, clip);
    }
    return 0;
}

/* `generate`: the clip whole (`stream 0`), or in parts that play while the rest
   is computed (`stream 1`); 0 when a newer generate made it pointless */
static int generate(shared *sh, int engine, job *j)
{
    streaming st = {sh, ++sh->sounds, 0, 0};
    double start = now_ms();
    gss_clip *clip;
    int rc = j->index ? bridge.generate_parts(engine, j->sample_rate, part_callback, &st)
                      : bridge.generate(engine, j->sample_rate);
    if (rc == GSS_CANCELLED && st.superseded)
        return 0;
    if (rc < 0 || !(clip = fetch(sh, engine, rc)))
        return rc;
    if (j->index)
        offer(&st, clip);
    else
        gss_handoff_put(&sh->handoff, clip);
    post_simple(sh, R_READY, now_ms() - start, 0, 0);
    return rc;
}

/* returns the engine's status: < 0 for an error */
static int run_job(shared *sh, int engine, job *j)
{
    int rc = GSS_OK;
    gss_clip *clip;
    reply *r;
    switch (j->kind)
    {
    case J_LOAD:
        post_simple(sh, R_LOADING, 0, 0, 0);
        if ((rc = bridge.load(engine, j->text, j->text2)) >= 0)
            post_loaded(sh, engine);
        break;
    case J_PCA:
        if ((rc = bridge.load_pca(engine, j->text)) >= 0)
            post_loaded(sh, engine);
        break;
    case J_UNLOAD: rc = bridge.unload(engine); break;
    case J_COEFFS: rc = bridge.set_coeffs(engine, j->values, j->count); break;
    case J_COEFF: rc = bridge.set_coeff(engine, j->index, j->number); break;
    case J_KNOB: rc = bridge.set_knob(engine, j->text, j->number); break;
    case J_Z: rc = bridge.set_z(engine, j->values, j->count); break;
    case J_ZRANDOM: rc = bridge.random_z(engine, j->index); break;
    case J_PITCH: rc = bridge.set_pitch(engine, j->number); break;
    case J_MODE: rc = bridge.set_mode(engine, j->text); break;
    case J_STEPS_CLEAR: rc = bridge.clear_steps(engine); break;
    case J_STEP: rc = bridge.add_step(engine, j->values, j->count); break;
    case J_HALLU_SET: rc = bridge.set_hallu(engine, j->text, j->number); break;
    case J_FIND:
        if ((rc = bridge.find(engine, j->text, j->index, j->count, progress_callback, sh)) >= 0)
            post_found(sh, engine, rc);
        break;
    case J_THREADS:
        if ((rc = bridge.set_threads(engine, j->index)) >= 0)
            post_simple(sh, R_THREADS, rc, 0, 0);
        break;
    case J_GENERATE: rc = generate(sh, engine, j); break;
    case J_HALLUCINATE:
        if ((rc = bridge.hallucinate(engine, j->sample_rate, progress_callback, sh)) >= 0
            && (clip = fetch(sh, engine, rc)))
        {
            if (!(r = reply_new(R_HALLU)))
            {
                gss_clip_free(clip);
                break;
            }
            r->clip = clip;
            r->array = j->array;
            post_reply(sh, r);
        }
        break;
    }
    if (rc < 0 && !atomic_load(&sh->cancel))
        post_engine_error(sh, engine);
    return rc;
}

/* How much nicer than Pd the worker runs: WORKER_NICE, or 0..19 from
   GANSPACESYNTH_WORKER_NICE. 0 is for a Pd with no deadline, `pd -batch`
   rendering to a file say: its thread never sleeps, and beside any other
   busy process a worker 10 nicer gets a tenth of a core. "idle" (WORKER_IDLE)
   is for a Pd without real-time priority at short periods, where nice does
   not keep the engine out of its way (the full size generating at one
   thread, 64-frame periods: JACK counted 759 xruns of Pd in a minute at
   nice 10, 784 at nice 19, against 7 without generating): Linux preempts a
   SCHED_IDLE thread as soon as a normal one wakes on its core (155, against 13).
   It is not the default because beside any other busy process a SCHED_IDLE
   engine gets next to no CPU at all. Only the worker
   reads it (printing from there is safe: stderr, not Pd's console). */
static int worker_nice(void)
{
    const char *text = getenv("GANSPACESYNTH_WORKER_NICE");
    char *end;
    long value;
    if (!text || !*text)
        return WORKER_NICE;
    if (!strcmp(text, "idle"))
        return WORKER_IDLE;
    value = strtol(text, &end, 10);
    if (*end || value < 0 || value > 19)
    {
        fprintf(stderr, "ganspacesynth~: GANSPACESYNTH_WORKER_NICE must be a whole number from 0 to 19 "
            "or idle, not \"%s\": the worker runs %d nicer than Pd\n", text, WORKER_NICE);
        return WORKER_NICE;
    }
    return (int)value;
}

/* The worker, and with it every thread it creates (Python's, TensorFlow's
   compute pools: a new Linux thread inherits its creator's nice value and
   scheduling policy), runs WORKER_NICE nicer than Pd's thread, so that the
   engine yields the cores to Pd whenever Pd wants them. On Linux nice is per
   thread: set it on the worker's own thread id, from the worker, before it
   starts the engine. "idle" runs it 19 nicer and in SCHED_IDLE. */
static void lower_own_priority(void)
{
#ifdef __linux__
    id_t tid = (id_t)syscall(SYS_gettid);
    int now, target, nicer = worker_nice(), idle = nicer == WORKER_IDLE;
    if (idle)
        nicer = 19;
    errno = 0;
    now = getpriority(PRIO_PROCESS, tid);
    if (errno || !nicer)
        return;
    target = now + nicer > 19 ? 19 : now + nicer;
    if (setpriority(PRIO_PROCESS, tid, target))
        fprintf(stderr, "ganspacesynth~: cannot lower the worker's priority: %s\n", strerror(errno));
    if (idle)
    {
        struct sched_param none = {0};
        if (sched_setscheduler((pid_t)tid, SCHED_IDLE, &none))
            fprintf(stderr, "ganspacesynth~: cannot run the worker in SCHED_IDLE (it runs at nice %d): %s\n",
                target, strerror(errno));
    }
#endif
}

static void *worker_main(void *arg)
{
    shared *sh = arg;
    int engine = 0, generated = 0;
    char start_error[2000];
    *start_error = 0;
    lower_own_priority();
    for (;;)
    {
        job *j;
        pthread_mutex_lock(&sh->lock);
        while (!sh->jobs && !sh->detached)
            pthread_cond_wait(&sh->wake, &sh->lock);
        if (sh->detached)
        {
            pthread_mutex_unlock(&sh->lock);
            break;
        }
        j = sh->jobs;
        if (!(sh->jobs = j->next))
            sh->last_job = NULL;
        sh->njobs--;
        sh->busy = 1;
        pthread_mutex_unlock(&sh->lock);

            /* the engine starts with the first job, so that creating the
            object costs Pd nothing; the first start also starts Python */
        if (*bridge_error)
            post_error(sh, "%s", bridge_error);
        else if (!engine_enter())
        {
            job_free(j);
            park_until_exit();
        }
        else
        {
            int fresh = 0;  /* the engine may have loaded new libraries */
            if (!engine && !*start_error)
            {
                if ((engine = bridge.create()))
                    fresh = 1;
                else
                {
                    bridge.last_error(0, start_error, sizeof(start_error));
                    if (!*start_error)
                        snprintf(start_error, sizeof(start_error),
                            "the engine could not start (see stderr)");
                }
            }
            if (!engine)
                post_error(sh, "%s", start_error);
            else if (run_job(sh, engine, j) >= 0)
                fresh |= j->kind == J_LOAD || j->kind == J_PCA || j->kind == J_FIND
                    || ((j->kind == J_GENERATE || j->kind == J_HALLUCINATE) && !generated++);
                /* keep the guard in front of the destructors they registered */
            if (fresh)
                atexit(wait_for_engine_at_exit);
            engine_leave();
        }
        job_free(j);

        pthread_mutex_lock(&sh->lock);
        sh->busy = 0;
        pthread_mutex_unlock(&sh->lock);
    }
    if (engine)
    {
        if (!engine_enter())
        {
            shared_release(sh);
            park_until_exit();
        }
        bridge.destroy(engine);
        engine_leave();
    }
    shared_release(sh);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* the Pd object                                                       */

static t_class *ganspacesynth_class;

typedef struct ganspacesynth {
    t_object obj;
    t_outlet *replies;
    t_canvas *canvas;
    shared *sh;
    int worker_ok;
    t_clock *poll;
    int polling;
    t_clock *collector;
    gss_player player;
    float xfade_ms;
    int autogenerate;
    int stream;             /* generate in parts that play before the clip is whole */
    /* perform timing, for `stats`: wall-clock time, and the CPU time of
    Pd's thread itself (what perform computed, without preemption) */
    double perform_max_us, perform_total_us;
    double perform_cpu_max_us, perform_cpu_total_us;
    unsigned long perform_count;
    unsigned long perform_cpu_slow;  /* blocks over PERFORM_CPU_BUDGET_US of CPU time */
} t_ganspacesynth;

static void reply_words(t_ganspacesynth *x, const char *selector, const char *text)
{
    /* one symbol per word, so that [print] shows the text as it is and
       [route error] gets a plain message */
    t_atom *atoms;
    int n = 0, max = 1;
    const char *c;
    char *copy, *word, *save;
    for (c = text; *c; c++)
        max += (*c == ' ');
    if (!(atoms = getbytes(max * sizeof(t_atom))) || !(copy = strdup(text)))
    {
        if (atoms)
            freebytes(atoms, max * sizeof(t_atom));
        outlet_anything(x->replies, gensym(selector), 0, NULL);
        return;
    }
    for (word = strtok_r(copy, " ", &save); word && n < max; word = strtok_r(NULL, " ", &save), n++)
        SETSYMBOL(&atoms[n], gensym(word));  /* the macro evaluates its first argument twice */
    outlet_anything(x->replies, gensym(selector), n, atoms);
    free(copy);
    freebytes(atoms, max * sizeof(t_atom));
}

/* an error found on Pd's thread or delivered from the worker */
static void reply_error(t_ganspacesynth *x, const char *fmt, ...)
{
    char text[2000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    pd_error(x, "ganspacesynth~: %s", text);
    reply_words(x, "error", text);
}

static void start_polling(t_ganspacesynth *x)
{
        /* not clock_delay on every message: a stream of messages would keep
        pushing the poll into the future */
    if (!x->polling)
    {
        x->polling = 1;
        clock_delay(x->poll, POLL_MS);
    }
}

static const char *kind_name(job_kind kind)
{
    static const char *names[] = {"load", "pca", "unload", "coeffs", "coeff", "z-array",
        "z-random", "pitch", "mode", "generate", "steps-clear", "step", "hallu setting",
        "hallucinate", "threads", "knob", "find"};
    return names[kind];
}

static int coalescable(job_kind kind)
{
    return kind == J_COEFFS || kind == J_Z || kind == J_ZRANDOM || kind == J_PITCH
        || kind == J_MODE;
}

/* Queue a job for the worker (taking ownership of j); 0 if it was refused
   with an error reply, after which the object may no longer exist (a reply
   can delete it through dynamic patching), so callers return at once. A new generate
   replaces one still waiting (latest wins), and a setter replaces the same
   setter waiting just before it, generates aside: a slider that moves faster
   than the engine costs nothing. */
static int post_job(t_ganspacesynth *x, job *j)
{
    shared *sh = x->sh;
    job *p, *prev, *keep = NULL;
    if (!x->worker_ok)
    {
        reply_error(x, "%s: the worker thread could not be started", kind_name(j->kind));
        job_free(j);
        return 0;
    }
    pthread_mutex_lock(&sh->lock);
    if (j->kind == J_GENERATE)
    {
        for (prev = NULL, p = sh->jobs; p; prev = p, p = p->next)
            if (p->kind == J_GENERATE)
            {
                if (prev)
                    prev->next = p->next;
                else
                    sh->jobs = p->next;
                if (sh->last_job == p)
                    sh->last_job = prev;
                sh->njobs--;
                job_free(p);
                break;  /* there is never more than one */
            }
    }
    else if (coalescable(j->kind))
    {
            /* the last job that is not a generate */
        for (p = sh->jobs; p; p = p->next)
            if (p->kind != J_GENERATE)
                keep = p;
        if (keep && keep->kind == j->kind)
        {
            for (p = keep->next; p && p->kind == J_GENERATE; p = p->next)
                ;
            if (!p)  /* nothing but generates after it */
            {
                job *next = keep->next;
                free(keep->text); free(keep->text2); free(keep->values);
                j->next = next;
                *keep = *j;
                free(j);
                pthread_mutex_unlock(&sh->lock);
                start_polling(x);
                return 1;
            }
        }
    }
    if (sh->njobs >= MAX_JOBS)
    {
        pthread_mutex_unlock(&sh->lock);
        reply_error(x, "%s: dropped, %d messages are already waiting for the engine",
            kind_name(j->kind), MAX_JOBS);
        job_free(j);
        return 0;
    }
    j->next = NULL;
    if (sh->last_job)
        sh->last_job->next = j;
    else
        sh->jobs = j;
    sh->last_job = j;
    sh->njobs++;
    pthread_cond_signal(&sh->wake);
    pthread_mutex_unlock(&sh->lock);
    start_polling(x);
    return 1;
}

static job *job_new(t_ganspacesynth *x, job_kind kind)
{
    job *j = calloc(1, sizeof(job));
    if (!j)
        reply_error(x, "%s: out of memory", kind_name(kind));
    else
        j->kind = kind;
    return j;
}

static void generate_now(t_ganspacesynth *x)
{
    job *j = job_new(x, J_GENERATE);
    if (!j)
        return;
    j->sample_rate = sys_getsr();
    j->index = x->stream;
    post_job(x, j);
}

/* after a message that changes the sound */
static void post_change(t_ganspacesynth *x, job *j)
{
    if (post_job(x, j) && x->autogenerate)
        generate_now(x);
}

/* ---- writing clips into arrays (Pd's thread) ---- */

static int write_array(t_ganspacesynth *x, t_symbol *name, const gss_clip *clip)
{
    t_garray *array = (t_garray *)pd_findbyclass(name, garray_class);
    t_word *words;
    int size, i;
    if (!array)
    {
        reply_error(x, "no array named '%s'", name->s_name);
        return 0;
    }
    garray_resize_long(array, clip->length);
    if (!garray_getfloatwords(array, &size, &words) || size < clip->length)
    {
        reply_error(x, "array '%s' cannot hold %d samples", name->s_name, clip->length);
        return 0;
    }
    for (i = 0; i < clip->length; i++)
        words[i].w_float = clip->samples[i];
    garray_redraw(array);
    {
        t_atom a[2];
        SETSYMBOL(&a[0], name);
        SETFLOAT(&a[1], clip->length);
        outlet_anything(x->replies, gensym("written"), 2, a);
    }
    return 1;
}

/* ---- the clocks ---- */

static void deliver(t_ganspacesynth *x, reply *r)
{
    t_atom a[3];
    switch (r->kind)
    {
    case R_LOADING:
        outlet_anything(x->replies, gensym("loading"), 0, NULL);
        break;
    case R_LOADED:
        SETFLOAT(&a[0], r->numbers[0]);
        SETFLOAT(&a[1], r->numbers[1]);
        SETFLOAT(&a[2], r->numbers[2]);
        outlet_anything(x->replies, gensym("loaded"), 3, a);
        break;
    case R_READY:
            /* the new clip becomes the current one before anyone hears of
            it, so that `write` right after `ready` writes it even with DSP off */
        gss_player_swap(&x->player, &x->sh->handoff, 1);
        SETFLOAT(&a[0], r->numbers[0]);
        outlet_anything(x->replies, gensym("ready"), 1, a);
        break;
    case R_PROGRESS:
        SETFLOAT(&a[0], r->numbers[0]);
        outlet_anything(x->replies, gensym("progress"), 1, a);
        break;
    case R_HALLU:
        write_array(x, r->array, r->clip);
        break;
    case R_ERROR:
        reply_error(x, "%s", r->text ? r->text : "unknown error");
        break;
    case R_THREADS:
        SETFLOAT(&a[0], r->numbers[0]);
        outlet_anything(x->replies, gensym("threads"), 1, a);
        break;
    case R_NAMES:
        reply_words(x, "names", r->text ? r->text : "");
        break;
    case R_FOUND:
        {
            t_atom *atoms = getbytes((r->count > 0 ? r->count : 1) * sizeof(t_atom));
            int i;
            if (!atoms)
                break;
            for (i = 0; i < r->count; i++)
                SETFLOAT(&atoms[i], r->values[i]);
            outlet_anything(x->replies, gensym("found"), r->count, atoms);
            freebytes(atoms, (r->count > 0 ? r->count : 1) * sizeof(t_atom));
        }
        break;
    }
}

static void poll_tick(t_ganspacesynth *x)
{
    shared *sh = x->sh;
    reply *list, *r;
    int idle;
    x->polling = 0;
        /* never wait on Pd's thread: if the worker holds the lock, look again
        at the next poll */
    if (pthread_mutex_trylock(&sh->lock))
    {
        start_polling(x);
        return;
    }
    list = sh->replies;
    sh->replies = sh->last_reply = NULL;
    idle = !sh->busy && !sh->jobs;
    sh->refs++;  /* a reply may free this object (dynamic patching): keep sh */
    pthread_mutex_unlock(&sh->lock);
    gss_player_collect(&x->player);
    while ((r = list))
    {
        list = r->next;
        if (!sh->pd_gone)
            deliver(x, r);
        reply_free(r);
    }
    if (!sh->pd_gone && !idle)
        start_polling(x);
    shared_release(sh);
}

static void collect_tick(t_ganspacesynth *x)
{
    gss_player_collect(&x->player);
}

/* ---- DSP ---- */

static void set_xfade_samples(t_ganspacesynth *x, float sr)
{
    double n = x->xfade_ms * 0.001 * sr;
    x->player.xfade_samples = n > 0 ? (n < 1e9 ? (int)n : 1000000000) : 0;
}

static t_int *ganspacesynth_perform(t_int *w)
{
    t_ganspacesynth *x = (t_ganspacesynth *)w[1];
    t_sample *out = (t_sample *)w[2];
    int n = (int)w[3];
    struct timespec t0, t1, c0, c1;
    double us, cpu_us;
        /* wall time includes preemption and any waiting; the thread's own
        CPU time does not: a worst wall time far above the worst CPU time
        means Pd's thread was preempted, not slow */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    if (gss_player_render(&x->player, &x->sh->handoff, out, n) & GSS_PLAYER_RETIRED)
        clock_delay(x->collector, 0);  /* free() belongs on the clock, not here */
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    us = (t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) * 1e-3;
    cpu_us = (c1.tv_sec - c0.tv_sec) * 1e6 + (c1.tv_nsec - c0.tv_nsec) * 1e-3;
    if (us > x->perform_max_us)
        x->perform_max_us = us;
    if (cpu_us > x->perform_cpu_max_us)
        x->perform_cpu_max_us = cpu_us;
    x->perform_total_us += us;
    x->perform_cpu_total_us += cpu_us;
    x->perform_count++;
    if (cpu_us > PERFORM_CPU_BUDGET_US)
        x->perform_cpu_slow++;
    return w + 4;
}

static void ganspacesynth_dsp(t_ganspacesynth *x, t_signal **sp)
{
    set_xfade_samples(x, sp[0]->s_sr);
    dsp_add(ganspacesynth_perform, 3, x, sp[0]->s_vec, (t_int)sp[0]->s_n);
}

/* ---- message helpers ---- */

/* Typed methods would let Pd reject bad arguments with a console line only;
   checking here turns every mistake into an `error` reply. */
static int one_float(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv, t_float *f)
{
    if (argc != 1 || argv[0].a_type != A_FLOAT)
    {
        reply_error(x, "%s: expected one number", s->s_name);
        return 0;
    }
    *f = argv[0].a_w.w_float;
    return 1;
}

static int one_symbol(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv, t_symbol **name)
{
    if (argc != 1 || argv[0].a_type != A_SYMBOL)
    {
        reply_error(x, "%s: expected one name", s->s_name);
        return 0;
    }
    *name = argv[0].a_w.w_symbol;
    return 1;
}

static int all_floats(t_ganspacesynth *x, const char *what, int argc, t_atom *argv)
{
    int i;
    for (i = 0; i < argc; i++)
        if (argv[i].a_type != A_FLOAT)
        {
            reply_error(x, "%s: expected numbers only", what);
            return 0;
        }
    return 1;
}

static float *floats_from_atoms(int argc, t_atom *argv)
{
    float *v = malloc((argc > 0 ? argc : 1) * sizeof(float));
    int i;
    if (v)
        for (i = 0; i < argc; i++)
            v[i] = atom_getfloat(&argv[i]);
    return v;
}

static float *floats_from_array(t_ganspacesynth *x, const char *what, t_symbol *name, int *count)
{
    t_garray *array = (t_garray *)pd_findbyclass(name, garray_class);
    t_word *words;
    float *v;
    int size, i;
    if (!array)
    {
        reply_error(x, "%s: no array named '%s'", what, name->s_name);
        return NULL;
    }
    if (!garray_getfloatwords(array, &size, &words))
    {
        reply_error(x, "%s: '%s' is not an array of floats", what, name->s_name);
        return NULL;
    }
    if (!(v = malloc((size > 0 ? size : 1) * sizeof(float))))
    {
        reply_error(x, "%s: out of memory", what);
        return NULL;
    }
    for (i = 0; i < size; i++)
        v[i] = words[i].w_float;
    *count = size;
    return v;
}

/* A model folder or file named in a message: "default" as it is, otherwise
   relative to the patch's folder, then along Pd's search path (with the
   patch's [declare -path]s). A name found nowhere is passed on as it is,
   for the engine to explain. */
static char *resolve_path(t_ganspacesynth *x, t_symbol *name)
{
        /* canvas_open only opens files: a model folder is found by the
        file that makes it one (Magenta's experiment.json, ours config.json) */
    static const char *landmarks[] = {"", "/experiment.json", "/config.json"};
    char dir[MAXPDSTRING], *base, full[MAXPDSTRING * 2 + 2];
    struct stat st;
    unsigned i;
    int fd;
    if (!strcmp(name->s_name, "default") || sys_isabsolutepath(name->s_name))
        return strdup(name->s_name);
    snprintf(full, sizeof(full), "%s/%s", canvas_getdir(x->canvas)->s_name, name->s_name);
    if (!stat(full, &st))
        return strdup(full);
    for (i = 0; i < sizeof(landmarks) / sizeof(*landmarks); i++)
    {
        snprintf(full, sizeof(full), "%s%s", name->s_name, landmarks[i]);
        if ((fd = canvas_open(x->canvas, full, "", dir, &base, MAXPDSTRING, 1)) >= 0)
        {
            sys_close(fd);
            if (*landmarks[i])
                snprintf(full, sizeof(full), "%s", dir);  /* the folder holding the landmark */
            else
                snprintf(full, sizeof(full), "%s/%s", dir, base);
            return strdup(full);
        }
    }
    return strdup(name->s_name);
}

/* ---- messages ---- */

static void ganspacesynth_load(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    job *j;
    if (argc < 1 || argc > 2 || argv[0].a_type != A_SYMBOL
        || (argc == 2 && argv[1].a_type != A_SYMBOL))
    {
        reply_error(x, "load: expected a model folder (or 'default') and optionally a PCA file");
        return;
    }
    if (!(j = job_new(x, J_LOAD)))
        return;
    j->text = resolve_path(x, argv[0].a_w.w_symbol);
    /* no PCA named: the engine takes the model folder's own pca.npz if there
       is one; 'none': no PCA at all */
    j->text2 = argc < 2 ? NULL
        : !strcmp(argv[1].a_w.w_symbol->s_name, "none") ? strdup("none")
        : resolve_path(x, argv[1].a_w.w_symbol);
    post_job(x, j);
}

static void ganspacesynth_pca(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    job *j;
    if (argc != 1 || argv[0].a_type != A_SYMBOL)
    {
        reply_error(x, "pca: expected a PCA file");
        return;
    }
    if (!(j = job_new(x, J_PCA)))
        return;
    j->text = resolve_path(x, argv[0].a_w.w_symbol);
    post_job(x, j);
}

static void ganspacesynth_unload(t_ganspacesynth *x)
{
    job *j = job_new(x, J_UNLOAD);
    if (j)
        post_job(x, j);
}

static void post_vector(t_ganspacesynth *x, job_kind kind, float *values, int count)
{
    job *j;
    if (!values)
        return;
    if (!(j = job_new(x, kind)))
    {
        free(values);
        return;
    }
    j->values = values;
    j->count = count;
    if (kind == J_STEP)
        post_job(x, j);
    else
        post_change(x, j);
}

static void ganspacesynth_coeffs(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    if (!all_floats(x, "coeffs", argc, argv))
        return;
    if (!argc)
    {
        reply_error(x, "coeffs: expected at least one coefficient");
        return;
    }
    post_vector(x, J_COEFFS, floats_from_atoms(argc, argv), argc);
}

static void ganspacesynth_coeff(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    job *j;
    if (argc != 2 || !all_floats(x, "coeff", argc, argv))
    {
        if (argc != 2)
            reply_error(x, "coeff: expected an index and a value");
        return;
    }
    if (atom_getfloat(&argv[0]) != floorf(atom_getfloat(&argv[0])) || atom_getfloat(&argv[0]) < 0
        || atom_getfloat(&argv[0]) > 1e6)
    {
        reply_error(x, "coeff: index %g is not a component number", atom_getfloat(&argv[0]));
        return;
    }
    if (!(j = job_new(x, J_COEFF)))
        return;
    j->index = (int)atom_getfloat(&argv[0]);
    j->number = atom_getfloat(&argv[1]);
    post_change(x, j);
}

/* `knob NAME VALUE`: the coefficient of the component called NAME; the
   engine checks the name (and lists the names there are) */
static void ganspacesynth_knob(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    job *j;
    if (argc != 2 || argv[0].a_type != A_SYMBOL || argv[1].a_type != A_FLOAT)
    {
        reply_error(x, "knob: expected a component's name and a value");
        return;
    }
    if (!(j = job_new(x, J_KNOB)))
        return;
    if (!(j->text = strdup(argv[0].a_w.w_symbol->s_name)))
    {
        job_free(j);
        reply_error(x, "knob: out of memory");
        return;
    }
    j->number = atom_getfloat(&argv[1]);
    post_change(x, j);
}

#define MAX_FIND_STEPS 100000

/* `find FILE [STEPS [LAYER_STEPS]]`: search on the worker for the point that
   sounds most like FILE and make it the current one (`progress F`, then
   `found DISTANCE PITCH C0 C1 ...`) */
static void ganspacesynth_find(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    int steps[2] = {-1, -1}, i;
    job *j;
    if (argc < 1 || argc > 3 || argv[0].a_type != A_SYMBOL)
    {
        reply_error(x, "find: expected an audio file, and optionally the steps on z and on the layer");
        return;
    }
    for (i = 1; i < argc; i++)
    {
        t_float n = argv[i].a_type == A_FLOAT ? argv[i].a_w.w_float : -1;
        if (!(n >= 0 && n <= MAX_FIND_STEPS && n == floorf(n)))
        {
            reply_error(x, "find: the %s must be a whole number from 0 to %d",
                i == 1 ? "steps" : "layer steps", MAX_FIND_STEPS);
            return;
        }
        steps[i - 1] = (int)n;
    }
    if (!(j = job_new(x, J_FIND)))
        return;
    j->text = resolve_path(x, argv[0].a_w.w_symbol);
    j->index = steps[0];
    j->count = steps[1];
    post_change(x, j);
}

static void ganspacesynth_coeffs_array(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    int count = 0;
    t_symbol *name;
    float *values;
    if (!one_symbol(x, s, argc, argv, &name))
        return;
    values = floats_from_array(x, "coeffs-array", name, &count);
    if (values && !count)
    {
        free(values);
        reply_error(x, "coeffs-array: array '%s' is empty", name->s_name);
        return;
    }
    post_vector(x, J_COEFFS, values, count);
}

static void ganspacesynth_z_array(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    int count = 0;
    t_symbol *name;
    if (!one_symbol(x, s, argc, argv, &name))
        return;
    post_vector(x, J_Z, floats_from_array(x, "z-array", name, &count), count);
}

static void ganspacesynth_z_random(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    job *j;
    float seed = -1;
    if (argc > 1 || (argc == 1 && argv[0].a_type != A_FLOAT))
    {
        reply_error(x, "z-random: expected nothing or a seed");
        return;
    }
    if (argc == 1)
    {
        seed = atom_getfloat(argv);
        if (seed < 0 || seed != floorf(seed) || seed > 2147483647.f)
        {
            reply_error(x, "z-random: seed %g is not a whole number from 0", seed);
            return;
        }
    }
    if (!(j = job_new(x, J_ZRANDOM)))
        return;
    j->index = (int)seed;
    post_change(x, j);
}

static void ganspacesynth_pitch(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    t_float pitch;
    job *j;
    if (!one_float(x, s, argc, argv, &pitch) || !(j = job_new(x, J_PITCH)))
        return;
    j->number = pitch;
    post_change(x, j);
}

static void ganspacesynth_mode(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    t_symbol *mode;
    job *j;
    if (!one_symbol(x, s, argc, argv, &mode) || !(j = job_new(x, J_MODE)))
        return;
    j->text = strdup(mode->s_name);
    post_change(x, j);
}

static void ganspacesynth_generate(t_ganspacesynth *x)
{
    generate_now(x);
}

static void ganspacesynth_auto(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    t_float on;
    if (one_float(x, s, argc, argv, &on))
        x->autogenerate = on != 0;
}

static void ganspacesynth_stream(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    t_float on;
    if (one_float(x, s, argc, argv, &on))
        x->stream = on != 0;
}

static void ganspacesynth_play(t_ganspacesynth *x)
{
    gss_player_play(&x->player);
}

static void ganspacesynth_stop(t_ganspacesynth *x)
{
    gss_player_stop(&x->player);
}

static void ganspacesynth_loop(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    t_float on;
    if (one_float(x, s, argc, argv, &on))
        x->player.loop = on != 0;
}

static void ganspacesynth_xfade(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    t_float ms;
    if (!one_float(x, s, argc, argv, &ms))
        return;
    if (!(ms >= 0 && ms <= 10000))
    {
        reply_error(x, "xfade: %g ms is outside 0..10000", ms);
        return;
    }
    x->xfade_ms = ms;
    set_xfade_samples(x, sys_getsr());
}

static void ganspacesynth_write(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    t_symbol *name;
    if (!one_symbol(x, s, argc, argv, &name))
        return;
    if (!x->player.front)
    {
        reply_error(x, "write: no clip yet (send 'generate' and wait for 'ready')");
        return;
    }
    if (x->player.front->partial)
    {
        reply_error(x, "write: the clip is not whole yet (wait for 'ready')");
        return;
    }
    write_array(x, name, x->player.front);
}

static void ganspacesynth_hallucinate(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    t_symbol *name;
    job *j;
    if (!one_symbol(x, s, argc, argv, &name))
        return;
    if (!pd_findbyclass(name, garray_class))
    {
        reply_error(x, "hallucinate: no array named '%s'", name->s_name);
        return;
    }
    if (!(j = job_new(x, J_HALLUCINATE)))
        return;
    j->array = name;
    j->sample_rate = sys_getsr();
    post_job(x, j);
}

static void ganspacesynth_steps_clear(t_ganspacesynth *x)
{
    job *j = job_new(x, J_STEPS_CLEAR);
    if (j)
        post_job(x, j);
}

static void ganspacesynth_step(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    if (!all_floats(x, "step", argc, argv))
        return;
    if (!argc)
    {
        reply_error(x, "step: expected at least one coefficient");
        return;
    }
    post_vector(x, J_STEP, floats_from_atoms(argc, argv), argc);
}

/* interp, spacing, trim, attack, sustain, release */
static void ganspacesynth_hallu_setting(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    t_float value;
    job *j;
    if (!one_float(x, s, argc, argv, &value) || !(j = job_new(x, J_HALLU_SET)))
        return;
    j->text = strdup(s->s_name);
    j->number = value;
    post_job(x, j);
}

static void ganspacesynth_stats(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    t_atom a[9];
        /* `stats reset`: start measuring afresh, e.g. after loading, whose
        heavy computing makes the OS preempt Pd's thread */
    if (argc == 1 && argv[0].a_type == A_SYMBOL && !strcmp(argv[0].a_w.w_symbol->s_name, "reset"))
    {
        x->perform_max_us = x->perform_total_us = 0;
        x->perform_cpu_max_us = x->perform_cpu_total_us = 0;
        x->perform_count = x->perform_cpu_slow = 0;
        x->player.silent_blocks = x->player.swaps = x->player.starved_blocks = 0;
        return;
    }
    if (argc)
    {
        reply_error(x, "stats: expected nothing, or 'reset'");
        return;
    }
    SETFLOAT(&a[0], x->perform_max_us);
    SETFLOAT(&a[1], x->perform_count ? x->perform_total_us / x->perform_count : 0);
    SETFLOAT(&a[2], x->player.silent_blocks);
    SETFLOAT(&a[3], x->player.swaps);
    SETFLOAT(&a[4], x->perform_cpu_max_us);
    SETFLOAT(&a[5], x->perform_count ? x->perform_cpu_total_us / x->perform_count : 0);
    SETFLOAT(&a[6], x->player.starved_blocks);
    SETFLOAT(&a[7], x->perform_count);
    SETFLOAT(&a[8], x->perform_cpu_slow);
    outlet_anything(x->replies, gensym("stats"), 9, a);
}

/* `threads N`: TensorFlow's compute threads for this Pd (all objects share
   TensorFlow); only before the first load in this Pd, see the README.
   `threads` alone asks for the count in effect. The reply is `threads N`. */
static void ganspacesynth_threads(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    job *j;
    t_float n = 0;
    if (argc > 1 || (argc == 1 && argv[0].a_type != A_FLOAT))
    {
        reply_error(x, "threads: expected nothing or a whole number of threads from 1 to %d",
            MAX_THREADS);
        return;
    }
    if (argc == 1)
    {
        n = atom_getfloat(argv);
        if (!(n >= 1 && n <= MAX_THREADS && n == floorf(n)))
        {
            reply_error(x, "threads: %g is not a whole number of threads from 1 to %d", n, MAX_THREADS);
            return;
        }
    }
    if (!(j = job_new(x, J_THREADS)))
        return;
    j->index = (int)n;
    post_job(x, j);
}

static void ganspacesynth_anything(t_ganspacesynth *x, t_symbol *s, int argc, t_atom *argv)
{
    reply_error(x, "unknown message '%s'", s->s_name);
}

/* ---- life and death ---- */

static int start_worker(shared *sh)
{
    pthread_t thread;
    pthread_attr_t attr;
    sigset_t all, old;
    int rc;
    struct sched_param normal = {0};
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, WORKER_STACK);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        /* Pd's thread may run at real-time priority (pd -rt): the engine,
        and TensorFlow's threads that inherit from it, must not */
    pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
    pthread_attr_setschedpolicy(&attr, SCHED_OTHER);
    pthread_attr_setschedparam(&attr, &normal);
        /* signals are Pd's business: keep them on Pd's threads */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&thread, &attr, worker_main, sh);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rc == 0;
}

static void *ganspacesynth_new(t_symbol *s, int argc, t_atom *argv)
{
    t_ganspacesynth *x = (t_ganspacesynth *)pd_new(ganspacesynth_class);
    shared *sh = calloc(1, sizeof(shared));
    if (!sh)
    {
        pd_free(&x->obj.ob_pd);
        return NULL;
    }
    {
            /* Pd's thread (perhaps real-time) locks this for a few
            instructions, the worker (normal priority) too: with priority
            inheritance a preempted worker cannot make Pd wait long */
        pthread_mutexattr_t attr;
        pthread_mutexattr_init(&attr);
        pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
        pthread_mutex_init(&sh->lock, &attr);
        pthread_mutexattr_destroy(&attr);
    }
    pthread_cond_init(&sh->wake, NULL);
    atomic_init(&sh->cancel, 0);
    gss_handoff_init(&sh->handoff);
    sh->refs = 1;
    x->sh = sh;
    outlet_new(&x->obj, &s_signal);
    x->replies = outlet_new(&x->obj, 0);
    x->canvas = canvas_getcurrent();
    x->poll = clock_new(x, (t_method)poll_tick);
    x->collector = clock_new(x, (t_method)collect_tick);
    gss_player_init(&x->player);
    x->xfade_ms = 10;
    x->stream = 1;
    set_xfade_samples(x, sys_getsr());
    sh->refs++;
    if (!(x->worker_ok = start_worker(sh)))
    {
        sh->refs--;
        pd_error(x, "ganspacesynth~: cannot start a worker thread");
    }
    if (argc >= 1)
        ganspacesynth_load(x, gensym("load"), argc > 2 ? 2 : argc, argv);
    return x;
}

static void ganspacesynth_free(t_ganspacesynth *x)
{
    shared *sh = x->sh;
    if (!sh)
        return;
    pthread_mutex_lock(&sh->lock);
    sh->detached = 1;
    atomic_store(&sh->cancel, 1);
    while (sh->jobs)
    {
        job *j = sh->jobs;
        sh->jobs = j->next;
        job_free(j);
    }
    sh->last_job = NULL;
    sh->njobs = 0;
    pthread_cond_signal(&sh->wake);
    pthread_mutex_unlock(&sh->lock);
    sh->pd_gone = 1;
    clock_free(x->poll);
    clock_free(x->collector);
    gss_player_free(&x->player);
    shared_release(sh);
}

void ganspacesynth_tilde_setup(void)
{
    t_class *c = class_new(gensym("ganspacesynth~"), (t_newmethod)ganspacesynth_new,
        (t_method)ganspacesynth_free, sizeof(t_ganspacesynth), CLASS_DEFAULT, A_GIMME, 0);
    static const char *hallu_settings[] = {"interp", "spacing", "trim", "attack", "sustain", "release"};
    unsigned i;
    class_addmethod(c, (t_method)ganspacesynth_dsp, gensym("dsp"), A_CANT, 0);
    class_addmethod(c, (t_method)ganspacesynth_load, gensym("load"), A_GIMME, 0);
    class_addmethod(c, (t_method)ganspacesynth_pca, gensym("pca"), A_GIMME, 0);
    class_addmethod(c, (t_method)ganspacesynth_unload, gensym("unload"), 0);
    class_addmethod(c, (t_method)ganspacesynth_coeffs, gensym("coeffs"), A_GIMME, 0);
    class_addmethod(c, (t_method)ganspacesynth_coeff, gensym("coeff"), A_GIMME, 0);
    class_addmethod(c, (t_method)ganspacesynth_knob, gensym("knob"), A_GIMME, 0);
    class_addmethod(c, (t_method)ganspacesynth_find, gensym("find"), A_GIMME, 0);
    class_addmethod(c, (t_method)ganspacesynth_coeffs_array, gensym("coeffs-array"), A_GIMME, 0);
    class_addmethod(c, (t_method)ganspacesynth_z_random, gensym("z-random"), A_GIMME, 0);
    class_addmethod(c, (t_method)ganspacesynth_z_array, gensym("z-array"), A_GIMME, 0);
    class_addmethod(c, (t_method)ganspacesynth_pitch, gensym("pitch"), A_GIMME, 0);
    class_addmethod(c, (t_method)ganspacesynth_mode, gensym("mode"), A_GIMME, 0);
    class_addmethod(c, (t_method)ganspacesynth_generate, gensym("generate"), 0);
    class_addbang(c, (t_method)ganspacesynth_generate);
    class_addmethod(c, (t_method)ganspacesynth_auto, gensym("auto"), A_GIMME, 0);
    class_addmethod(c, (t_method)ganspacesynth_stream, gensym("stream"), A_GIMME, 0);
    class_addmethod(c, (t_method)ganspacesynth_play, gensym("play"), 0);
    class_addmethod(c, (t_method)ganspacesynth_stop, gensym("stop"), 0);
    class_addmethod(c, (t_method)ganspacesynth_loop, gensym("loop"), A_GIMME, 0);
    class_addmethod(c, (t_method)ganspacesynth_xfade, gensym("xfade"), A_GIMME, 0);
    class_addmethod(c, (t_method)ganspacesynth_write, gensym("write"), A_GIMME, 0);
    class_addmethod(c, (t_method)ganspacesynth_hallucinate, gensym("hallucinate"), A_GIMME, 0);
    class_addmethod(c, (t_method)ganspacesynth_steps_clear, gensym("steps-clear"), 0);
    class_addmethod(c, (t_method)ganspacesynth_step, gensym("step"), A_GIMME, 0);
    for (i = 0; i < sizeof(hallu_settings) / sizeof(*hallu_settings); i++)
        class_addmethod(c, (t_method)ganspacesynth_hallu_setting, gensym(hallu_settings[i]),
            A_GIMME, 0);
    class_addmethod(c, (t_method)ganspacesynth_stats, gensym("stats"), A_GIMME, 0);
    class_addmethod(c, (t_method)ganspacesynth_threads, gensym("threads"), A_GIMME, 0);
    class_addanything(c, ganspacesynth_anything);
    ganspacesynth_class = c;
    atexit(wait_for_engine_at_exit);
    bridge_load();
    if (*bridge_error)
        pd_error(0, "ganspacesynth~: %s", bridge_error);
}

/* ganspacesynth_bridge.h: the C ABI of the ganspacesynth engine.
 *
 * The bridge is a shared library (libganspacesynth_bridge) that embeds
 * Python through cffi and forwards each call to one
 * ganspacesynth.instrument.Instrument per engine handle. It exists so that
 * C hosts (the Pd external) can play the engine without knowing Python.
 *
 * Threading: every call blocks (loading a model takes seconds, the first
 * call also starts Python and imports TensorFlow) and takes Python's GIL, so
 * call it only from a worker thread, never from an audio callback. One
 * engine handle must be used by one thread at a time; different handles may
 * be used from different threads.
 *
 * Loading on Linux: dlopen libpython with RTLD_NOW | RTLD_GLOBAL before
 * dlopen'ing the bridge, or numpy's C extensions fail to import.
 *
 * Errors: functions returning int give GSS_OK (0) or a value >= 0 on success
 * and GSS_ERROR or GSS_CANCELLED on failure; gss_last_error() then has a
 * one-line message a musician can read.
 *
 * Environment: GANSPACESYNTH_PYTHONPATH (folders separated like PATH) is
 * searched before the site-packages the bridge was installed into;
 * PYTHONHOME, when set, overrides the interpreter home baked in at build
 * time.
 */
#ifndef GANSPACESYNTH_BRIDGE_H
#define GANSPACESYNTH_BRIDGE_H

#ifdef __cplusplus
extern "C" {
#endif

#define GSS_OK 0
#define GSS_ERROR (-1)
#define GSS_CANCELLED (-2)

/* The declarations between the two markers are also fed to cffi as the
   embedding API: keep them plain C, one declaration per line. */
/* gss-api-begin */

/* Called by gss_hallucinate and gss_find with the fraction done (0..1);
   return nonzero to abandon the work (the call then returns GSS_CANCELLED). */
typedef int (*gss_progress_fn)(void *userdata, float fraction);
/* Called by gss_generate_parts with the first count samples of the clip it is
   making (valid during the call only), or with NULL and 0 to ask whether to go
   on (see gss_generate_parts); return nonzero to abandon the clip. */
typedef int (*gss_part_fn)(void *userdata, const float *samples, int count);

/* A new engine handle (> 0), or 0 if the engine could not start (Python
   missing, ganspacesynth not importable): gss_last_error(0, ...) says why. */
int gss_create(void);
/* Forget the handle and free its model. */
void gss_destroy(int engine);

/* Load a model folder or "default", and a PCA file unless pca is NULL or "". */
int gss_load(int engine, const char *model, const char *pca);
int gss_load_pca(int engine, const char *path);
int gss_unload(int engine);
/* What is loaded: PCA components (0 without a PCA), the model's sample rate
   and clip length in samples (zeros without a model). */
int gss_info(int engine, int *n_components, int *sample_rate, int *length);

/* TensorFlow's compute threads for the whole process: threads >= 1 asks for
   that many, 0 only asks. Returns the count in effect. TensorFlow takes a
   count only before its first operation in the process (the first load):
   later a different count is an error that says so. Without a call the
   engine uses GANSPACESYNTH_THREADS, else every core when Pd's thread runs at
   real-time priority and one fewer otherwise. */
int gss_set_threads(int engine, int threads);

/* Coefficients for components 0..count-1 (the rest are 0). */
int gss_set_coeffs(int engine, const float *values, int count);
int gss_set_coeff(int engine, int index, float value);
/* The coefficient of the component called name (as gss_set_coeff): an error
   without a PCA, when its components have no names, or for an unknown name. */
int gss_set_knob(int engine, const char *name, float value);
/* The loaded PCA's component names, separated by single spaces (a name has
   none), copied as gss_last_error copies; returns the full length in bytes,
   0 without a PCA or when its components have no names. */
int gss_component_names(int engine, char *buffer, int size);
int gss_set_z(int engine, const float *values, int count);
/* A random z from seed (seed < 0: a fresh, unseeded one). */
int gss_random_z(int engine, int seed);
int gss_set_pitch(int engine, float pitch);
/* "layer", "z" or "latent". */
int gss_set_mode(int engine, const char *mode);

/* Hallu: the steps (coefficient vectors) and settings ("interp", "spacing",
   "trim", "attack", "sustain", "release"; times in seconds). */
int gss_clear_steps(int engine);
int gss_add_step(int engine, const float *values, int count);
int gss_set_hallu(int engine, const char *name, float value);

/* Synthesise at sample_rate; return the number of samples now waiting for
   gss_read(), or an error. */
int gss_generate(int engine, double sample_rate);
/* gss_generate, telling the clip's start while it works, so that a host can
   play it before the clip is whole: part() gets about the first 90 ms (made
   in a fraction of the whole clip's time), then a longer start when the
   whole clip takes longer than that to make. Every part is the start of the
   clip gss_read() gives afterwards, to float rounding (~1e-7). When the
   whole clip takes long to make (0.3 s on the full-size architecture),
   part(userdata, NULL, 0) is also called between the steps that make it and
   the longer parts, every few tens of milliseconds. A nonzero return from
   part() abandons the clip: the call returns GSS_CANCELLED. */
int gss_generate_parts(int engine, double sample_rate, gss_part_fn part, void *userdata);
int gss_hallucinate(int engine, double sample_rate, gss_progress_fn progress, void *userdata);
/* Find this sound: search for the point whose clip is nearest the audio
   file's first clip length (steps Adam steps on z, then layer_steps on the
   PCA's layer; < 0: the engine's small defaults) and make its z, pitch and
   coefficients (in the current mode) the current ones; nothing changes on
   failure. Returns the number of values waiting for gss_read(): the
   spectral distance of what now plays to the file, the pitch, then one
   coefficient per component (none without a PCA). */
int gss_find(int engine, const char *path, int steps, int layer_steps, gss_progress_fn progress, void *userdata);
/* Copy up to count values of the last result (a clip, or gss_find's values)
   into out; return how many. */
int gss_read(int engine, float *out, int count);

/* Copy the last error message (NUL-terminated, truncated to size) and
   return its full length in bytes. */
int gss_last_error(int engine, char *buffer, int size);

/* gss-api-end */

#ifdef __cplusplus
}
#endif

#endif

/* player.h: the clip double buffer of [ganspacesynth~], free of Pd and Python.
 *
 * The worker thread hands each finished clip over through a gss_handoff, a
 * single atomic slot; the audio side takes it at a block boundary and
 * crossfades from the clip it was playing. Everything in gss_player belongs
 * to the audio side (Pd's scheduler thread, which also runs the object's
 * methods and clocks), so only the slot needs to be atomic.
 *
 * The audio path never allocates, frees, locks or waits: clips it stops
 * using go to a small graveyard, emptied later with gss_player_collect()
 * from a context that may call free().
 */
#ifndef GANSPACESYNTH_PLAYER_H
#define GANSPACESYNTH_PLAYER_H

#include <stdatomic.h>

typedef struct gss_clip {
    int length;
    float samples[];
} gss_clip;

gss_clip *gss_clip_new(int length);
void gss_clip_free(gss_clip *clip);

typedef struct gss_handoff {
    _Atomic(gss_clip *) slot;
} gss_handoff;

void gss_handoff_init(gss_handoff *h);
/* Worker side: offer a clip; a clip offered earlier and never taken is freed
   here, so a burst of results costs memory for two clips at most. */
void gss_handoff_put(gss_handoff *h, gss_clip *clip);
/* Take the offered clip (NULL if none); the caller owns it. */
gss_clip *gss_handoff_take(gss_handoff *h);

#define GSS_GRAVEYARD 4

typedef struct gss_player {
    gss_clip *front;                   /* the clip being played */
    gss_clip *fading;                  /* the previous one, fading out */
    gss_clip *graveyard[GSS_GRAVEYARD];
    long position;                     /* next sample of front (and fading) */
    int fade_position, fade_length;
    int xfade_samples;                 /* length of the next crossfade */
    int playing, loop;
    unsigned long swaps, silent_blocks;
} gss_player;

void gss_player_init(gss_player *p);
/* Free every clip the player holds (not the handoff's). */
void gss_player_free(gss_player *p);

/* Take an offered clip if there is one and return 1. On the audio path
   (force 0) a clip waits while a crossfade is still running; force 1 may
   cut that crossfade short and free memory, so never use it from the perform
   routine. */
int gss_player_swap(gss_player *p, gss_handoff *h, int force);

#define GSS_PLAYER_RETIRED 1  /* a clip went to the graveyard: collect soon */

/* The perform routine's work: swap if a clip waits, then write n samples.
   Returns GSS_PLAYER_RETIRED flags. */
int gss_player_render(gss_player *p, gss_handoff *h, float *out, int n);

/* Free the graveyard; not from the perform routine. */
void gss_player_collect(gss_player *p);

void gss_player_play(gss_player *p);
void gss_player_stop(gss_player *p);

#endif

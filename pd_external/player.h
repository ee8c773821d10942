/* player.h: the clip double buffer of [ganspacesynth~], free of Pd and Python.
 *
 * The worker thread hands each new sound over through a gss_handoff, an
 * atomic slot; the audio side takes it at a block boundary and crossfades
 * from the clip it was playing. A sound may come in parts: first the start
 * of its clip (`partial`), then longer versions of the same clip, the last
 * one whole, each through a second slot (`more`); the player puts each in
 * the place of the one it plays, at the same sample position, so the sound
 * goes on without a seam. Playing up to the end of a part before the next
 * one is there, it pauses (counted in `starved_blocks`) and goes on where it
 * stopped when the next part comes. Cutting to silence and back would click
 * twice, so the pause is de-clicked: the output decays from its last sample
 * to exactly 0 over GSS_RAMP samples (the clip's next samples do not exist
 * yet), stays silent, and what plays after it (the next part, or a new sound
 * that came meanwhile) fades in over GSS_RAMP samples. Positions in the clip
 * run as without the ramps, and without a pause the output is the clip's
 * samples exactly. Everything in gss_player
 * belongs to the audio side (Pd's scheduler thread, which also runs the
 * object's methods and clocks), so only the slots need to be atomic.
 *
 * The audio path never allocates, frees, locks or waits: clips it stops
 * using go to a small graveyard, emptied later with gss_player_collect()
 * from a context that may call free().
 */
#ifndef GANSPACESYNTH_PLAYER_H
#define GANSPACESYNTH_PLAYER_H

#include <stdatomic.h>

typedef struct gss_clip {
    unsigned long sound;  /* the sound it belongs to: its parts have the same number */
    int partial;          /* only the start of the sound's clip: more will come */
    int from_start;       /* a new sound starts at its first sample, not where the old one was */
    int length;
    float samples[];
} gss_clip;

/* A whole clip of a sound of its own, zeros in its fields but length. */
gss_clip *gss_clip_new(int length);
void gss_clip_free(gss_clip *clip);

typedef struct gss_handoff {
    _Atomic(gss_clip *) slot;  /* a new sound */
    _Atomic(gss_clip *) more;  /* a longer part of the sound last put in slot */
} gss_handoff;

void gss_handoff_init(gss_handoff *h);
/* Worker side: offer a new sound; a clip offered earlier and never taken is
   freed here, so a burst of results costs memory for two clips at most. */
void gss_handoff_put(gss_handoff *h, gss_clip *clip);
/* Worker side: offer a longer part (or the whole clip) of the sound last
   put. If that sound's first part is still in the slot, this one takes its
   place there; else it waits in `more`, replacing an older part not taken. */
void gss_handoff_extend(gss_handoff *h, gss_clip *clip);
/* Take the offered new sound (NULL if none); the caller owns it. */
gss_clip *gss_handoff_take(gss_handoff *h);

#define GSS_GRAVEYARD 4

/* The length of a pause's decay and of the fade-in after it: 2.7 ms at 48 kHz,
   2.9 at 44.1 (8 ms at the model's 16 kHz). A few ms is the usual de-click
   length: long enough that a full-scale step spreads into slopes of at most
   1.5/128 per sample, those of a full-scale 90 Hz sine at 48 kHz (a soft
   thump at worst, no broadband click); short enough to keep a pause a pause
   and not to blunt audibly the attack of a sound fading in after one. Fixed
   in samples, so that the player needs no sample rate. */
#define GSS_RAMP 128

typedef struct gss_player {
    gss_clip *front;                   /* the clip being played */
    gss_clip *fading;                  /* the previous one, fading out */
    gss_clip *graveyard[GSS_GRAVEYARD];
    long position;                     /* next sample of front */
    long fading_position;              /* next sample of fading */
    int fade_position, fade_length;
    int xfade_samples;                 /* length of the next crossfade */
    int playing, loop;
    unsigned long swaps;               /* new sounds taken (not their later parts) */
    unsigned long silent_blocks;       /* playing, but no clip yet */
    unsigned long starved_blocks;      /* blocks that reached the end of a part before the next */
    float last;                        /* the last sample written: where a pause decays from */
    float tail;                        /* the level the pause's decay started from */
    int tail_left;                     /* samples of that decay still to come */
    int fade_in_left;                  /* samples of fade-in still due after a pause */
} gss_player;

void gss_player_init(gss_player *p);
/* Free every clip the player holds (not the handoff's). */
void gss_player_free(gss_player *p);

/* Take offered clips (a longer part of the sound playing, then a new sound)
   and return 1 if one was taken. On the audio path (force 0) a new sound
   waits while a crossfade is still running; force 1 may cut that crossfade
   short and free memory, so never use it from the perform routine. */
int gss_player_swap(gss_player *p, gss_handoff *h, int force);

#define GSS_PLAYER_RETIRED 1  /* a clip went to the graveyard: collect soon */

/* The perform routine's work: take what waits, then write n samples.
   Returns GSS_PLAYER_RETIRED flags. */
int gss_player_render(gss_player *p, gss_handoff *h, float *out, int n);

/* Free the graveyard; not from the perform routine. */
void gss_player_collect(gss_player *p);

/* Start from the clip's first sample / cut to silence, both at once (a
   pause's ramps end there too). */
void gss_player_play(gss_player *p);
void gss_player_stop(gss_player *p);

#endif

/* player.c: see player.h. */
#include "player.h"

#include <stdlib.h>
#include <string.h>

gss_clip *gss_clip_new(int length)
{
    gss_clip *clip;
    if (length < 0)
        return NULL;
    clip = malloc(sizeof(gss_clip) + (size_t)length * sizeof(float));
    if (clip)
    {
        clip->sound = 0;
        clip->partial = clip->from_start = 0;
        clip->length = length;
    }
    return clip;
}

void gss_clip_free(gss_clip *clip)
{
    free(clip);
}

void gss_handoff_init(gss_handoff *h)
{
    atomic_init(&h->slot, NULL);
    atomic_init(&h->more, NULL);
}

void gss_handoff_put(gss_handoff *h, gss_clip *clip)
{
    gss_clip_free(atomic_exchange(&h->slot, clip));
}

void gss_handoff_extend(gss_handoff *h, gss_clip *clip)
{
        /* Only the worker puts clips, one sound after another, so whatever
        is still in the slot is this sound's earlier part: the player has not
        started the sound yet, and may as well start it with this part. */
    gss_clip *untaken = atomic_exchange(&h->slot, NULL);
    if (untaken)
    {
        gss_clip_free(untaken);
        gss_handoff_put(h, clip);
    }
    else
        gss_clip_free(atomic_exchange(&h->more, clip));
}

/* A plain load first: most blocks find the slot empty, and a load does not
   claim the cache line the way an exchange does. */
static gss_clip *take(_Atomic(gss_clip *) *slot)
{
    if (!atomic_load_explicit(slot, memory_order_relaxed))
        return NULL;
    return atomic_exchange(slot, NULL);
}

gss_clip *gss_handoff_take(gss_handoff *h)
{
    return take(&h->slot);
}

void gss_player_init(gss_player *p)
{
    memset(p, 0, sizeof(*p));
}

void gss_player_collect(gss_player *p)
{
    int i;
    for (i = 0; i < GSS_GRAVEYARD; i++)
    {
        gss_clip_free(p->graveyard[i]);
        p->graveyard[i] = NULL;
    }
}

void gss_player_free(gss_player *p)
{
    gss_player_collect(p);
    gss_clip_free(p->front);
    gss_clip_free(p->fading);
    p->front = p->fading = NULL;
}

static int bury(gss_player *p, gss_clip *clip)
{
    int i;
    for (i = 0; i < GSS_GRAVEYARD; i++)
        if (!p->graveyard[i])
        {
            p->graveyard[i] = clip;
            return 1;
        }
    return 0;
}

static int graves_free(const gss_player *p)
{
    int i, n = 0;
    for (i = 0; i < GSS_GRAVEYARD; i++)
        n += !p->graveyard[i];
    return n;
}

/* Put a longer part of the sound playing in the place of the one played, at the
   same position. 0: nothing taken, 1: taken, 2: taken and a clip went to the
   graveyard. */
static int extend(gss_player *p, gss_handoff *h, int force)
{
    gss_clip *clip, *old;
    if (!force && !graves_free(p))
        return 0;  /* it waits in `more` */
    if (!(clip = take(&h->more)))
        return 0;
    if (p->front && p->front->sound == clip->sound)
        old = p->front, p->front = clip;
    else
        old = clip;  /* a part of a sound that was replaced before it came: nobody wants it */
    if (force)
        gss_clip_free(old);
    else
        bury(p, old);
    return force ? 1 : 2;
}

/* Take a new sound, crossfading from the old one.
   0: nothing taken, 1: taken, 2: taken and the old clip went to the graveyard */
static int swap(gss_player *p, gss_handoff *h, int force)
{
    gss_clip *clip;
    int buried = 0;
    if (force)
    {
        if (!atomic_load(&h->slot))
            return 0;  /* the perform routine took it already: let its fade run */
        gss_player_collect(p);
        gss_clip_free(p->fading);
        p->fading = NULL;
    }
        /* one crossfade at a time, and room to bury the clip we replace:
        a clip that cannot be taken now simply waits in the slot */
    else if (p->fading || !graves_free(p))
        return 0;
    if (!(clip = gss_handoff_take(h)))
        return 0;
    if (p->front && p->playing && p->xfade_samples > 0)
    {
        p->fading = p->front;
        p->fading_position = p->position;
        p->fade_position = 0;
        p->fade_length = p->xfade_samples;
    }
    else if (p->front)
    {
        if (force)
            gss_clip_free(p->front);
        else
            bury(p, p->front), buried = 1;
    }
    p->front = clip;
    if (clip->from_start)
        p->position = 0;
    p->swaps++;
    return 1 + buried;
}

int gss_player_swap(gss_player *p, gss_handoff *h, int force)
{
    int extended = extend(p, h, force) != 0;
    return (swap(p, h, force) != 0) | extended;
}

/* The gain of a pause's ramps at step k of GSS_RAMP: 0 at k = 0, exactly 1 at
   k = GSS_RAMP, flat at both ends. A smoothstep, 3t^2 - 2t^3: the shape of a
   raised cosine (within 1%) without a cosine per sample; flat ends mean no
   corner where the ramp meets the sound or the silence. */
static float ramp_gain(int k)
{
    float t = (float)k / (float)GSS_RAMP;
    return t * t * (3.f - 2.f * t);
}

/* The next sample of a pause's decay, 0 once it is over. */
static float decay(gss_player *p)
{
    return p->tail_left > 0 ? p->tail * ramp_gain(--p->tail_left) : 0.f;
}

/* The part played ran out: its next samples do not exist yet, so instead of
   cutting to silence, decay from the last sample written; and let whatever
   plays next (the next part, or a new sound) fade in. A pause that goes on
   over several blocks starts once: a whole fade-in still due means nothing
   has played since it began. */
static void start_pause(gss_player *p, float last)
{
    if (p->fade_in_left == GSS_RAMP)
        return;
    p->tail = last;
    p->tail_left = p->fade_in_left = GSS_RAMP;
}

int gss_player_render(gss_player *p, gss_handoff *h, float *out, int n)
{
    int flags = extend(p, h, 0) == 2 ? GSS_PLAYER_RETIRED : 0;
    int i = 0;
    flags |= swap(p, h, 0) == 2 ? GSS_PLAYER_RETIRED : 0;
    if (p->playing && p->front)
    {
        const gss_clip *front = p->front, *fading = p->fading;
        long position = p->position;
        for (; i < n; i++)
        {
            float sample;
            if (position >= front->length)
            {
                if (front->partial)
                {
                        /* the rest is not there yet: pause here, go on when it comes;
                        end a crossfade into the pause, so that a new sound can
                        come in if this one's rest never does */
                    start_pause(p, i > 0 ? out[i - 1] : p->last);
                    p->starved_blocks++;
                    p->fade_position = p->fade_length;
                    break;
                }
                if (p->loop && front->length > 0)
                    position = 0;
                else
                {
                    p->playing = 0;
                    break;
                }
            }
            sample = front->samples[position];
            if (fading && p->fade_position < p->fade_length)
            {
                float gain = (float)p->fade_position++ / (float)p->fade_length;
                float old = p->fading_position < fading->length ? fading->samples[p->fading_position] : 0.f;
                p->fading_position++;
                sample = old + gain * (sample - old);
            }
                /* after a pause: fade in, over what is left of the pause's decay
                (nothing, unless the pause was shorter than the decay) */
            if (p->fade_in_left > 0)
                sample = sample * ramp_gain(GSS_RAMP - --p->fade_in_left) + decay(p);
            out[i] = sample;
            position++;
        }
        p->position = position;
    }
    else if (p->playing)
        p->silent_blocks++;
    for (; i < n; i++)
        out[i] = decay(p);  /* silence, once a pause's decay is over */
    if (n > 0)
        p->last = out[n - 1];
    if (p->fading && (p->fade_position >= p->fade_length || !p->playing))
    {
        if (bury(p, p->fading))
        {
            p->fading = NULL;
            flags |= GSS_PLAYER_RETIRED;
        }
        else
            p->fade_position = p->fade_length;
    }
    return flags;
}

void gss_player_play(gss_player *p)
{
    p->position = 0;
    p->playing = 1;
    p->tail_left = p->fade_in_left = 0;
}

void gss_player_stop(gss_player *p)
{
    p->playing = 0;
    p->tail_left = p->fade_in_left = 0;
}

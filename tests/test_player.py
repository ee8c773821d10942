"""player.c, the clip double buffer of [ganspacesynth~], on its own: compiled
with the system's C compiler and driven through cffi, no Pd needed."""

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pd_helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import realtime  # noqa: E402  (its check of the outlet knows the player's ramps)

SOURCE = REPO / "pd_external" / "player.c"
RAMP = int(re.search(r"#define GSS_RAMP (\d+)", (REPO / "pd_external" / "player.h").read_text()).group(1))

CDEF = """
typedef struct gss_clip {
    unsigned long sound; int partial, from_start, length; float samples[];
} gss_clip;
typedef struct gss_handoff { void *slot, *more; } gss_handoff;
typedef struct gss_player {
    gss_clip *front, *fading, *graveyard[4];
    long position, fading_position;
    int fade_position, fade_length, xfade_samples, playing, loop;
    unsigned long swaps, silent_blocks, starved_blocks;
    float last, tail;
    int tail_left, fade_in_left;
} gss_player;
gss_clip *gss_clip_new(int length);
void gss_handoff_init(gss_handoff *h);
void gss_handoff_put(gss_handoff *h, gss_clip *clip);
void gss_handoff_extend(gss_handoff *h, gss_clip *clip);
gss_clip *gss_handoff_take(gss_handoff *h);
void gss_player_init(gss_player *p);
void gss_player_free(gss_player *p);
int gss_player_swap(gss_player *p, gss_handoff *h, int force);
int gss_player_render(gss_player *p, gss_handoff *h, float *out, int n);
void gss_player_collect(gss_player *p);
void gss_player_play(gss_player *p);
void gss_player_stop(gss_player *p);
"""


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    import cffi

    compiler = shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        pytest.fail("a C compiler is needed to build player.c", pytrace=False)
    out = tmp_path_factory.mktemp("player") / "libplayer.so"
    subprocess.run([compiler, "-std=c11", "-O1", "-g", "-Wall", "-Werror", "-shared", "-fPIC",
                    str(SOURCE), "-o", str(out)], check=True)
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    return ffi, ffi.dlopen(str(out))


class Player:
    def __init__(self, lib, xfade=0):
        self.ffi, self.lib = lib
        self.p = self.ffi.new("gss_player *")
        self.h = self.ffi.new("gss_handoff *")
        self.lib.gss_player_init(self.p)
        self.lib.gss_handoff_init(self.h)
        self.p.xfade_samples = xfade

    def offer(self, value, length=16):
        clip = self.lib.gss_clip_new(length)
        for i in range(length):
            clip.samples[i] = value
        self.lib.gss_handoff_put(self.h, clip)

    def render(self, n=4):
        out = self.ffi.new("float[]", n)
        flags = self.lib.gss_player_render(self.p, self.h, out, n)
        return list(out), flags

    def close(self):
        self.lib.gss_player_free(self.p)
        self.lib.gss_handoff_put(self.h, self.ffi.NULL)  # frees a clip left in the slot


def test_silence_until_a_clip_then_it_plays(lib):
    player = Player(lib)
    player.lib.gss_player_play(player.p)
    assert player.render() == ([0.0] * 4, 0)
    assert player.p.silent_blocks == 1
    player.offer(0.5, length=6)
    samples, _ = player.render()
    assert samples == [0.5] * 4 and player.p.swaps == 1
    samples, _ = player.render()
    assert samples == [0.5, 0.5, 0.0, 0.0] and not player.p.playing  # played out, no loop
    player.close()


def test_loop_wraps_around(lib):
    player = Player(lib)
    player.offer(0.25, length=3)
    player.p.loop = 1
    player.lib.gss_player_play(player.p)
    assert player.render(7)[0] == [0.25] * 7
    player.close()


def test_new_clip_crossfades_linearly_at_the_same_position(lib):
    player = Player(lib, xfade=4)
    player.offer(1.0)
    player.lib.gss_player_play(player.p)
    player.render(2)
    player.offer(2.0)
    samples, flags = player.render(6)
    np.testing.assert_allclose(samples, [1.0, 1.25, 1.5, 1.75, 2.0, 2.0])
    assert player.p.position == 8
    # the faded-out clip waits in the graveyard for a context that may free
    assert flags == 1 and player.p.fading == player.ffi.NULL
    assert player.p.graveyard[0] != player.ffi.NULL
    player.lib.gss_player_collect(player.p)
    assert player.p.graveyard[0] == player.ffi.NULL
    player.close()


def test_one_crossfade_at_a_time(lib):
    player = Player(lib, xfade=8)
    player.offer(1.0, length=64)
    player.lib.gss_player_play(player.p)
    player.render(1)
    player.offer(2.0, length=64)
    player.render(2)                 # fading 1 -> 2
    player.offer(3.0, length=64)
    player.render(2)                 # 3 waits: the fade is not over
    assert player.p.swaps == 2
    player.render(8)                 # fade over; 3 is taken at the next block
    player.render(1)
    assert player.p.swaps == 3
    player.close()


def test_forced_swap_cuts_the_fade_short(lib):
    # what the `ready` clock does, so that `write` right after `ready` gets
    # the new clip even with DSP off
    player = Player(lib, xfade=8)
    player.offer(1.0)
    player.lib.gss_player_play(player.p)
    player.render(1)
    player.offer(2.0)
    player.render(1)
    player.offer(3.0)
    assert player.lib.gss_player_swap(player.p, player.h, 1) == 1
    assert player.p.front.samples[0] == 3.0
    assert player.lib.gss_player_swap(player.p, player.h, 1) == 0  # nothing waiting: fade untouched
    player.close()


def test_an_untaken_clip_is_replaced(lib):
    player = Player(lib)
    player.offer(1.0)
    player.offer(2.0)                # the first one is freed by the put
    player.lib.gss_player_play(player.p)
    assert player.render()[0] == [2.0] * 4
    assert player.p.swaps == 1
    player.close()


# --- a sound in parts (`stream 1`): its start plays while the rest is computed ---

def clip_of(player, samples, sound, partial, from_start=1):
    clip = player.lib.gss_clip_new(len(samples))
    player.ffi.memmove(clip.samples, np.asarray(samples, np.float32).tobytes(), 4 * len(samples))
    clip.sound, clip.partial, clip.from_start = sound, partial, from_start
    return clip


def test_a_sound_in_parts_plays_exactly_its_whole_clip(lib):
    """Blocks of odd sizes across both seams: the output is the whole clip, sample for sample."""
    rng = np.random.default_rng(0)
    whole = rng.standard_normal(3000).astype(np.float32)
    player = Player(lib)                     # no crossfade: every output sample is the new sound's
    player.offer(9.0, length=5000)           # an old sound, playing somewhere in its middle
    player.lib.gss_player_play(player.p)
    player.render(777)
    player.lib.gss_handoff_put(player.h, clip_of(player, whole[:400], sound=1, partial=1))
    out = []
    for block, extension in [(64, None), (100, (1000, 1)), (64, None), (333, (3000, 0))] + [(250, None)] * 12:
        if extension:
            length, partial = extension
            player.lib.gss_handoff_extend(player.h, clip_of(player, whole[:length], sound=1, partial=partial))
        out += player.render(block)[0]
    np.testing.assert_array_equal(np.asarray(out[:3000], np.float32), whole)  # from its first sample on
    assert player.p.swaps == 2               # the old sound and the new one; parts are no new sounds
    assert player.p.starved_blocks == 0 and not player.p.front.partial
    player.close()


def test_running_out_of_a_part_pauses_until_the_rest_comes(lib):
    """The part's samples exactly; then, its next ones not there yet, a decay from the last one
    to exactly 0 in RAMP samples, silence, and on from where it stopped, fading back in over
    RAMP samples, then exactly the clip's samples again."""
    whole = np.linspace(0.5, 1.0, 1000, dtype=np.float32)
    player = Player(lib)
    player.lib.gss_player_play(player.p)
    player.lib.gss_handoff_put(player.h, clip_of(player, whole[:50], sound=1, partial=1))
    out = player.render(64)[0] + player.render(RAMP)[0] + player.render(64)[0]
    assert player.p.starved_blocks == 3 and player.p.position == 50 and player.p.playing  # position held
    assert out[:50] == list(whole[:50])
    decay = np.array(out[50:50 + RAMP])
    assert np.all(np.diff(np.concatenate([[whole[49]], decay])) <= 0) and decay[-1] == 0.0
    assert decay[0] > 0.99 * whole[49]                                   # no cut
    assert out[50 + RAMP:] == [0.0] * (len(out) - 50 - RAMP)            # then silence, not noise
    player.lib.gss_handoff_extend(player.h, clip_of(player, whole, sound=1, partial=0))
    resumed = player.render(2 * RAMP)[0]
    gain = np.array(resumed[:RAMP]) / whole[50:50 + RAMP]
    assert 0 < gain[0] < 0.01 and np.all(np.diff(gain) > 0) and gain[-1] == 1.0
    assert resumed[RAMP:] == list(whole[50 + RAMP:50 + 2 * RAMP])       # on from where it paused
    player.close()


# --- the pause de-clicked: no step at its start or end beyond the sound's own and the ramps' ---

def tone(length, peak=0.9, hz=200.0, rate=48000):
    """A sine whose sample 262 (where the parts below run out) is near its peak: a cut there
    would be a step of almost `peak`."""
    t = np.arange(length) - 261
    return (peak * np.cos(2 * np.pi * hz * t / rate)).astype(np.float32)


def biggest_step(samples):
    return float(np.max(np.abs(np.diff(np.asarray(samples, np.float64)))))


def click_bound(clip, peak):
    """The clip's own steepest step, plus two ramps' (a fade-in over the rest of a decay): a
    smoothstep's steepest slope is 1.5 per ramp."""
    return biggest_step(clip) + 2 * 1.5 * peak / RAMP + 1e-6


@pytest.mark.parametrize("idle_blocks", [0, 4], ids=["shorter-than-the-decay", "long"])
def test_a_pause_neither_cuts_nor_jumps_back_in(lib, idle_blocks):
    whole = tone(3000)
    player = Player(lib)
    player.lib.gss_player_play(player.p)
    player.lib.gss_handoff_put(player.h, clip_of(player, whole[:262], sound=1, partial=1))
    out = []
    for _ in range(5 + idle_blocks):         # runs out 6 samples into the 5th block
        out += player.render(64)[0]
    assert player.p.starved_blocks == 1 + idle_blocks
    player.lib.gss_handoff_extend(player.h, clip_of(player, whole, sound=1, partial=0))
    for _ in range(10):
        out += player.render(64)[0]
    out = np.asarray(out, np.float32)
    assert abs(out[261]) > 0.89                                          # the cut would be this big
    assert biggest_step(out) <= click_bound(whole, 0.9), biggest_step(out)
    resume = (5 + idle_blocks) * 64
    np.testing.assert_array_equal(out[:262], whole[:262])
    np.testing.assert_array_equal(out[resume + RAMP:], whole[262 + RAMP:262 + len(out) - resume])
    assert player.p.starved_blocks == 1 + idle_blocks                    # counted as ever
    player.close()


def test_a_pause_mid_crossfade_and_new_sounds_during_it_and_its_fade_in(lib):
    """The pause decays from what was heard (the crossfade's mix, not the part's last sample);
    a new sound that comes during the pause fades in, and one that comes during that fade-in
    crossfades from it: no step beyond the crossfades' own."""
    player = Player(lib, xfade=32)
    player.offer(1.0, length=10000)
    player.lib.gss_player_play(player.p)
    out = player.render(64)[0]
    player.lib.gss_handoff_put(player.h, clip_of(player, [-1.0] * 8, sound=1, partial=1))
    for _ in range(3):                       # crossfades toward -1, runs out 8 samples in
        out += player.render(64)[0]
    assert player.p.starved_blocks == 3
    assert out[71] == 1 - 2 * 7 / 32 and out[72] > 0.99 * out[71]       # decays from the mix
    assert out[199] == 0.0 and out[200:] == [0.0] * 56                  # to 0 in RAMP samples
    player.lib.gss_handoff_put(player.h, clip_of(player, [0.5] * 10000, sound=2, partial=0))
    out += player.render(64)[0]              # comes in during the pause, fading in
    player.lib.gss_handoff_put(player.h, clip_of(player, [-0.5] * 10000, sound=3, partial=0))
    for _ in range(3):                       # comes in during the fade-in
        out += player.render(64)[0]
    assert player.p.swaps == 4 and player.p.front.sound == 3 and player.p.starved_blocks == 3
    assert out[256] == 0.0 and 0 < out[319] < 0.5                       # 2 was fading in
    assert biggest_step(out) <= 2 / 32 + 1e-6, biggest_step(out)        # the crossfades' own steps
    assert out[256 + RAMP:] == [-0.5] * (len(out) - 256 - RAMP)          # then exactly 3
    player.close()


def test_stop_and_play_are_as_abrupt_as_ever(lib):
    """A pause's ramps end with `stop` (silence at once) and `play` (the first sample at once)."""
    whole = tone(1000)
    player = Player(lib)
    player.lib.gss_player_play(player.p)
    player.lib.gss_handoff_put(player.h, clip_of(player, whole[:262], sound=1, partial=1))
    for _ in range(5):
        player.render(64)                    # paused 58 samples into the decay
    player.lib.gss_player_stop(player.p)
    assert player.render(64)[0] == [0.0] * 64
    player.lib.gss_handoff_extend(player.h, clip_of(player, whole, sound=1, partial=0))
    player.lib.gss_player_play(player.p)
    np.testing.assert_array_equal(player.render(64)[0], whole[:64])
    player.close()


def test_the_benchmarks_check_of_the_outlet_takes_the_ramps_and_nothing_else(lib):
    """benchmarks/realtime.py follows the outlet along the whole clip: exact outside a pause's
    ramps, their shape inside. A streamed sound with pauses long and short, then a new sound
    that comes during a pause, pass; a sample changed or skipped does not."""
    assert realtime.RAMP == RAMP
    rng = np.random.default_rng(1)
    first = (0.5 * rng.standard_normal(4000)).astype(np.float32)
    second = (0.5 * rng.standard_normal(6000)).astype(np.float32)
    player = Player(lib)
    player.lib.gss_player_play(player.p)
    out = []
    for block in range(100):
        part = {0: (first, 300, 1),                # runs out at 300 (block 4),
                5: (first, 900, 1),                # the rest comes at once (320): a pause shorter than the
                                                   # decay; runs out at 920 (block 14),
                20: (first, 1200, 1),              # a long pause, fading in from 1280; runs out in block 24,
                26: (second, 2500, 1),             # a new sound comes during the decay, runs out in 65,
                66: (second, 6000, 0)}.get(block)  # a pause shorter than the decay
        if part:
            clip, length, partial = part
            sound = 1 if clip is first else 2
            if block in (0, 26):
                player.lib.gss_handoff_put(player.h, clip_of(player, clip[:length], sound, partial))
            else:
                player.lib.gss_handoff_extend(player.h, clip_of(player, clip[:length], sound, partial))
        out += player.render(64)[0]
    out = np.asarray(out, np.float32)
    assert player.p.starved_blocks == 10 and player.p.swaps == 2

    played = out[:26 * 64]
    checked, paused, exact = realtime.follow(played, first, 0.0)
    assert exact and checked == 1200 and paused == len(played) - 1200
    k, offset = realtime.find_start(out, second, len(played), len(out), from_start=True)
    assert (k, offset) == (len(played), 0)
    assert not np.array_equal(out[k:k + RAMP], second[:RAMP])          # it faded in
    checked, paused, exact = realtime.follow(out[k:], second, 0.0, before=out[k - 1])
    assert exact and paused > 0 and checked == len(out) - k - paused

    up = lambda x: np.nextafter(x, np.float32(9))                       # noqa: E731
    for label, sample, change in [("outside the ramps", 600, up),
                                  ("in a fade-in after a short pause", 330, lambda x: x + 2),
                                  ("in a fade-in after a long pause", 1290, lambda x: -x),
                                  ("in a decay", 936, lambda x: -x),
                                  ("in the silence", 1152, lambda x: np.float32(1e-6))]:
        broken = played.copy()
        broken[sample] = change(broken[sample])
        assert not realtime.follow(broken, first, 0.0)[2], label
    skipped = np.delete(played, 5 * 64 + RAMP + 5)                       # a sample lost after a fade-in
    assert not realtime.follow(skipped, first, 0.0)[2]


def test_a_part_not_yet_taken_is_replaced_by_the_longer_one(lib):
    player = Player(lib)
    player.lib.gss_handoff_put(player.h, clip_of(player, [1.0] * 10, sound=1, partial=1))
    player.lib.gss_handoff_extend(player.h, clip_of(player, [1.0] * 40, sound=1, partial=0))
    assert player.p.front == player.ffi.NULL
    player.lib.gss_player_play(player.p)
    assert player.render(40)[0] == [1.0] * 40 and player.p.starved_blocks == 0
    player.close()


def test_a_new_sound_comes_in_while_the_old_one_waits_for_its_rest(lib):
    """The worker skips the rest of a sound when a newer one is asked for: the newer one must
    still come in, even though the old one's crossfade was cut by the wait."""
    player = Player(lib, xfade=32)
    player.offer(1.0, length=1000)
    player.lib.gss_player_play(player.p)
    player.render(8)
    player.lib.gss_handoff_put(player.h, clip_of(player, [2.0] * 20, sound=1, partial=1))
    player.render(64)                         # fades toward sound 1, runs out of it mid-fade
    assert player.p.starved_blocks == 1
    player.lib.gss_handoff_put(player.h, clip_of(player, [3.0] * 1000, sound=2, partial=0))
    player.render(64)
    samples, _ = player.render(64)
    assert player.p.front.sound == 2 and samples[-1] == 3.0
    # a late part of sound 1 is nobody's: it is dropped, not played
    player.lib.gss_handoff_extend(player.h, clip_of(player, [9.0] * 100, sound=1, partial=0))
    assert 9.0 not in player.render(16)[0] and player.p.front.sound == 2
    player.close()


def test_the_ready_clock_takes_the_whole_clip_at_once(lib):
    """`ready` forces the swap so that `write` then copies the whole clip, DSP on or off."""
    player = Player(lib)
    player.lib.gss_player_play(player.p)
    player.lib.gss_handoff_put(player.h, clip_of(player, [1.0] * 10, sound=1, partial=1))
    player.render(4)
    player.lib.gss_handoff_extend(player.h, clip_of(player, [1.0] * 40, sound=1, partial=0))
    assert player.lib.gss_player_swap(player.p, player.h, 1) == 1
    assert player.p.front.length == 40 and not player.p.front.partial and player.p.position == 4
    player.close()

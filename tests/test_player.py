"""player.c, the clip double buffer of [ganspacesynth~], on its own: compiled
with the system's C compiler and driven through cffi, no Pd needed."""

import shutil
import subprocess

import numpy as np
import pytest

from pd_helpers import REPO

SOURCE = REPO / "pd_external" / "player.c"

CDEF = """
typedef struct gss_clip { int length; float samples[]; } gss_clip;
typedef struct gss_handoff { void *slot; } gss_handoff;
typedef struct gss_player {
    gss_clip *front, *fading, *graveyard[4];
    long position;
    int fade_position, fade_length, xfade_samples, playing, loop;
    unsigned long swaps, silent_blocks;
} gss_player;
gss_clip *gss_clip_new(int length);
void gss_handoff_init(gss_handoff *h);
void gss_handoff_put(gss_handoff *h, gss_clip *clip);
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

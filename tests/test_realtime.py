"""The real-time harness: Pd on a real JACK server, playing while the engine generates.

Runs benchmarks/realtime.py's measurement as a test: its own jackd (dummy
driver, 48 kHz, 64-frame periods) and ``pd -jack -callback``, a patch that
plays [ganspacesynth~] for GANSPACESYNTH_RT_SECONDS (default 60) with a
coefficient changing every 50 ms (generation back to back) and the same
patch with generation off (for a third of that time). It checks behaviour --
the harness runs, the counts are reported, Pd plays sound at the outlet,
nothing crashes -- and prints the figures; whether they are good is the
benchmark's business.
"""

import os
import shutil
import sys

import pytest

from pd_helpers import REPO, locate_external

sys.path.insert(0, str(REPO / "benchmarks"))
import realtime  # noqa: E402

pytestmark = [pytest.mark.pd, pytest.mark.slow]

SECONDS = float(os.environ.get("GANSPACESYNTH_RT_SECONDS", "60"))


@pytest.fixture(scope="module")
def pd_dir():
    if not shutil.which("jackd"):
        pytest.fail("jackd is not installed: install jackd2 (Debian/Ubuntu: apt-get install jackd2); "
                    "CI installs it", pytrace=False)
    return locate_external(REPO / "build" / "pd-tests")


@pytest.mark.parametrize("generate", [False, True], ids=["generation-off", "generation-on"])
def test_pd_plays_on_jack_while_the_engine_generates(pd_dir, tmp_path, generate):
    try:
        # The patch with generation off is the harness's own check (Pd plays, JACK counts);
        # a third of the time is enough for it, and the 20-minute suite needs the minute.
        seconds = SECONDS if generate else SECONDS / 3
        r = realtime.run(pd_dir, period=64, seconds=seconds, generate=generate, folder=tmp_path)
    except realtime.Failure as error:
        pytest.fail(str(error), pytrace=False)
    print(f"\n{seconds:g} s at 64-frame periods, generation {'on' if generate else 'off'}: "
          f"{r['jack_xruns']} JACK xruns of Pd, {r['driver_xruns']} of the dummy driver itself, "
          f"{r['late_ticks']} late ticks of Pd (worst {r['worst_excess_ms']:.1f} ms late), "
          f"perform worst {r['perform_wall_max_us']:.0f} us wall / {r['perform_cpu_max_us']:.0f} us CPU "
          f"({r['perform_cpu_slow_blocks']} of {r['perform_blocks']} blocks over 50 us of CPU), "
          f"{r['generations']} generations, loudest {r['loudest_db']:.0f} dB; jackd real-time: "
          f"{r['jack_realtime']}; threads: {realtime.describe_threads(r['threads'])}")
    for key in ("jack_xruns", "driver_xruns", "late_ticks", "generations"):
        assert isinstance(r[key], int) and r[key] >= 0, (key, r[key])
    assert r["loudest_db"] > 40, "no sound at the outlet"
    assert r["silent_blocks"] == 0  # the clip was there from START on
    assert 0 < r["perform_cpu_mean_us"] and 0 < r["perform_wall_mean_us"]
    # every 64-sample block since `stats reset` (at START) counted (within 10%: the times are
    # when the lines were read, and a cycle JACK skips has no blocks)
    assert abs(r["perform_blocks"] / (r["measured_s"] * realtime.RATE / 64) - 1) < 0.1
    assert 0 <= r["perform_cpu_slow_blocks"] <= r["perform_blocks"]
    if generate:
        assert r["generations"] > 0 and r["swaps"] > 0
    else:
        assert r["generations"] == 0 and r["swaps"] == 0
    # the engine's threads run nicer than Pd's own
    nices = [nice for name, nice, _, _ in r["threads"] if name.startswith("tf_")]
    main_nice = r["threads"][0][1]
    assert nices and all(n == min(19, main_nice + 10) for n in nices), r["threads"]
    # and as many compute threads as the default gives Pd at its priority: every core at real time
    cores = os.cpu_count() or 1
    realtime_pd = r["threads"][0][2] in ("fifo", "rr")
    expected = int(os.environ.get("GANSPACESYNTH_THREADS") or (cores if realtime_pd else max(1, cores - 1)))
    assert r["compute_threads"] == expected, r["threads"]


def test_a_knob_turn_is_heard_before_its_clip_is_whole(pd_dir, tmp_path):
    """`stream 1` (the default): a coefficient change reaches the outlet with the start of its
    clip, before the engine has finished the whole clip (its `ready`), and what the outlet
    plays from there is the whole clip, sample for sample to float rounding (the whole clip
    made by the engine in a process of its own; see realtime.EXACT), with at most pauses
    where the player waited for the rest (a short decay to silence and fade back in, checked
    for their shape). How fast is the benchmark's business (`realtime.py --latency`)."""
    try:
        r = realtime.run_latency(pd_dir, period=64, changes=4, spacing_ms=1500, stream=True, folder=tmp_path)
    except realtime.Failure as error:
        pytest.fail(str(error), pytrace=False)
    print("\n" + realtime.LATENCY_HEADER + "\n" + realtime.summarize_latency(r))
    for change in r["changes"]:
        assert change["latency_ms"] is not None, r["changes"]            # every change was heard
        assert change["exact"] and change["checked"] >= realtime.LATENCY_MATCH, change
        assert change["ready_ms"] is not None and change["first_sample_ms"] < change["ready_ms"], change

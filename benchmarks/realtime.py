"""Dropouts under a real audio server: JACK's xruns of Pd while the engine generates.

    python benchmarks/realtime.py                       # 60 s per run, periods 256 and 64
    python benchmarks/realtime.py --seconds 10 --periods 64
    python benchmarks/realtime.py --latency [--model full]   # knob to sound, stream on and off

For each period, starts its own JACK server (``jackd``, dummy driver, 48 kHz:
a real-time audio callback with no sound card) and runs Pd on it with
``-jack -callback``, so that Pd's DSP runs inside JACK's process callback and
a Pd that is late is an xrun JACK counts. The patch plays [ganspacesynth~]'s
clip in a loop for --seconds, twice: once while a coefficient changes every
50 ms with ``auto 1`` (generation back to back), once with the coefficients
still (generation off). Reported per run:

* JACK's xruns of Pd: ``JackEngine::XRun: client = pure_data was not
  finished`` lines in jackd's output during the measurement (and, apart,
  the dummy driver's own late wake-ups, ``JackTimedDriver::Process XRun``);
* Pd's late ticks: a [metro 5] measures the wall-clock time between its
  ticks; a tick that comes more than one period + 1 ms after the 5 ms
  logical time said is late (the worst such excess is shown too);
* the perform routine's worst time per 64-sample block, wall clock and the
  thread's own CPU time (``stats``): far more wall than CPU means Pd's thread
  was preempted, not slow;
* the loudest [env~] of the outlet (dB, 0 = silence), the generations done
  and their mean time, and the nice value and scheduling policy of Pd's
  threads (real time only where the system allows it: ``-rt`` is asked for
  and the policy actually seen is reported).

Every server is started here and ended by its process id; ``-n NAME`` with
``JACK_DEFAULT_SERVER=NAME`` keeps it apart from any other JACK server.
Pd quitting from inside JACK's callback would hang in jack_client_close, so
the patch prints DONE and Pd is ended by its process id too.

Pd and jackd come from PATH (Debian: puredata-core, jackd2); the external
from GANSPACESYNTH_PD_PATH, the installed package, or a CMake build in
build/pd-bench. Timing figures mean something only on an otherwise idle
machine.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from pd_patch import Patch, SetupError, locate_external, parse_stats, thread_table  # noqa: E402  (the tests' patch writer)

RATE = 48000
CHANGE_MS = 50
TICK_MS = 5
JACK_XRUN = "JackEngine::XRun: client = pure_data was not finished"
DRIVER_XRUN = "JackTimedDriver::Process XRun"


class Failure(RuntimeError):
    """The harness could not run (missing program, server that would not start, Pd error)."""


def _voice(p):
    """[r gss] -> [ganspacesynth~] -> [dac~], its replies printed and `generate` sent once
    it has `loaded`; returns the object and the [route loaded ready] of its replies."""
    receive = p.obj("r gss")
    gss = p.obj("ganspacesynth~")
    dac = p.obj("dac~")
    p.chain(receive, gss, dac)
    p.connect(gss, 0, dac, 1)
    p.connect(gss, 1, p.obj("print reply"))
    route = p.obj("route loaded ready")
    p.connect(gss, 1, route)
    p.connect(route, 0, p.msg("; gss generate"))
    return gss, route


def _first_ready(p, route, outlets):
    """A [t b ...] with `outlets` + 1 outlets fired by the voice's first `ready` only
    (its last outlet closes the gate); returns it: its outlets 0..outlets-1 are free."""
    once = p.obj("spigot 1")
    p.connect(route, 1, once)
    start = p.obj("t" + " b" * (outlets + 1))
    p.connect(once, 0, start)
    p.connect(start, outlets, p.msg("0"))
    p.connect(start + 1, 0, once, 1)
    return start


def compute_threads(replies):
    """The compute-thread count Pd's engine replied to `threads` (the patches ask before
    loading): the default depends on Pd's priority, so ask rather than guess."""
    counts = [int(r.split()[1]) for r in replies if r.startswith("threads ")]
    if not counts:
        raise Failure(f"Pd's engine did not reply its thread count: {replies[:10]}")
    return counts[-1]


def realtime_patch(model, pca, seconds, period, generate):
    """The measured patch; prints START when the first clip plays and DONE after `seconds`."""
    p = Patch()
    late_ms = period * 1000.0 / RATE + 1
    load = p.obj("loadbang")
    setup = p.msg(f"; pd dsp 1; gss xfade 10, loop 1, play, threads, load {model}"
                  + (f" {pca}" if pca else ""))
    p.chain(load, setup)
    gss, route = _voice(p)

    # the first `ready` starts the measurement, once
    start = _first_ready(p, route, 4)
    p.connect(start, 3, p.msg("; gss stats reset" + ("; gss auto 1" if generate else "")))
    p.connect(start, 2, p.obj("print START"))

    # late ticks: wall-clock time between ticks of a 5 ms metro
    ticks = p.obj(f"metro {TICK_MS}")
    tick = p.obj("t b b")
    elapsed = p.obj("realtime")
    excess = p.obj(f"- {TICK_MS}")
    late = p.obj(f"moses {late_ms}")
    p.connect(start, 1, ticks)
    p.chain(ticks, tick)
    p.connect(tick, 1, elapsed, 1)  # [realtime]: right inlet reads, left inlet restarts
    p.connect(tick, 0, elapsed)
    p.chain(elapsed, excess, late)
    p.connect(start, 2, elapsed)  # no tick before START counts
    late_bang = p.obj("t b")
    counter = p.obj("f")
    plus = p.obj("+ 1")
    late_count = p.obj("f")
    p.connect(late, 1, late_bang)
    p.chain(late_bang, counter, plus)
    p.connect(plus, 0, counter, 1)
    p.connect(plus, 0, late_count, 1)
    worst = p.obj("max")
    worst_store = p.obj("f")
    p.connect(excess, 0, worst)
    p.connect(worst, 0, worst, 1)
    p.connect(worst, 0, worst_store, 1)

    # the coefficient changes, when generating
    changes = p.obj(f"metro {CHANGE_MS}")
    value = p.obj("random 2001")
    scaled = p.obj("expr ($f1 - 1000) / 500")
    coeff = p.msg("; gss coeff 0 $1")
    if generate:
        p.connect(start, 1, changes)
    p.chain(changes, value, scaled, coeff)

    # sound at the outlet: the loudest env~ during the measurement
    env = p.obj("env~ 8192")
    loudest = p.obj("max")
    loudest_store = p.obj("f")
    p.connect(gss, 0, env)
    p.connect(env, 0, loudest)
    p.connect(loudest, 0, loudest, 1)
    p.connect(loudest, 0, loudest_store, 1)
    p.connect(start, 0, p.msg("0"))
    p.connect(len(p.lines) - 1, 0, loudest, 1)

    # after `seconds`: stop, report, DONE
    end = p.obj(f"delay {seconds * 1000}")
    p.connect(start, 1, end)
    report = p.obj("t b b b b b b")
    p.connect(end, 0, report)
    p.connect(report, 5, p.msg("stop"))
    p.connect(len(p.lines) - 1, 0, ticks)
    p.connect(len(p.lines) - 1, 0, changes)
    p.connect(report, 4, p.msg("; gss stats"))
    p.connect(report, 3, late_count)
    p.connect(late_count, 0, p.obj("print late-ticks"))
    p.connect(report, 2, worst_store)
    p.connect(worst_store, 0, p.obj("print worst-excess-ms"))
    p.connect(report, 1, loudest_store)
    p.connect(loudest_store, 0, p.obj("print loudest-db"))
    p.connect(report, 0, p.obj("print DONE"))
    return p


class Reader:
    """Collects a process's lines with the time each arrived."""

    def __init__(self, stream, echo=None):
        self.lines = []
        self.thread = threading.Thread(target=self._read, args=(stream, echo), daemon=True)
        self.thread.start()

    def _read(self, stream, echo):
        for line in stream:
            self.lines.append((time.monotonic(), line.rstrip("\n")))
            if echo:
                echo(line.rstrip("\n"))

    def first(self, prefix):
        return next((t for t, line in self.lines if line.startswith(prefix)), None)

    def between(self, text, t0, t1):
        return sum(1 for t, line in self.lines if text in line and t0 <= t <= t1)


def stop(process):
    """End a process we started, by its id: SIGTERM, then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(pd_dir, *, period, seconds, generate, model="default", pca=None, realtime=True,
        threads=None, echo=None, folder=None):
    """One measured run on a fresh JACK server; returns a dict of figures."""
    folder = Path(folder or tempfile.mkdtemp(prefix="gss-rt-"))
    patch = realtime_patch(model, pca, seconds, period, generate).write(folder / "realtime.pd")
    pd_lines, jack_lines, threads_seen = run_on_jack(
        pd_dir, patch, period=period, budget=seconds + 300, realtime=realtime, threads=threads, echo=echo,
        name=f"gss-rt-{os.getpid()}-{period}-{int(generate)}")
    t0, t1 = pd_lines.first("START"), pd_lines.first("DONE")
    text = [line for _, line in pd_lines.lines]

    def value(prefix):
        found = [line.split(":", 1)[1].strip() for line in text if line.startswith(prefix + ":")]
        return found[-1] if found else None

    replies = [line[len("reply: "):] for line in text if line.startswith("reply: ")]
    errors = [r for r in replies if r.startswith("error")]
    stats = [r for r in replies if r.startswith("stats")]
    readies = [float(r.split()[1]) for r in replies if r.startswith("ready")]
    if errors or not stats:
        raise Failure(f"Pd reported errors {errors[:5]} or no stats:\n" + "\n".join(text[-30:]))
    perform = parse_stats(stats[-1])
    jack_start = "\n".join(line for _, line in jack_lines.lines[:12])
    return {
        "period": period, "generate": generate, "seconds": seconds, "model": model,
        "measured_s": t1 - t0,
        "jack_xruns": jack_lines.between(JACK_XRUN, t0, t1),
        "driver_xruns": jack_lines.between(DRIVER_XRUN, t0, t1),
        "late_ticks": int(float(value("late-ticks") or 0)),
        "worst_excess_ms": float(value("worst-excess-ms") or 0),
        "loudest_db": float(value("loudest-db") or 0),
        "perform_wall_max_us": perform["max_us"], "perform_wall_mean_us": perform["mean_us"],
        "perform_cpu_max_us": perform["cpu_max_us"], "perform_cpu_mean_us": perform["cpu_mean_us"],
        "perform_blocks": int(perform["blocks"]), "perform_cpu_slow_blocks": int(perform["slow_blocks"]),
        "silent_blocks": perform["silent_blocks"], "swaps": perform["swaps"],
        "generations": max(0, len(readies) - 1),
        "generation_ms": (sum(readies[1:]) / (len(readies) - 1)) if len(readies) > 1 else None,
        "jack_realtime": "starting in realtime mode" in jack_start,
        "threads": threads_seen,
        "compute_threads": compute_threads(replies),
    }


def run_on_jack(pd_dir, patch, *, period, budget, realtime=True, threads=None, echo=None, name="gss-rt",
                env_extra=None):
    """Start a JACK server (dummy driver) and Pd on it with the patch, until the patch prints
    DONE; end both by process id. Returns Pd's lines, jackd's lines and Pd's threads as seen
    one second after START (if the patch prints it)."""
    for program in ("jackd", "pd"):
        if not shutil.which(program):
            raise Failure(f"{program} is not installed (Debian: apt-get install "
                          f"{'jackd2' if program == 'jackd' else 'puredata-core'})")
    folder = Path(patch).parent
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1", JACK_DEFAULT_SERVER=name,
               TF_CPP_MIN_LOG_LEVEL="2", **(env_extra or {}))
    if threads:
        env["GANSPACESYNTH_THREADS"] = str(threads)
    jack_command = ["jackd", "-n", name, "-R" if realtime else "--no-realtime",
                    "-d", "dummy", "-r", str(RATE), "-p", str(period)]
    jackd = subprocess.Popen(jack_command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=env)
    pd = None
    try:
        jack_lines = Reader(jackd.stdout, echo and (lambda line: echo("jackd: " + line)))
        deadline = time.monotonic() + 20
        while not any("server starting" in line for _, line in jack_lines.lines):
            if jackd.poll() is not None or time.monotonic() > deadline:
                raise Failure("jackd did not start:\n" + "\n".join(l for _, l in jack_lines.lines[-20:]))
            time.sleep(0.05)
        time.sleep(0.5)  # the driver's first cycles
        pd_command = ["pd", "-jack", "-callback", "-rt" if realtime else "-nrt", "-nogui", "-noprefs",
                      "-nomidi", "-r", str(RATE), "-stderr", "-path", str(pd_dir), str(patch)]
        pd = subprocess.Popen(pd_command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=env, cwd=str(folder))
        pd_lines = Reader(pd.stderr, echo)
        deadline = time.monotonic() + budget
        threads_seen = []
        while pd_lines.first("DONE") is None:
            if pd.poll() is not None:
                raise Failure(f"Pd ended (status {pd.returncode}) before the end of the run:\n"
                              + "\n".join(l for _, l in pd_lines.lines[-30:]))
            if time.monotonic() > deadline:
                raise Failure("Pd did not finish the run in time:\n"
                              + "\n".join(l for _, l in pd_lines.lines[-30:]))
            if pd_lines.first("START") is not None and not threads_seen:
                time.sleep(1)
                threads_seen = list(thread_table(pd.pid).values())
            time.sleep(0.1)
        time.sleep(0.2)
    finally:
        if pd:
            stop(pd)
        stop(jackd)
    return pd_lines, jack_lines, threads_seen


# --- knob-to-sound latency -------------------------------------------------

LATENCY_MATCH = 2048      # samples of a new clip's start that must be found at the outlet
# How far an outlet sample may be from the whole clip's, as a share of the clip's peak (or of
# full scale, if the clip is quieter): float rounding, no more. A part is computed from a
# shorter input than the whole clip, and on some CPUs TensorFlow's kernels then sum in another
# order (an AVX2 machine, 2026-12-03: parts up to 1.1e-7 from the whole clip on the default
# model, 3.5e-7 of the peak on the full size's random weights; 0 on the machines measured
# before). A wrong sample (a misplaced part, the old clip's, a click) is off by 1e-3 or more.
# Whether the samples were the same bit for bit is reported apart.
EXACT = 1e-6
RAMP = 128                # player.h's GSS_RAMP: a pause's decay to silence, and the fade-in after it
RAMP_SLACK = 1e-6         # float rounding of a ramp's gain, computed by the player
AFTER_RAMP = 32           # samples of the clip's own that must follow a fade-in


def rounding(clip):
    """EXACT for this clip, in its own units."""
    return EXACT * max(1.0, float(np.abs(clip).max()))


def change_values(changes):
    """The coefficient-0 values of the measured changes: all different, spread over -2..2."""
    return [round(-2 + 4 * ((i * 37) % changes) / max(1, changes - 1), 4) for i in range(changes)]


def latency_patch(model, pca, values, spacing_ms, stream, recording):
    """Loads, plays in a loop with no crossfade, records the outlet to `recording` (float
    WAV) and changes coefficient 0 to each of `values`, `spacing_ms` apart, printing the
    logical time of every change and every `ready` since the recording started; DONE."""
    p = Patch()
    p.obj(f"table values {len(values)}")
    load = p.obj("loadbang")
    setup = p.msg(f"; values 0 {' '.join(map(str, values))}; pd dsp 1; "
                  f"gss xfade 0, loop 1, play, stream {int(stream)}, threads, load {model}"
                  + (f" {pca}" if pca else ""))
    p.chain(load, setup)
    gss, route = _voice(p)
    recorder = p.obj("writesf~ 1")
    p.connect(gss, 0, recorder)
    p.connect(p.obj("r rec"), 0, recorder)

    # the first `ready`: record from here on (logical time 0), changes after 300 ms
    start = _first_ready(p, route, 3)
    p.connect(start, 2, p.msg(f"; rec open -bytes 4 {recording}, start; gss auto 1, stats reset"))
    begin = p.obj("delay 300")
    p.connect(start, 0, begin)

    # every `ready`: its logical time
    ready_time = p.obj("t b")
    p.connect(route, 1, ready_time)
    ready_clock = p.obj("timer")
    p.connect(start, 1, ready_clock)
    p.connect(ready_time, 0, ready_clock, 1)
    p.connect(ready_clock, 0, p.obj("print ready-ms"))

    # the changes
    metro = p.obj(f"metro {spacing_ms}")
    p.connect(begin, 0, metro)
    counter = p.obj("f")
    plus = p.obj("+ 1")
    p.chain(metro, counter, plus)
    p.connect(plus, 0, counter, 1)
    last = p.obj(f"moses {len(values)}")
    p.connect(counter, 0, last)
    each = p.obj("t f f")
    p.connect(last, 0, each)
    p.chain(each + 0, p.obj("t f b"))
    when = len(p.lines) - 1
    change_clock = p.obj("timer")
    p.connect(start, 1, change_clock)
    p.connect(when, 1, change_clock, 1)
    pack = p.obj("pack f f")
    p.connect(change_clock, 0, pack, 1)
    p.connect(when, 0, pack)
    p.connect(pack, 0, p.obj("print change"))
    p.connect(each, 1, p.obj("tabread values"))
    p.connect(len(p.lines) - 1, 0, p.msg("; gss coeff 0 $1"))

    # after the last change and one more spacing: stop, report, DONE
    end = p.obj("t b b b")
    p.connect(last, 1, end)
    p.connect(end, 2, p.msg("stop"))
    p.connect(len(p.lines) - 1, 0, metro)
    done = p.obj(f"delay {spacing_ms}")
    p.connect(end, 1, done)
    report = p.obj("t b b")
    p.connect(done, 0, report)
    p.connect(report, 1, p.msg("; rec stop; gss stats"))
    p.connect(report, 0, p.obj("print DONE"))
    return p


# reference_clips' own process: the engine's Instrument, as Pd's engine runs it
REFERENCE_SCRIPT = """
import sys
import numpy as np
from ganspacesynth.instrument import Instrument

model, pca, values, out, rate = sys.argv[1], sys.argv[2] or None, np.load(sys.argv[3]), sys.argv[4], int(sys.argv[5])
instrument = Instrument()
instrument.load(model, pca)
clips = []
for value in values:
    instrument.set_coefficient(0, float(value))
    clips.append(instrument.generate(rate))
np.save(out, np.stack(clips))
"""


def reference_clips(model, pca, values, rate=RATE, threads=None, folder=None):
    """What the engine makes for each value, whole, at Pd's rate: what the outlet must play.

    Made in a process of its own with the thread count Pd's engine replied it computes with
    (``threads``: the default depends on Pd's priority, which this process has not), so
    that the same arithmetic runs in the same order: on another count TensorFlow splits
    its sums otherwise (the full size's clips differ by 6e-5 of their peak between 1 and 2
    threads), and it takes its count once per process."""
    folder = Path(folder or tempfile.mkdtemp(prefix="gss-reference-"))
    np.save(folder / "values.npy", np.asarray(values, dtype=np.float64))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if threads:
        env["GANSPACESYNTH_THREADS"] = str(threads)
    done = subprocess.run([sys.executable, "-c", REFERENCE_SCRIPT, str(model), str(pca or ""),
                           str(folder / "values.npy"), str(folder / "clips.npy"), str(rate)],
                          env=env, capture_output=True, text=True)
    if done.returncode:
        raise Failure(f"the reference clips could not be made:\n{done.stderr[-3000:]}")
    return list(np.load(folder / "clips.npy"))


def find_start(out, clip, begin, end, from_start, block=64):
    """The first block boundary k in begin..end where the outlet plays the clip's own samples
    (LATENCY_MATCH of them) and the clip position o there: 0 for a streamed sound, which
    starts from its first sample (to float rounding: see EXACT); anywhere for a whole clip
    swapped in at the old clip's position (`stream 0`: the whole clip made as here, bit for
    bit). None if the clip never plays there. A streamed sound that came while the old one
    paused fades in (see fades_in): its first RAMP samples are checked that way."""
    n, tolerance = LATENCY_MATCH, rounding(clip)
    looped = np.concatenate([clip, clip[:n]])  # a looping clip runs on from its end to its start
    for k in range(-(-begin // block) * block, min(end, len(out) - n) + 1, block):
        if from_start:
            if fades_in(out, k, looped, 0, out[k - 1] if k else 0.0, tolerance, after=n - RAMP):
                return k, 0
            continue
        for o in np.flatnonzero(clip == out[k]):
            if np.array_equal(out[k:k + n], looped[o:o + n]):
                return k, int(o)
    return None


def fades_in(out, i, clip, j, before, tolerance, after=AFTER_RAMP):
    """Whether the outlet plays the clip on from clip[j] at out[i] as the player does after a
    pause: RAMP samples fading in, each the clip's sample times a gain in 0..1, give or take
    what is left of the pause's decay (never more than `before`, the outlet's sample before:
    the decay only falls), then `after` samples (or as many as there are) of the clip's own,
    within `tolerance`. Exact playback passes too (all gains 1); where a fade-in starts in
    the wrong place, the samples after it are the wrong ones."""
    n = min(RAMP, len(out) - i, len(clip) - j)
    ramp, faded = out[i:i + n], clip[j:j + n]
    slack = abs(before) + RAMP_SLACK
    if not np.all((np.minimum(faded, 0) - slack <= ramp) & (ramp <= np.maximum(faded, 0) + slack)):
        return False
    m = min(after, len(out) - i - n, len(clip) - j - n)
    return bool(np.all(np.abs(out[i + n:i + n + m] - clip[j + n:j + n + m]) <= tolerance))


def follow(out, clip, tolerance, before=0.0):
    """Walk the outlet's samples along the clip's: (clip samples played, samples of pause,
    whether every sample was either the clip's next one or part of a pause). In a pause the
    player waits for the rest of the clip (`starved_blocks`): from the last sample played the
    outlet decays to silence (never growing, 0 after RAMP samples), stays silent, then the
    clip goes on where it stopped, fading in (fades_in). Outside these ramps every sample
    must be the clip's; in them, the shape is checked, not the values to the bit. The sound
    itself may start with a fade-in, if it came during the old one's pause (`before`: the
    outlet's sample before out[0]). A part that runs out within RAMP samples of its fade-in
    (the engine's parts are far longer) is not followed: it counts as not exact."""
    i = j = paused = 0
    if len(out) and abs(out[0] - clip[0]) > tolerance and fades_in(out, 0, clip, 0, before, tolerance):
        i = j = min(RAMP, len(out), len(clip))
    while i < len(out):
        if j < len(clip) and abs(out[i] - clip[j]) <= tolerance:
            i, j = i + 1, j + 1
            continue
        start = i
        while i < len(out):
            previous = out[i - 1] if i else before
            pausing = out[i] == 0.0 or (i - start < RAMP and abs(out[i]) <= abs(previous)
                                        and out[i] * previous >= 0)
                # where the clip goes on: its sample right after the fade-in is its own (where
                # out ends before that, a sample that may be the pause's is taken to be)
            if i + RAMP < len(out) and j + RAMP < len(clip):
                goes_on = abs(out[i + RAMP] - clip[j + RAMP]) <= tolerance
            else:
                goes_on = not pausing
            if i > start and j < len(clip) and goes_on and fades_in(out, i, clip, j, previous, tolerance):
                break
            if not pausing:
                return j, paused + i - start, False
            i += 1
        paused += i - start
        n = min(RAMP, len(out) - i, len(clip) - j)
        i, j = i + n, j + n
    return j, paused, True


def run_latency(pd_dir, *, period, changes=50, spacing_ms=400, stream=True, model="default", pca=None,
                realtime=True, threads=None, echo=None, folder=None, env_extra=None):
    """Knob to sound: `changes` coefficient changes, `spacing_ms` apart; for each, the time from
    the `coeff` message to the first sample of its clip at the outlet (audio time: the
    recording's samples, so what a listener hears; JACK's own output latency comes on top),
    and whether the outlet then played the whole clip's samples, to float rounding (EXACT), and
    bit for bit (see follow: the ramps of a pause by their shape)."""
    import soundfile

    folder = Path(folder or tempfile.mkdtemp(prefix="gss-latency-"))
    values = change_values(changes)
    recording = folder / "outlet.wav"
    patch = latency_patch(model, pca, values, spacing_ms, stream, recording.name).write(folder / "latency.pd")
    pd_lines, _, _ = run_on_jack(pd_dir, patch, period=period, budget=changes * spacing_ms / 1000 + 600,
                                 realtime=realtime, threads=threads, echo=echo, env_extra=env_extra,
                                 name=f"gss-lat-{os.getpid()}-{period}-{int(stream)}")
    text = [line for _, line in pd_lines.lines]
    replies = [line[len("reply: "):] for line in text if line.startswith("reply: ")]
    errors = [r for r in replies if r.startswith("error")]
    stats = [r for r in replies if r.startswith("stats")]
    if errors or not stats:
        raise Failure(f"Pd reported errors {errors[:5]} or no stats:\n" + "\n".join(text[-30:]))
    change_ms = [float(line.split()[2]) for line in text if line.startswith("change:")]
    ready_ms = [float(line.split(":")[1]) for line in text if line.startswith("ready-ms:")]
    out, rate = soundfile.read(str(recording), dtype="float32")
    if rate != RATE or len(change_ms) != changes:
        raise Failure(f"recording at {rate} Hz, {len(change_ms)} of {changes} changes seen")
    in_effect = compute_threads(replies)
    clips = reference_clips(model, pca, values, threads=in_effect, folder=folder)
    per_sample = RATE / 1000.0
    starts = [int(round(t * per_sample)) for t in change_ms] + [len(out)]
    rows = []
    for i, clip in enumerate(clips):
        begin, end = starts[i], starts[i + 1]
        found = find_start(out, clip, begin, end, from_start=stream)
        if found is None:
            rows.append({"latency_ms": None})
            continue
        k, offset = found
        later_ready = [t for t in ready_ms if t >= change_ms[i]]
        expected = np.concatenate([clip[offset:], clip])
        before = out[k - 1] if k else 0.0
        checked, paused, exact = follow(out[k:end], expected, rounding(clip), before=before)
        bitwise = exact and follow(out[k:end], expected, 0.0, before=before)[2]
        rows.append({
            "latency_ms": (k - begin) / per_sample,
            "first_sample_ms": k / per_sample,
            "ready_ms": later_ready[0] if later_ready else None,   # the whole clip was there
            "checked": checked, "paused": paused, "exact": exact, "bitwise": bitwise,
        })
    fields = list(map(float, stats[-1].split()[1:]))
    return {"period": period, "stream": stream, "model": model, "changes": rows, "values": values,
            "compute_threads": in_effect,
            "spacing_ms": spacing_ms, "swaps": fields[3], "starved_blocks": fields[6] if len(fields) > 6 else 0,
            "generation_ms": [float(r.split()[1]) for r in replies if r.startswith("ready")][1:]}


def summarize_latency(r):
    """One line: median and worst knob-to-sound latency, and how exact the outlet was."""
    import statistics

    seen = [c for c in r["changes"] if c["latency_ms"] is not None]
    lat = [c["latency_ms"] for c in seen]
    if not lat:
        return (f"period {r['period']}, stream {int(r['stream'])}, {r['compute_threads']} compute "
                f"thread(s): no change was heard")
    exact = sum(c["exact"] for c in seen)
    bitwise = sum(c["bitwise"] for c in seen)
    checked = sum(c["checked"] for c in seen)
    generation = statistics.median(r["generation_ms"]) if r["generation_ms"] else float("nan")
    return (f"| {r['period']} | {'on' if r['stream'] else 'off'} | {r['compute_threads']} | "
            f"{statistics.median(lat):.1f} ms | "
            f"{np.percentile(lat, 90):.1f} ms | {max(lat):.1f} ms | {len(seen)} of {len(r['changes'])} | {exact} of {len(seen)} "
            f"({checked} samples; {bitwise} bit for bit) | {int(r['starved_blocks'])} | {generation:.0f} ms |")


LATENCY_HEADER = ("| period | stream | compute threads | knob to sound, median | 90th percentile | worst | "
                  "changes heard | played as the whole clip (to rounding) | starved blocks | "
                  "whole clip made in (median) |\n"
                  "|---|---|---|---|---|---|---|---|---|---|")


def full_size_folder(folder):
    """The released architecture (random weights) saved with its own 8-direction SeFa PCA, as
    `load FOLDER` takes it; its cost does not depend on the weights."""
    import ganspacesynth
    from run import full_size_model

    folder = Path(folder)
    if not (folder / "pca.npz").is_file():
        full_size_model().save(folder)
        model = ganspacesynth.load_model(folder)
        ganspacesynth.compute_pca(model, estimator="sefa", n_components=8).save(folder / "pca.npz")
    return folder


def describe_threads(rows):
    """Pd's own thread, JACK's threads in Pd and the engine's, in one line."""
    return "; ".join(f"{name} nice {nice} {policy}{f' {prio}' if prio else ''}"
                     for name, nice, policy, prio in rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="measured seconds per run (default 60)")
    parser.add_argument("--periods", type=int, nargs="+", default=[256, 64], help="JACK periods in frames")
    parser.add_argument("--model", default="default",
                        help="model folder, 'default', or 'full' (the released architecture, made once)")
    parser.add_argument("--pca", default=None, help="PCA file (default: the model's own)")
    parser.add_argument("--threads", type=int, default=None, help="GANSPACESYNTH_THREADS for the engine")
    parser.add_argument("--no-realtime", action="store_true", help="jackd --no-realtime and pd -nrt")
    parser.add_argument("--verbose", action="store_true", help="echo Pd's output")
    parser.add_argument("--latency", action="store_true",
                        help="measure knob-to-sound latency instead (50 changes, stream on and off)")
    parser.add_argument("--changes", type=int, default=50, help="--latency: changes measured")
    parser.add_argument("--spacing", type=float, default=None,
                        help="--latency: ms between changes (default 300, 1500 for --model full)")
    args = parser.parse_args(argv)
    if args.model == "full":
        args.model = str(full_size_folder(REPO / "build" / "full-size-model"))
    try:
        pd_dir = locate_external(REPO / "build" / "pd-bench")
    except SetupError as error:
        sys.exit(str(error))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; "
          f"model {args.model}; {args.seconds:g} s per run at {RATE} Hz")
    if args.latency:
        # Each change should find the engine idle, or the figure measures a wait for the last
        # change's part or whole-clip step in hand (--spacing 500 measures just that): on one
        # thread the full size's parts and whole clip take 0.5-0.75 s under JACK, too close
        # to the 800 ms this was once.
        spacing = args.spacing or (1500 if "full-size" in args.model else 300)
        print(LATENCY_HEADER, flush=True)
        for period in args.periods:
            for stream in (True, False):
                try:
                    r = run_latency(pd_dir, period=period, changes=args.changes, spacing_ms=spacing,
                                    stream=stream, model=args.model, pca=args.pca,
                                    realtime=not args.no_realtime, threads=args.threads,
                                    echo=print if args.verbose else None)
                except Failure as error:
                    sys.exit(str(error))
                print(summarize_latency(r), flush=True)
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
        return
    header = ("| period | generation | JACK xruns of Pd | driver's own xruns | Pd late ticks "
              "(worst excess) | perform worst: wall / CPU | blocks over 50 us CPU | generations (mean) | loudest |")
    rows = [header, "|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for period in args.periods:
        for generate in (False, True):
            try:
                r = run(pd_dir, period=period, seconds=args.seconds, generate=generate, model=args.model,
                        pca=args.pca, realtime=not args.no_realtime, threads=args.threads,
                        echo=print if args.verbose else None)
            except Failure as error:
                sys.exit(str(error))
            gen = (f"{r['generations']} ({r['generation_ms']:.0f} ms)" if r["generation_ms"] else "0")
            rows.append(f"| {period} ({period * 1000 / RATE:.2f} ms) | {'on' if generate else 'off'} | "
                        f"{r['jack_xruns']} | {r['driver_xruns']} | {r['late_ticks']} "
                        f"({r['worst_excess_ms']:.1f} ms) | {r['perform_wall_max_us']:.0f} / "
                        f"{r['perform_cpu_max_us']:.0f} us | {r['perform_cpu_slow_blocks']} of "
                        f"{r['perform_blocks']} | {gen} | {r['loudest_db']:.0f} dB |")
            notes.append(f"period {period}, generation {'on' if generate else 'off'}: jackd real-time "
                         f"{'yes' if r['jack_realtime'] else 'no'}; {r['compute_threads']} compute "
                         f"thread(s); threads: {describe_threads(r['threads'])}")
            print(rows[-1], flush=True)
    print("\n" + "\n".join(rows))
    print("\n" + "\n".join(notes))


if __name__ == "__main__":
    main()

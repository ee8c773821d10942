"""GANSpaceSynth in Pd through pyext, for machines where [ganspacesynth~] cannot run.

    [pyext ganspacesynth_pyext ganspacesynth]             same messages as [ganspacesynth~]
    [pyext ganspacesynth_pyext ganspacesynth MODEL PCA]   ... loading MODEL (and PCA) at once
    [pyext ganspacesynth_pyext gansynth]                  drop-in for the original
                                                          [pyext. sopimagenta.gansynth.pyext gansynth]
    [pyext ganspacesynth_pyext halluseq EDITS-ARRAY]      drop-in for the original
                                                          [pyext. sopimagenta.ganspacesynth.pyext halluseq ...]

Put the folder holding this file on Pd's search path (pyext then finds the
module: it puts Pd's -path folders on Python's path); an installed package
keeps it in the folder ``ganspacesynth pd-path`` prints and load pyext; the
Python that pyext runs must be able to import ``ganspacesynth``. Do not add
``@detach 1``: every object already has its own worker thread, and a detached
method would read Pd's arrays from another thread; an object that finds
itself detached turns detaching off and answers with an error.

Messages go to the object's second inlet (pyext keeps the first for itself);
replies leave its first outlet. Everything [ganspacesynth~] understands works
the same, with the same replies (see its help patch), except that pyext
cannot make a signal: clips go into Pd arrays, to be played with [tabplay~]
or [tabread4~].

    load MODEL [PCA]   -> loading, then loaded N_COMPONENTS SAMPLERATE LENGTH; without PCA
                       the model folder's own pca.npz when it has one, 'none': no PCA;
                       then names NAME0 NAME1 ... when the PCA's components have names
    pca FILE           -> loaded N_COMPONENTS SAMPLERATE LENGTH [, names ...]
    unload
    coeffs C0 C1 ...   coeff I V   coeffs-array ARRAY
    knob NAME V        the coefficient of the component called NAME
    find FILE [STEPS [LAYER_STEPS]]
                       -> progress F ..., found DISTANCE PITCH C0 C1 ...: the point that
                       sounds most like FILE becomes the current z, pitch and coefficients
    z-random [SEED]    z-array ARRAY   pitch P   mode layer|z|latent
    generate, bang     -> ready MS (a clip at Pd's sample rate)
    auto 0|1           generate after every change of coefficients, z, pitch or mode
    write ARRAY        -> written ARRAY N (the last clip, array resized)
    array ARRAY        (pyext only) also write every new clip into ARRAY before
                       'ready'; 'array' alone stops that
    steps-clear, step C0 C1 ..., interp N, spacing S, trim S, attack S, sustain S, release S
    hallucinate ARRAY  -> progress F ..., written ARRAY N
    stats              -> stats 0 0 0 CLIPS (there is no perform routine to time)
    threads [N]        -> threads N: TensorFlow's compute threads (before the first load only)
    play, stop, loop, xfade, stream -> error: play the array instead
    anything else      -> error unknown message 'X'
    every problem      -> error TEXT, word by word, starting with the message that
                          caused it (also printed to Pd's window)

A number that is a symbol, or a float NaN (which real pyext passes to Python as
-2147483648), is refused wherever a number is expected.

MODEL, PCA and FILE are looked up in the patch's folder, then along Pd's
search path: pyext's ``_searchpaths()`` returns None in vanilla Pd, so the
module asks Pd itself, sending the name to a [file which] in its hidden canvas
(below); that sees the -path folders, the preferences' paths and Pd's standard
folders, not a [declare -path] of the patch. A model folder is found through
the file that makes it one (experiment.json or config.json). ``default`` is the
model shipped with the package.

The original GANSpaceSynth object's messages work too, with its replies, so
that patches made for it keep working; they read and write arrays at the
model's own rate (16 kHz), as the original did:

    load_ganspace_components FILE [EDITS]  load a PCA; EDITS (an array) is resized to
                                           the number of components and holds the
                                           coefficients the synthesize messages use
                                           -> loaded_pca
    randomize_z Z1 [Z2 ...]                a random z into each array -> randomized
    slerp_z Z0 Z1 DST T                    spherical interpolation -> slerped
    save_z Z FILE                          Z's values into FILE (.npy added if no suffix)
    synthesize Z OUT PITCH [Z OUT PITCH ...]
                                           z from array Z, plus the EDITS coefficients
                                           when a PCA is loaded -> synthesized
    synthesize_noz OUT PITCH [E ...] [-- OUT PITCH [E ...] ...]
                                           the coefficients E (numbers or arrays; EDITS
                                           when none) on the PCA's mean; PITCH is
                                           ignored, as z is -> synthesized
    hallucinate_noz OUT                    a Hallu composition of the steps given with
                                           'step' -> hallucinated N
    hallucinate OUT NOTES K [SPACING TRIM ATTACK SUSTAIN RELEASE]
                                           the original GANSynth hallucination: NOTES random
                                           z, slerped -> hallucinated N

The original's "interpolation steps" K placed K - 1 points between two notes
(see ganspacesynth.hallu); 'interp_steps K' (halluseq) and 'hallucinate OUT
NOTES K' keep that meaning. Levels follow the engine (mix peak 0.9), not the
original's 0.5. Failures answer 'error TEXT' where the original raised.

Class ``gansynth`` differs from ``ganspacesynth`` only where the two
conflict: 'load CKPT' answers 'loaded LENGTH SAMPLERATE' and 'unload'
answers 'unloaded', as the original did. Class ``halluseq`` is the original
Hallu sequencer: created with the name of its coefficients array, it keeps a
list of steps edited through that array (next_step, prev_step, add_step,
remove_step -> updated), settings (interp_steps, sample_spacing, start_trim,
attack, sustain, release -> updated), send_state (-> step index I, step count
N, settings NAME V ...), 'load CKPT' -> worker on LENGTH SAMPLERATE,
'unload' -> worker off, and 'hallucinate_noz OUT' renders its steps.

Threads: the message methods run on Pd's thread and only read arrays, parse
and queue jobs. One worker thread per object runs the engine
(``ganspacesynth.instrument.Instrument``) in order; a new 'generate' replaces
one still waiting (latest wins) and a setter replaces the same setter waiting
just before it, as in [ganspacesynth~]. The worker never calls pyext: in real
pyext a thread flext did not start (any Python thread) runs ``_outlet``,
``pyext._send`` and Buffer writes at once, without Pd's lock, racing with DSP
(that crashed Pd). It puts its results in a queue, and a [metro] running in
Pd's scheduler drains it: the module makes that clock itself, the first time an
object has work, in a hidden canvas of its own (``pd menunew``; never part of
any patch), and it runs only while some object waits for its worker. Arrays
are written and replies sent only there, on Pd's thread, between DSP ticks.
Pd never waits for a generation; like every call into pyext, a tick may wait
for Python's interpreter lock, up to its switch interval (5 ms), when the
worker is running Python code rather than TensorFlow.
"""

import itertools
import math
import os
import sys
import threading
import time
import traceback
import weakref
from collections import deque

import numpy as np

try:
    import pyext
except ImportError:  # outside Pd: importable for documentation, not usable
    pyext = None

MAX_JOBS = 1024
WORKER_NICE = 10          # as [ganspacesynth~]: how much nicer than Pd the engine's threads run
WORKER_IDLE = "idle"
COALESCABLE = {"coeffs", "z-array", "z-random", "pitch", "mode"}
# halluseq's setting names, its defaults, and the engine's names for them.
HALLUSEQ_SETTINGS = {
    "interp_steps": ("interp", 1),
    "sample_spacing": ("spacing", 0.2),
    "start_trim": ("trim", 0.0),
    "attack": ("attack", 0.5),
    "sustain": ("sustain", 0.5),
    "release": ("release", 0.5),
}

_serial = itertools.count(1)


class _Problem(Exception):
    """A message that cannot be carried out; its text is the error reply."""


class _Cancelled(Exception):
    """The object was deleted while its worker was busy."""


def _text(value):
    return str(value)


def _fit(values, instrument):
    """The original's coefficient arrays may be longer than the PCA (its patches used
    8192 values): the values past the last component are not used."""
    if instrument.pca is not None and len(values) > instrument.n_components:
        return values[:max(instrument.n_components, 1)]
    return values


# How real pyext passes a float NaN from Pd to Python (flext converts it to an
# int): a number no message of this object can mean.
PYEXT_NAN = -2147483648


def _number(value, what):
    """A Pd atom that must be a number: a Python number, or an error naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Problem(f"{what}: expected a number, got '{value}'")
    if value == PYEXT_NAN or not math.isfinite(value):
        raise _Problem(f"{what}: got NaN or infinity (pyext passes NaN as {PYEXT_NAN}): "
                       "expected a finite number")
    return value


def _numbers(values, what):
    return [_number(value, what) for value in values]


# Names the engine puts in front of its errors that are not messages of this
# object: replaced by the message that caused the error.
_ENGINE_WORDS = ("z", "z-random", "coeffs", "coeff", "pitch", "mode", "generate", "pca", "load",
                 "hallucinate", "knob", "find")
MAX_FIND_STEPS = 100000


def _naming(message, text):
    """An error text that starts with the message that caused it."""
    if text.startswith(f"{message}:") or text.startswith(f"{message} "):
        return text
    head, colon, rest = text.partition(": ")
    if colon and head in _ENGINE_WORDS:
        text = rest
    return f"{message}: {text}"


# ---------------------------------------------------------------------------
# the worker


def _worker_nice():
    """GANSPACESYNTH_WORKER_NICE as [ganspacesynth~] reads it: 0 to 19, or "idle"."""
    text = os.environ.get("GANSPACESYNTH_WORKER_NICE", "").strip()
    if not text or text == WORKER_IDLE:
        return text or WORKER_NICE
    if text.isdigit() and int(text) <= 19:
        return int(text)
    print(f"ganspacesynth: GANSPACESYNTH_WORKER_NICE must be a whole number from 0 to 19 or idle, "
          f"not \"{text}\": the worker runs {WORKER_NICE} nicer than Pd", file=sys.stderr)
    return WORKER_NICE


def _run_below_pd():
    """Called on the worker thread before the engine starts: Pd's priority is not for it.

    A Python thread inherits the policy of the thread that made it, here Pd's,
    which runs at real-time priority with ``pd -rt``; so would TensorFlow's
    threads, made later from this one, and at Pd's own priority they could hold
    the cores Pd's audio needs. As [ganspacesynth~]'s worker: the normal policy,
    WORKER_NICE nicer than Pd (Linux: nice is per thread), "idle" the idle policy.
    """
    if not sys.platform.startswith("linux"):
        return
    nice = _worker_nice()
    policy = os.SCHED_IDLE if nice == WORKER_IDLE else os.SCHED_OTHER
    nice = 19 if nice == WORKER_IDLE else nice
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))   # 0: this thread
        me = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + nice))
    except OSError as error:
        print(f"ganspacesynth: cannot lower the worker's priority: {error}", file=sys.stderr)


class _Worker:
    """One thread running engine jobs in order, with [ganspacesynth~]'s coalescing.

    It never touches Pd: what it has for Pd (replies, array writes) goes into
    ``outbox``, which Pd's thread drains (``ganspacesynth._deliver``). It
    holds no reference to the Pd object, and its jobs reach the object
    through a weak proxy (``me``), so that deleting the box lets the object
    go at once, even mid-job (pyext warns "Object is still referenced"
    otherwise); a job whose object is gone ends at its next use of it.
    """

    def __init__(self, name):
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._jobs = []
        self._running = False
        self.outbox = deque()
        self.outbox_lock = threading.Lock()
        self.gone = False
        self.current = None       # the message whose job is running
        self.instrument = None
        self._start_error = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def post(self, kind, message, run):
        """Queue ``run(instrument)``; False when the queue is full."""
        with self._lock:
            if self.gone:
                return True
            if kind == "generate":
                self._jobs = [job for job in self._jobs if job[0] != "generate"]
            elif kind in COALESCABLE:
                others = [i for i, job in enumerate(self._jobs) if job[0] != "generate"]
                if others and self._jobs[others[-1]][0] == kind:
                    self._jobs[others[-1]] = (kind, message, run)
                    return True
            if len(self._jobs) >= MAX_JOBS:
                return False
            self._jobs.append((kind, message, run))
            self._wake.notify()
        return True

    def busy(self):
        with self._lock:
            return bool(self._jobs) or self._running

    def put(self, item):
        """Worker side: an item for Pd's side, keeping only the latest progress."""
        if self.gone:
            raise _Cancelled()
        with self.outbox_lock:
            if item[0] == "reply" and item[1] == "progress" and self.outbox \
                    and self.outbox[-1][0] == "reply" and self.outbox[-1][1] == "progress":
                self.outbox[-1] = item
            else:
                self.outbox.append(item)

    def take(self):
        with self.outbox_lock:
            return self.outbox.popleft() if self.outbox else None

    def close(self):
        with self._lock:
            self.gone = True
            self._jobs.clear()
            self._wake.notify()
        with self.outbox_lock:
            self.outbox.clear()

    def _engine(self):
        # The engine starts with the first job, so that creating the object
        # costs Pd nothing.
        if self.instrument is None and self._start_error is None:
            try:
                from ganspacesynth.instrument import Instrument

                self.instrument = Instrument()
            except Exception as error:  # noqa: BLE001 - shown to the musician
                self._start_error = (f"the ganspacesynth engine cannot start in Pd's Python "
                                     f"({sys.executable}): {type(error).__name__}: {error}")
        return self.instrument

    def _error(self, message, text, details=None):
        try:
            self.put(("error", _naming(message, text), details))
        except _Cancelled:
            pass

    def _main(self):
        _run_below_pd()
        while True:
            with self._lock:
                self._running = False
                while not self._jobs and not self.gone:
                    self._wake.wait()
                if self.gone:
                    return
                kind, message, run = self._jobs.pop(0)
                self._running = True
                self.current = message
            instrument = self._engine()
            try:
                if instrument is None:
                    raise _Problem(self._start_error)
                run(instrument)
            except (_Cancelled, ReferenceError):
                return        # the object was deleted: its jobs go with it
            except _Problem as problem:
                self._error(message, str(problem))
            except Exception as error:  # noqa: BLE001
                from ganspacesynth.errors import GanspacesynthError

                if isinstance(error, GanspacesynthError):
                    self._error(message, str(error))
                else:
                    self._error(message, f"internal error: {type(error).__name__}: {error}",
                                traceback.format_exc())
            finally:
                run = None   # the job (and the object it refers to) goes now
        # Leaving drops the engine and its model with the last reference.


# ---------------------------------------------------------------------------
# the road back to Pd: a clock on Pd's thread


class _Poll:
    """A [metro] on Pd's own thread that asks every object to drain its outbox.

    pyext gives a Python thread no safe way into Pd: a method called from a
    thread flext did not start (a plain ``threading.Thread``) runs
    ``_outlet``, ``pyext._send`` and Buffer writes at once on that thread,
    without Pd's lock, racing with DSP. So the worker only fills its outbox,
    and a clock running in Pd's scheduler drains it. The module makes that
    clock itself, the first time it is needed, in a hidden canvas of its own
    (``pd menunew``, never saved with any patch):

        [r NAME-run] -> [metro 10] -> [s NAME]      every object binds NAME
        [r NAME-which] -> [file which] -> [s NAME-found] / [s NAME-missing]

    The metro runs only while some object waits for its worker. The second
    chain asks Pd's own search path for a file (pyext's ``_searchpaths()``
    returns None in vanilla Pd). Everything here runs on Pd's thread.

    They are two canvases. While an object is being created, Pd's current
    canvas is the one that gets the object, and a canvas made then belongs to
    it without being one of its boxes: it outlives it, pointing to it. The
    clock's canvas never looks at its owner, so it is made whenever needed,
    also when an object created with arguments starts loading; the lookup's
    canvas does ([file which] searches its owners' [declare]s), so it is made
    only outside object creation (``creating``), and a name given as a
    creation argument is looked up in the patch's folder alone until then.
    """

    INTERVAL_MS = 10

    def __init__(self):
        self.name = f"__ganspacesynth_pyext_{os.getpid()}_{id(self):x}"
        self.made = False
        self.made_which = False
        self.running = False
        self.waiting = set()      # ids of objects whose worker has work or output
        self.starting = False
        self.creating = False     # inside an object's __init__

    def make(self):
        if self.made:
            return
        self.made = True
        canvas = f"pd-{self.name}-clock"
        pyext._send("pd", "menunew", [f"{self.name}-clock", "."])
        pyext._send(canvas, "vis", [0])
        for line in ([10, 10, "r", f"{self.name}-run"],
                     [10, 40, "metro", self.INTERVAL_MS],
                     [10, 70, "s", self.name]):
            pyext._send(canvas, "obj", line)
        for cord in ([0, 0, 1, 0], [1, 0, 2, 0]):
            pyext._send(canvas, "connect", cord)
        pyext._send(canvas, "dirty", [0])

    def wait(self, key):
        """Pd side: an object has work in flight; run the clock."""
        self.waiting.add(key)
        self.kick()

    def kick(self):
        """Pd side: run the clock if some object waits and it is not running."""
        if self.waiting and not self.running:
            self.make()
            self.running = True
            self.starting = True     # [metro] bangs at once: that bang is not a tick
            try:
                pyext._send(f"{self.name}-run", 1)
            finally:
                self.starting = False

    def done(self, key):
        """Pd side: an object has nothing in flight; stop the clock when none has."""
        self.waiting.discard(key)
        if self.running and not self.waiting:
            self.running = False
            pyext._send(f"{self.name}-run", 0)

    def which(self, owner, name):
        """Pd side: the file ``name`` along Pd's search path, or None."""
        if not self.made_which:
            if self.creating:
                return None
            self.made_which = True
            canvas = f"pd-{self.name}-which"
            pyext._send("pd", "menunew", [f"{self.name}-which", "."])
            pyext._send(canvas, "vis", [0])
            for line in ([10, 10, "r", f"{self.name}-which"],
                         [10, 40, "file", "which"],
                         [10, 70, "s", f"{self.name}-found"],
                         [100, 70, "s", f"{self.name}-missing"]):
                pyext._send(canvas, "obj", line)
            for cord in ([0, 0, 1, 0], [1, 0, 2, 0], [1, 1, 3, 0]):
                pyext._send(canvas, "connect", cord)
            pyext._send(canvas, "dirty", [0])
        found = []
        catch = lambda *atoms: found.append(str(atoms[0]) if atoms else "")  # noqa: E731
        owner._bind(f"{self.name}-found", catch)
        try:
            pyext._send(f"{self.name}-which", "symbol", [name])
        finally:
            owner._unbind(f"{self.name}-found", catch)
        return found[0] if found and found[0] else None


_poll = _Poll()
_pd_thread = [None]    # Pd's thread: the one that creates the objects


# ---------------------------------------------------------------------------
# the object


class ganspacesynth(pyext._class if pyext is not None else object):
    """[ganspacesynth~]'s messages and replies, writing clips into arrays."""

    def __init__(self, *args):
        self._inlets = 1
        self._outlets = 1
        self._clip = None            # the last clip, on Pd's side
        self._clips = 0
        self._auto = False
        self._array = None
        self._edits = None           # the original's coefficients array
        self._gone = False
        self._key = next(_serial)
        self._me = weakref.proxy(self)
        self._off_thread = 0
        _pd_thread[0] = threading.get_ident()
        self._worker = _Worker(f"ganspacesynth_pyext-{self._key}")
        self._bind(_poll.name, self._deliver)
        if args:
            _poll.creating = True
            try:
                self._load(args[:2])
            except _Problem as problem:
                # The outlets do not exist until __init__ returns.
                print(f"ganspacesynth_pyext: {problem}", file=sys.stderr)
            finally:
                _poll.creating = False

    def _del(self):
        # Called by pyext when the box is deleted. The worker is not waited
        # for: it drops its queue, abandons a Hallu at the next progress and
        # ends after the job it is running.
        self._gone = True
        self._worker.close()
        _poll.done(self._key)
        self._unbind(_poll.name, self._deliver)

    # --- the road back to Pd -----------------------------------------------
    def _in_pd(self, function):
        """Worker side: run ``function()`` on Pd's thread."""
        self._worker.put(("call", function, self._worker.current))

    def _later(self, selector, *atoms):
        """Worker side: a reply."""
        self._worker.put(("reply", selector, atoms))

    def _deliver(self, *_tick):
        # The poll clock's tick, on Pd's thread. No lock of ours is held
        # while a reply leaves: it may come straight back in as a message.
        if _poll.starting or self._gone:
            return
        if threading.get_ident() != _pd_thread[0]:
            # Never expected (the clock lives in Pd's scheduler): touch nothing
            # here, say so from Pd's thread at the next tick.
            self._off_thread += 1
            return
        if self._off_thread:
            count, self._off_thread = self._off_thread, 0
            self._error(f"internal: {count} deliveries were offered on a thread that is not "
                        "Pd's and left for Pd's own")
        while not self._gone:
            item = self._worker.take()
            if item is None:
                break
            if item[0] == "call":
                self._guard(item[1], item[2])
            elif item[0] == "error":
                if item[2]:
                    print(item[2], file=sys.stderr)
                self._error(item[1])
            else:
                self._reply(item[1], *item[2])
        # The worker puts its output before it counts as idle: idle and an
        # empty outbox means everything has been delivered.
        if not self._gone and not self._worker.busy() and not self._worker.outbox:
            _poll.done(self._key)

    def _reply(self, selector, *atoms):
        """Pd side: a message out of the outlet."""
        values = []
        for atom in atoms:
            if isinstance(atom, (bool, int, np.integer)):
                values.append(int(atom))
            elif isinstance(atom, (float, np.floating)):
                values.append(float(atom))
            else:
                values.append(str(atom))
        self._outlet(1, selector, values)

    def _error(self, text):
        """Pd side: an error reply, word by word like [ganspacesynth~]'s, and the
        same text in Pd's window."""
        print(f"ganspacesynth_pyext: error: {text}", file=sys.stderr)
        self._reply("error", *text.split())

    # --- jobs --------------------------------------------------------------
    def _post(self, kind, run, change=False, message=None):
        """Queue a job for the worker; ``message`` (default ``kind``) names it in errors."""
        message = message or kind
        if not self._worker.post(kind, message, run):
            self._error(f"{message}: dropped, {MAX_JOBS} messages are already waiting for "
                        "the engine")
            return
        _poll.wait(self._key)
        if change and self._auto:
            self._post_generate()

    def _post_generate(self):
        me = self._me       # jobs hold the object weakly (see _Worker)
        rate = float(pyext._samplerate())

        def run(instrument):
            start = time.monotonic()
            clip = instrument.generate(rate)
            ms = (time.monotonic() - start) * 1000.0

            def show():
                me._clip = clip
                me._clips += 1
                if me._array is not None:
                    try:
                        me._write(me._array, clip)
                    except _Problem as problem:
                        me._error(f"array: {problem}")
                me._reply("ready", ms)
            me._in_pd(show)
        self._post("generate", run)

    # --- arrays (Pd side only) -----------------------------------------------
    def _read(self, name, what):
        buffer = pyext.Buffer(_text(name))
        # Pd arrays hold at least one value: 0 means there is no such array.
        if len(buffer) == 0:
            raise _Problem(f"{what}: no array named '{name}'")
        return np.array(buffer[:], dtype=np.float32)

    def _check_array(self, name, what):
        if len(pyext.Buffer(_text(name))) == 0:
            raise _Problem(f"{what}: no array named '{name}'")

    def _write(self, name, values):
        buffer = pyext.Buffer(_text(name))
        if len(buffer) == 0:
            raise _Problem(f"no array named '{name}'")
        if len(buffer) != len(values):
            buffer.resize(len(values))
        buffer[:] = values
        buffer.dirty()

    # --- paths (Pd side) -----------------------------------------------------
    def _canvas_folder(self):
        canvas = getattr(self, "_canvas_dir", None)
        if callable(canvas):
            canvas = canvas()
        return str(canvas) if canvas else None

    def _folders(self):
        """Where a relative file name is written: the patch's folder."""
        folder = self._canvas_folder()
        return [folder] if folder else []

    def _resolve(self, name):
        """The patch's folder, then Pd's search path (asked of Pd through [file which]:
        its -path folders, the preferences' paths and the standard folders); a model
        folder is found by the file that makes it one. A name found nowhere is left
        for the engine to explain."""
        name = _text(name)
        if name in ("default", "none") or os.path.isabs(name):
            return name
        folder = self._canvas_folder()
        if folder and os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
        for landmark in ("", "experiment.json", "config.json"):
            found = _poll.which(self, os.path.join(name, landmark) if landmark else name)
            if found:
                return os.path.dirname(found) if landmark else found
        return name

    # --- messages: dispatch --------------------------------------------------
    def _anything_1(self, *message):
        """Hyphenated selectors (not Python names) and unknown messages."""
        if not message or not isinstance(message[0], pyext.Symbol):
            # a float or a list: the native object has no method for those either
            selector = "float" if len(message) == 1 else "list"
            return self._guard(lambda: self._unknown(selector))
        selector, args = str(message[0]), message[1:]
        handler = getattr(self, "_message_" + selector.replace("-", "_"), None)
        if handler is None or "-" not in selector:
            return self._guard(lambda: self._unknown(selector))
        return self._guard(lambda: handler(*args))

    def _unknown(self, selector):
        raise _Problem(f"unknown message '{selector}'")

    def _guard(self, action, message=None):
        # pyext prints a method's exception and then tries other methods, so
        # nothing may escape: every problem becomes an error reply.
        if threading.get_ident() != _pd_thread[0]:
            # '@detach 1' (or 2) runs methods on flext's threads, where
            # arrays are not safe: turn it off. flext queues this reply.
            self._detach(0)
            self._outlet(1, "error", "ganspacesynth_pyext: do not use @detach (the object has "
                         "its own worker thread); detach is now off, send the message "
                         "again".split())
            return
        try:
            action()
        except _Problem as problem:
            self._error(_naming(message, str(problem)) if message else str(problem))
        except Exception as error:  # noqa: BLE001
            traceback.print_exc()
            text = f"internal error: {type(error).__name__}: {error}"
            self._error(_naming(message, text) if message else text)

    # --- messages: loading -----------------------------------------------------
    def load_1(self, *args):
        self._guard(lambda: self._load(args))

    def _load(self, args):
        me = self._me       # jobs hold the object weakly (see _Worker)
        if not 1 <= len(args) <= 2 or not all(isinstance(a, pyext.Symbol) for a in args):
            raise _Problem("load: expected a model folder (or 'default') and optionally a PCA file")
        model = self._resolve(args[0])
        pca = self._resolve(args[1]) if len(args) == 2 else None

        def run(instrument):
            me._later("loading")
            me._later("loaded", *instrument.load(model, pca))
            me._later_names(instrument)
        self._post("load", run)

    def _later_names(self, instrument):
        """Worker side: after 'loaded', 'names ...' when the PCA's components have names."""
        names = instrument.component_names()
        if names:
            self._later("names", *names)

    def pca_1(self, *args):
        me = self._me       # jobs hold the object weakly (see _Worker)

        def act():
            if len(args) != 1 or not isinstance(args[0], pyext.Symbol):
                raise _Problem("pca: expected a PCA file")
            path = self._resolve(args[0])

            def run(instrument):
                me._later("loaded", *instrument.load_pca(path))
                me._later_names(instrument)
            self._post("pca", run)
        self._guard(act)

    def unload_1(self, *args):
        self._guard(lambda: self._post("unload", lambda instrument: instrument.unload()))

    # --- messages: what to synthesise -----------------------------------------
    def coeffs_1(self, *args):
        def act():
            values = _numbers(args, "coeffs")
            self._post("coeffs", lambda i: i.set_coefficients(values), change=True)
        self._guard(act)

    def coeff_1(self, *args):
        def act():
            if len(args) != 2:
                raise _Problem("coeff: expected an index and a value")
            index, value = _number(args[0], "coeff"), _number(args[1], "coeff")
            self._post("coeff", lambda i: i.set_coefficient(index, value), change=True)
        self._guard(act)

    def knob_1(self, *args):
        def act():
            if len(args) != 2 or not isinstance(args[0], pyext.Symbol):
                raise _Problem("knob: expected a component's name and a value")
            name, value = _text(args[0]), _number(args[1], "knob")
            self._post("knob", lambda i: i.set_knob(name, value), change=True)
        self._guard(act)

    def find_1(self, *args):
        me = self._me       # jobs hold the object weakly (see _Worker)

        def act():
            if not 1 <= len(args) <= 3 or not isinstance(args[0], pyext.Symbol):
                raise _Problem("find: expected an audio file, and optionally the steps on z and on "
                               "the layer")
            steps = []
            for what, value in zip(("steps", "layer steps"), args[1:]):
                if isinstance(value, pyext.Symbol) or value == PYEXT_NAN or not (
                        0 <= value <= MAX_FIND_STEPS and value == int(value)):
                    raise _Problem(f"find: the {what} must be a whole number from 0 to {MAX_FIND_STEPS}")
                steps.append(int(value))
            steps += [None] * (2 - len(steps))
            path = self._resolve(args[0])

            def run(instrument):
                distance, pitch, coefficients = instrument.find(path, steps[0], steps[1],
                                                                lambda f: me._progress(f))
                me._later("found", float(distance), int(pitch), *[float(c) for c in coefficients])
            self._post("find", run, change=True)
        self._guard(act)

    def _message_coeffs_array(self, *args):
        if len(args) != 1:
            raise _Problem("coeffs-array: expected one name")
        values = self._read(args[0], "coeffs-array")
        self._post("coeffs", lambda i: i.set_coefficients(values), change=True,
                   message="coeffs-array")

    def _message_z_array(self, *args):
        if len(args) != 1:
            raise _Problem("z-array: expected one name")
        values = self._read(args[0], "z-array")
        self._post("z-array", lambda i: i.set_z(values), change=True)

    def _message_z_random(self, *args):
        if len(args) > 1:
            raise _Problem("z-random: expected nothing or a seed")
        seed = _number(args[0], "z-random") if args else None
        self._post("z-random", lambda i: i.random_z(seed), change=True)

    def pitch_1(self, *args):
        def act():
            if len(args) != 1:
                raise _Problem("pitch: expected one number")
            pitch = _number(args[0], "pitch")
            self._post("pitch", lambda i: i.set_pitch(pitch), change=True)
        self._guard(act)

    def mode_1(self, *args):
        def act():
            if len(args) != 1:
                raise _Problem("mode: expected one name")
            mode = _text(args[0])
            self._post("mode", lambda i: i.set_mode(mode), change=True)
        self._guard(act)

    # --- messages: generating ----------------------------------------------------
    def generate_1(self, *args):
        self._guard(self._post_generate)

    def bang_1(self, *args):
        self._guard(self._post_generate)

    def auto_1(self, *args):
        def act():
            if len(args) != 1:
                raise _Problem("auto: expected one number")
            self._auto = _number(args[0], "auto") != 0
        self._guard(act)

    def write_1(self, *args):
        def act():
            if len(args) != 1:
                raise _Problem("write: expected one name")
            if self._clip is None:
                raise _Problem("write: no clip yet (send 'generate' and wait for 'ready')")
            self._write(args[0], self._clip)
            self._reply("written", _text(args[0]), len(self._clip))
        self._guard(act)

    def array_1(self, *args):
        def act():
            if len(args) > 1:
                raise _Problem("array: expected an array name, or nothing to stop writing")
            if args:
                self._check_array(args[0], "array")
            self._array = _text(args[0]) if args else None
        self._guard(act)

    def _no_signal(self, selector):
        raise _Problem(f"{selector}: the pyext version has no signal outlet; write the clip into "
                       "an array ('write ARRAY' or 'array ARRAY') and play it with [tabplay~]")

    def play_1(self, *args):
        self._guard(lambda: self._no_signal("play"))

    def stop_1(self, *args):
        self._guard(lambda: self._no_signal("stop"))

    def loop_1(self, *args):
        self._guard(lambda: self._no_signal("loop"))

    def xfade_1(self, *args):
        self._guard(lambda: self._no_signal("xfade"))

    def stream_1(self, *args):
        self._guard(lambda: self._no_signal("stream"))

    def stats_1(self, *args):
        self._guard(lambda: self._reply("stats", 0, 0, 0, self._clips))

    def threads_1(self, *args):
        me = self._me       # jobs hold the object weakly (see _Worker)

        def act():
            if len(args) > 1:
                raise _Problem("threads: expected nothing or a whole number of threads")
            count = _number(args[0], "threads") if args else None
            self._post("threads", lambda instrument: me._later("threads", instrument.set_threads(count)))
        self._guard(act)

    # --- messages: Hallu -----------------------------------------------------------
    def _message_steps_clear(self, *args):
        self._post("steps-clear", lambda i: i.clear_steps())

    def step_1(self, *args):
        def act():
            values = _numbers(args, "step")
            self._post("step", lambda i: i.add_step(values))
        self._guard(act)

    def _setting(self, name, args):
        def act():
            if len(args) != 1:
                raise _Problem(f"{name}: expected one number")
            value = _number(args[0], name)
            self._post("hallu setting", lambda i: i.set_hallu(name, value), message=name)
        self._guard(act)

    def interp_1(self, *args):
        self._setting("interp", args)

    def spacing_1(self, *args):
        self._setting("spacing", args)

    def trim_1(self, *args):
        self._setting("trim", args)

    def attack_1(self, *args):
        self._setting("attack", args)

    def sustain_1(self, *args):
        self._setting("sustain", args)

    def release_1(self, *args):
        self._setting("release", args)

    def hallucinate_1(self, *args):
        if 3 <= len(args) <= 8:
            self._guard(lambda: self._hallucinate_z(args))
        else:
            self._guard(lambda: self._hallucinate(args))

    def _progress(self, fraction):
        if self._worker.gone:
            raise _Cancelled()
        self._later("progress", float(fraction))

    def _hallucinate(self, args):
        me = self._me       # jobs hold the object weakly (see _Worker)
        if len(args) != 1:
            raise _Problem("hallucinate: expected one name")
        name = _text(args[0])
        self._check_array(name, "hallucinate")
        rate = float(pyext._samplerate())

        def run(instrument):
            audio = instrument.hallucinate(rate, lambda f: me._progress(f))
            me._in_pd(lambda: me._write_reply(name, audio, "written", name))
        self._post("hallucinate", run)

    def _write_reply(self, name, audio, *reply):
        self._write(name, audio)
        self._reply(*reply, len(audio))

    # --- the original object's messages ------------------------------------------
    def load_ganspace_components_1(self, *args):
        self._guard(lambda: self._load_components(args))

    def _load_components(self, args):
        me = self._me       # jobs hold the object weakly (see _Worker)
        if not 1 <= len(args) <= 2:
            raise _Problem("load_ganspace_components: expected a PCA file and an array for the "
                           "coefficients")
        path = self._resolve(args[0])
        edits = _text(args[1]) if len(args) == 2 else None
        if edits is not None:
            self._check_array(edits, "load_ganspace_components")

        def run(instrument):
            count = instrument.load_pca(path)[0]

            def show():
                if edits is not None:
                    me._edits = edits
                    buffer = pyext.Buffer(edits)
                    if len(buffer) != count:
                        buffer.resize(count)
                        buffer.dirty()
                me._components_loaded()
            me._in_pd(show)
        self._post("pca", run, message="load_ganspace_components")

    def _components_loaded(self):
        self._reply("loaded_pca")

    def randomize_z_1(self, *names):
        me = self._me       # jobs hold the object weakly (see _Worker)

        def act():
            if not names:
                raise _Problem("randomize_z: expected one or more array names")
            for name in names:
                self._check_array(name, "randomize_z")

            def run(instrument):
                zs = []
                for _ in names:
                    instrument.random_z()
                    zs.append(np.array(instrument.z, dtype=np.float32))

                def show():
                    for name, z in zip(names, zs):
                        me._write(name, z)
                    me._reply("randomized")
                me._in_pd(show)
            self._post("randomize_z", run)
        self._guard(act)

    def slerp_z_1(self, *args):
        me = self._me       # jobs hold the object weakly (see _Worker)

        def act():
            if len(args) != 4:
                raise _Problem("slerp_z: expected Z0 Z1 DESTINATION AMOUNT")
            z0, z1 = self._read(args[0], "slerp_z"), self._read(args[1], "slerp_z")
            destination = _text(args[2])
            self._check_array(destination, "slerp_z")
            amount = _number(args[3], "slerp_z")
            if len(z0) != len(z1):
                raise _Problem(f"slerp_z: '{args[0]}' has {len(z0)} values and '{args[1]}' "
                               f"{len(z1)}")

            def run(instrument):
                from ganspacesynth.model import slerp

                z = slerp(z0, z1, amount)

                def show():
                    me._write(destination, z)
                    me._reply("slerped")
                me._in_pd(show)
            self._post("slerp_z", run)
        self._guard(act)

    def save_z_1(self, *args):
        def act():
            if len(args) != 2:
                raise _Problem("save_z: expected an array and a file name")
            z = self._read(args[0], "save_z")
            path = _text(args[1])
            if not os.path.isabs(path):
                path = os.path.join(self._folders()[0] if self._folders() else ".", path)
            if not os.path.splitext(path)[1]:
                path += ".npy"
            try:
                np.save(path, z)
            except OSError as error:
                raise _Problem(f"save_z: cannot write {path}: {error.strerror}") from None
        self._guard(act)

    def _edit_values(self):
        """Pd side: the coefficients array registered by load_ganspace_components."""
        return None if self._edits is None else self._read(self._edits, "edits")

    def synthesize_1(self, *args):
        me = self._me       # jobs hold the object weakly (see _Worker)

        def act():
            if not args or len(args) % 3:
                raise _Problem(f"synthesize: {len(args)} arguments; expected Z OUT PITCH "
                               "[Z OUT PITCH ...]")
            notes = []
            for i in range(0, len(args), 3):
                z = self._read(args[i], "synthesize")
                out = _text(args[i + 1])
                self._check_array(out, "synthesize")
                notes.append((z, out, _number(args[i + 2], "synthesize")))
            edits = self._edit_values()

            def run(instrument):
                if instrument.model is None:
                    raise _Problem("no model loaded (send 'load CHECKPOINT' first)")
                clips = []
                for z, out, pitch in notes:
                    instrument.set_mode("z")
                    instrument.set_z(z)
                    instrument.set_pitch(pitch)
                    if instrument.pca is not None:
                        instrument.set_coefficients(_fit(edits, instrument) if edits is not None
                                                    else [0.0])
                    clips.append((out, instrument.generate()))
                me._in_pd(lambda: me._write_all(clips))
            self._post("synthesize", run)
        self._guard(act)

    def synthesize_noz_1(self, *args):
        me = self._me       # jobs hold the object weakly (see _Worker)

        def act():
            sounds = [[]]
            for arg in args:
                if isinstance(arg, pyext.Symbol) and str(arg) == "--":
                    sounds.append([])
                else:
                    sounds[-1].append(arg)
            notes = []
            for sound in sounds:
                if len(sound) < 2 or not isinstance(sound[0], pyext.Symbol):
                    raise _Problem("synthesize_noz: expected OUT PITCH [EDITS...] [-- OUT PITCH "
                                   "[EDITS...] ...]")
                out = _text(sound[0])
                self._check_array(out, "synthesize_noz")
                edits = []
                for edit in sound[2:]:
                    if isinstance(edit, pyext.Symbol):
                        edits.extend(self._read(edit, "synthesize_noz").tolist())
                    else:
                        edits.append(edit)
                if not sound[2:]:
                    registered = self._edit_values()
                    edits = registered.tolist() if registered is not None else [0.0]
                notes.append((out, edits))

            def run(instrument):
                clips = []
                for out, edits in notes:
                    instrument.set_mode("layer")
                    instrument.set_coefficients(_fit(edits, instrument))
                    clips.append((out, instrument.generate()))
                me._in_pd(lambda: me._write_all(clips))
            self._post("synthesize", run, message="synthesize_noz")
        self._guard(act)

    def _write_all(self, clips):
        for out, clip in clips:
            self._write(out, clip)
        self._reply("synthesized")

    def hallucinate_noz_1(self, *args):
        def act():
            if len(args) != 1:
                raise _Problem("hallucinate_noz: expected one array name")
            out = _text(args[0])
            self._check_array(out, "hallucinate_noz")
            self._post("hallucinate", self._hallucinate_noz_job(out), message="hallucinate_noz")
        self._guard(act)

    def _hallucinate_noz_job(self, out):
        me = self._me       # jobs hold the object weakly (see _Worker)

        def run(instrument):
            audio = instrument.hallucinate(None, lambda f: me._progress(f))
            me._in_pd(lambda: me._write_reply(out, audio, "hallucinated"))
        return run

    def _hallucinate_z(self, args):
        me = self._me       # jobs hold the object weakly (see _Worker)
        out = _text(args[0])
        self._check_array(out, "hallucinate")
        numbers = _numbers(args[1:], "hallucinate")
        notes, steps = int(numbers[0]), int(numbers[1])
        timing = dict(zip(("spacing", "start_trim", "attack", "sustain", "release"), numbers[2:]))

        def run(instrument):
            from ganspacesynth.errors import GanspacesynthError
            from ganspacesynth.hallu import HalluSettings, stitch
            from ganspacesynth.model import slerp

            model = instrument.model
            if model is None:
                raise GanspacesynthError("hallucinate: no model loaded (send 'load MODEL' first)")
            if notes < 1 or steps < 0:
                raise GanspacesynthError(f"hallucinate: {notes} notes and {steps} interpolation "
                                         "steps: expected at least one note and no negative steps")
            settings = HalluSettings(**timing)
            settings.validate(model.audio_length / model.sample_rate)
            zs = model.random_z(notes)
            points = []
            for a, b in zip(zs[:-1], zs[1:]):
                points.append(a)
                points.extend(slerp(a, b, j / steps) for j in range(1, steps))
            points.append(zs[-1])
            points = np.array(points, dtype=np.float32)
            clips = []
            for start in range(0, len(points), 8):
                clips.append(model.generate(points[start:start + 8], instrument.pitch,
                                            length=settings.kept_samples(model)))
                me._progress(min(1.0, (start + 8) / len(points)))
            audio = stitch(np.concatenate(clips), model.sample_rate, settings)
            me._in_pd(lambda: me._write_reply(out, audio, "hallucinated"))
        self._post("hallucinate", run)


class gansynth(ganspacesynth):
    """The original GANSynth object's replies to 'load' and 'unload'."""

    def load_1(self, *args):
        me = self._me       # jobs hold the object weakly (see _Worker)

        def act():
            if len(args) != 1 or not isinstance(args[0], pyext.Symbol):
                raise _Problem("load: expected a checkpoint folder")
            model = self._resolve(args[0])

            def run(instrument):
                _, rate, length = instrument.load(model)
                me._later("loaded", length, rate)
            self._post("load", run)
        self._guard(act)

    def unload_1(self, *args):
        me = self._me       # jobs hold the object weakly (see _Worker)

        def run(instrument):
            instrument.unload()
            me._later("unloaded")
        self._guard(lambda: self._post("unload", run))


class halluseq(ganspacesynth):
    """The original Hallu sequencer: steps edited through one coefficients array."""

    def __init__(self, edits=None, *args):
        super().__init__()
        self._edits = None if edits is None else _text(edits)
        self._steps = []
        self._step = 0
        self._settings = {name: default for name, (_, default) in HALLUSEQ_SETTINGS.items()}
        self._steps.append(self._new_step())

    # the steps live in Pd's array while they are edited
    def _edit_array(self):
        if self._edits is None:
            raise _Problem("halluseq: created without the name of its coefficients array")
        return pyext.Buffer(self._edits)

    def _new_step(self):
        if self._steps:
            return self._steps[self._step].copy()
        buffer = pyext.Buffer(self._edits) if self._edits is not None else None
        return np.zeros(len(buffer) if buffer is not None else 0, dtype=np.float32)

    def _read_edits(self):
        buffer = self._edit_array()
        values = np.array(buffer[:], dtype=np.float32) if len(buffer) else np.zeros(0, np.float32)
        self._steps[self._step] = values

    def _write_edits(self):
        buffer = self._edit_array()
        if len(buffer) == 0:
            raise _Problem(f"halluseq: no array named '{self._edits}'")
        buffer[:] = self._steps[self._step]
        buffer.dirty()

    def _navigate(self, change):
        def act():
            self._read_edits()
            change()
            self._write_edits()
            self._reply("updated")
        self._guard(act)

    def next_step_1(self, *args):
        self._navigate(lambda: setattr(self, "_step", (self._step + 1) % len(self._steps)))

    def prev_step_1(self, *args):
        self._navigate(lambda: setattr(self, "_step", (self._step - 1) % len(self._steps)))

    def add_step_1(self, *args):
        def add():
            self._steps.append(self._new_step())
            self._step = len(self._steps) - 1
        self._navigate(add)

    def remove_step_1(self, *args):
        def remove():
            if len(self._steps) > 1:
                del self._steps[self._step]
                self._step = min(self._step, len(self._steps) - 1)
        self._navigate(remove)

    def _set(self, name, args):
        def act():
            if len(args) != 1:
                raise _Problem(f"{name}: expected one number")
            value = _number(args[0], name)
            self._settings[name] = max(0, value) if name == "interp_steps" else value
            self._reply("updated")
        self._guard(act)

    def interp_steps_1(self, *args):
        self._set("interp_steps", args)

    def sample_spacing_1(self, *args):
        self._set("sample_spacing", args)

    def start_trim_1(self, *args):
        self._set("start_trim", args)

    def attack_1(self, *args):
        self._set("attack", args)

    def sustain_1(self, *args):
        self._set("sustain", args)

    def release_1(self, *args):
        self._set("release", args)

    def send_state_1(self, *args):
        def act():
            self._reply("step", "index", self._step)
            self._reply("step", "count", len(self._steps))
            for name in HALLUSEQ_SETTINGS:
                self._reply("settings", name, self._settings[name])
        self._guard(act)

    def load_1(self, *args):
        me = self._me       # jobs hold the object weakly (see _Worker)

        def act():
            if not args or not isinstance(args[0], pyext.Symbol):
                raise _Problem("load: expected a checkpoint folder")
            model = self._resolve(args[0])   # a second argument was the batch size

            def run(instrument):
                _, rate, length = instrument.load(model)
                me._later("worker", "on", length, rate)
            self._post("load", run)
        self._guard(act)

    def unload_1(self, *args):
        me = self._me       # jobs hold the object weakly (see _Worker)

        def run(instrument):
            instrument.unload()
            me._later("worker", "off")
        self._guard(lambda: self._post("unload", run))

    def _load_components(self, args):
        me = self._me       # jobs hold the object weakly (see _Worker)
        if len(args) != 1:
            raise _Problem("load_ganspace_components: expected a PCA file")
        path = self._resolve(args[0])

        def run(instrument):
            count = instrument.load_pca(path)[0]

            def show():
                # As the original did: the coefficients array gets one value
                # per component, and so does every step.
                if me._edits is not None:
                    buffer = me._edit_array()
                    if len(buffer) == 0:
                        raise _Problem(f"no array named '{me._edits}'")
                    me._read_edits()
                me._steps = [np.concatenate([step[:count], np.zeros(max(count - len(step), 0))])
                               .astype(np.float32) for step in me._steps]
                if me._edits is not None:
                    if len(buffer) != count:
                        buffer.resize(count)
                    me._write_edits()
                me._reply("updated")
            me._in_pd(show)
        self._post("pca", run, message="load_ganspace_components")

    def hallucinate_noz_1(self, *args):
        def act():
            if len(args) != 1:
                raise _Problem("hallucinate_noz: expected one array name")
            out = _text(args[0])
            self._check_array(out, "hallucinate_noz")
            self._read_edits()
            steps = [step.copy() for step in self._steps]
            settings = dict(self._settings)
            hallucinate = self._hallucinate_noz_job(out)

            def run(instrument):
                instrument.clear_steps()
                for step in steps:
                    instrument.add_step(_fit(step, instrument))
                for name, (engine_name, _) in HALLUSEQ_SETTINGS.items():
                    value = settings[name]
                    if name == "interp_steps":
                        value = max(int(value) - 1, 0)
                    instrument.set_hallu(engine_name, value)
                hallucinate(instrument)
            self._post("hallucinate", run, message="hallucinate_noz")
        self._guard(act)

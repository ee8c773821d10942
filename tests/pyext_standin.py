"""A stand-in for pyext (the Pd external that hosts Python classes), for tests.

pyext needs flext and cannot be built on every test machine, so the tests of
``pd_external/ganspacesynth_pyext.py`` run its classes inside this module,
installed as ``sys.modules["pyext"]`` by ``Pd.install()``. Every behaviour a
class can observe follows pyext's sources (grrrr/py: pyext.cpp ``work``,
pyargs.cpp ``MakePyArgs``/``GetPyArgs``, pybuffer.cpp, bound.cpp,
modmeth.cpp; flext: flout.cpp, flqueue.cpp) and what was seen in real Pd
0.53 with pyext on Python 3.11 (the project's reference FACTS.md, "The
original Pd object (pyext)"):

Creating an object (``Pd.create``)
    pyext makes the instance without calling ``__init__``, sets its
    bookkeeping, then calls ``__init__`` with the creation arguments
    converted like message arguments, and only then reads ``_inlets`` and
    ``_outlets`` (plain ints or callables; 1 when missing). SopiMlab's fork,
    which the original GANSpaceSynth scripts ran on, also sets
    ``_canvas_dir`` (the patch's folder, a string) before ``__init__``.

Inlets
    FACTS: "Pd inlet 0 of a pyext object takes only control messages
    (reload, detach, ...), Python inlet N is Pd inlet N". A class with
    ``_inlets = 1`` has Pd inlets 0 and 1 and takes its messages at Pd inlet
    1. Anything else sent to inlet 0 is posted as "no method for type ... into
    inlet 0", like ``pyext::m_method_``.

Dispatch (``pyext::work``), for a message ``sel args`` at inlet n, first hit wins:
    ``int_n`` (whole float), ``sel_n(*args)``, ``int_n`` (truncated float),
    ``_anything_n(sel, *args)``, ``int_`` (whole float), ``sel_(n, *args)``,
    ``int_`` (truncated float), ``_anything_(n, sel, *args)``; else it posts
    "no matching method found". A method that raises prints the traceback
    to Pd's window and counts as not found, so the search goes on (pyext's
    ``callpy`` returns false). A method that returns a true value gets
    "returned value is ignored". The selector is passed only to the
    ``_anything`` methods and only when it is not float/symbol/list/pointer
    (flext's ``IsAnything``).

Atoms into Python (``MakePyAtom``)
    FACTS: "Whole-number floats arrive as int, symbols as pyext.Symbol".
    Pd floats are 32-bit, so 0.1 arrives as 0.10000000149011612. A float
    NaN arrives as the int -2147483648 (seen in real pyext).

``_outlet(n, ...)`` (``pyext_outlet`` + ``GetPyArgs``)
    FACTS: "``_outlet(1, ...)`` is Pd outlet 0"; ``_outlet(1, "hi", 42)``
    arrives as ``list hi 42`` and ``_outlet(1, "hi", [42])`` as ``hi 42``.
    One argument is used as it is, several as a tuple; None is a bang; a
    (symbol, sequence) pair is a message with that selector; any other
    sequence is a list; a lone number or string is a float or a symbol.
    FACTS: "indexing a Buffer gives numpy float32, which ``_outlet`` cannot
    send (wrap in ``float()``)": values other than int, float (and its
    subclasses), str and Symbol are posted as "Could not convert argument"
    and replaced by the symbol ``_``, as ``getone`` does.

Threads (flext's ``CHKTHR``, ``ToQueue*``, ``Forward``, ``IsThreadRegistered``)
    Pd's scheduler holds Pd's lock while it runs messages and clocks; here
    the thread that made the ``Pd`` is the scheduler thread and
    ``PdObject.send`` holds ``Pd.lock`` while the object runs. An outlet or
    ``pyext._send`` from the scheduler thread, or from flext's message
    thread, is delivered at once. From a thread flext registered (the
    threads of detached methods, ``@detach 1``/``2`` or ``detach`` at inlet
    0) it is queued, and flext's message thread delivers the queue in order,
    holding Pd's lock. From any other thread -- a plain ``threading.Thread``
    -- it is delivered at once on that thread, without Pd's lock, as real
    pyext does (seen in Pd 0.53.1: that is how the first pyext fallback
    crashed Pd); here a Buffer touched that way raises (see below).
    Outputs are recorded with a lock; ``PdObject.wait_for`` waits on them
    with a timeout, running Pd's clocks meanwhile. Freeing an object drops
    what is still queued for it.

A little of Pd itself (``pd menunew``, ``pd-NAME obj/connect``)
    Messages to ``pd`` and to canvases are what a module can use to patch
    dynamically. ``menunew NAME DIR`` makes a canvas bound to ``pd-NAME``;
    ``obj X Y CLASS ARGS`` and ``connect A O B I`` build it, for the classes
    [r], [s], [metro] and [file which] (searching ``Pd.search_path``, as
    Pd's search path; the outlets give ``list PATH 0`` and ``symbol NAME``);
    ``vis`` and ``dirty`` are accepted. [metro]s run on the scheduler
    thread whenever a test waits (``Pd.tick``), on the wall clock.

``_bind(name, func)`` / ``pyext._send(name, ...)`` (bound.cpp, modmeth.cpp)
    A bound function gets the message as arguments (the selector first,
    unless float/symbol/list). Sending to a name nobody is bound to does
    nothing. ``pyext._send`` of an empty list sends a bang.

``pyext.Buffer(name)`` (pybuffer.cpp), over the named arrays of ``Pd.arrays``
    A name without an array still makes a Buffer: its ``len`` is 0, slicing
    gives None, ``resize`` raises RuntimeError("Invalid buffer") and slice
    assignment ValueError("Buffer is not assigned"). Indexing gives
    np.float32 (FACTS), slicing a float32 numpy view of the array's memory
    (clamped the way ``buffer_slice`` clamps), slice assignment copies as
    many values as fit, ``resize(frames, keep=1, zero=1)`` replaces the
    memory (Pd arrays hold at least one value), ``dirty()`` asks for a
    redraw when the Buffer goes away. ``np.array(buf)`` gives the values, as
    in SopiMlab's fork that the original scripts relied on.
    Deliberately stricter than pyext: touching an array's data from a thread
    that does not hold Pd's lock raises RuntimeError. Real pyext would race
    with Pd's DSP there -- the crash the original Hallu warned about.

Module functions (modmeth.cpp)
    ``_samplerate()`` (Pd's rate, ``Pd.samplerate``), ``_blocksize()``,
    ``_searchpaths()`` (None, as official builds compile it: FACTS notes
    that Pd's ``-path`` folders are on ``sys.path`` instead), ``_send``.

Everything posted to Pd's window is in ``Pd.console``; as pyext does,
``sys.stdout`` and ``sys.stderr`` post there while the stand-in is installed.
"""

import contextlib
import queue
import sys
import threading
import time
import traceback
import types

import numpy as np

_FLOAT32 = np.float32


class Symbol:
    """pyext.Symbol: a Pd symbol. Not a str (``isinstance(s, str)`` is false)."""

    __slots__ = ("name",)

    def __init__(self, name=""):
        self.name = str(name)

    def __str__(self):
        return self.name

    def __repr__(self):
        return f"Symbol({self.name!r})"

    def __eq__(self, other):
        if isinstance(other, Symbol):
            return self.name == other.name
        if isinstance(other, str):
            return self.name == other
        return NotImplemented

    def __hash__(self):
        return hash(self.name)


class Reply:
    """One message that left an outlet: Pd outlet index, selector, atoms (floats and strs)."""

    __slots__ = ("outlet", "selector", "atoms", "thread")

    def __init__(self, outlet, selector, atoms, thread):
        self.outlet, self.selector, self.atoms, self.thread = outlet, selector, list(atoms), thread

    def __repr__(self):
        return " ".join([self.selector] + [_atom_text(a) for a in self.atoms])


def _atom_text(atom):
    if isinstance(atom, float):
        return f"{atom:g}"
    return str(atom)


class PdLock:
    """Pd's global lock (sys_lock): not re-entrant, and it knows its owner."""

    def __init__(self):
        self._lock = threading.Lock()
        self.owner = None

    def acquire(self):
        self._lock.acquire()
        self.owner = threading.get_ident()

    def release(self):
        self.owner = None
        self._lock.release()

    def held(self):
        return self.owner == threading.get_ident()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


_NOT_ANYTHING = {"float", "symbol", "list", "pointer"}


def _pd_float(value):
    """What a number becomes in a Pd atom (t_float is 32-bit)."""
    return float(_FLOAT32(value))


class Pd:
    """One fake Pd process: arrays, Pd's lock, flext's message thread, a console."""

    def __init__(self, samplerate=44100.0, blocksize=64):
        self.samplerate = float(samplerate)
        self.blocksize = int(blocksize)
        self.lock = PdLock()
        self.arrays = {}
        self.redraws = {}
        self.console = []
        self._console_lock = threading.Lock()
        self._bindings = {}          # name -> list of (PdObject, func)
        self.scheduler = threading.get_ident()
        self._queue = queue.Queue()
        self._closed = False
        self._message_thread = threading.Thread(target=self._deliver_queue, name="flext-messages",
                                                daemon=True)
        self._message_thread.start()
        self.module = None
        self.objects = []
        self.registered = set()      # threads flext started (detached methods)
        self.search_path = []        # Pd's search path, for [file which]
        self.canvases = {}           # "pd-NAME" -> _Canvas
        self.clocks = []             # running [metro]s

    # --- the pyext module ----------------------------------------------------
    def install(self):
        """Make ``import pyext`` give this Pd's module; returns the module."""
        module = types.ModuleType("pyext")
        module.__doc__ = "stand-in for pyext (tests/pyext_standin.py)"
        pd = self

        class _class:
            _inlets = 1
            _outlets = 1

            def _outlet(self, n, *args):
                pd._outlet(self._this, n, args)

            def _bind(self, name, func):
                pd._bindings.setdefault(str(name), []).append((self._this, func))

            def _unbind(self, name, func):
                entries = pd._bindings.get(str(name), [])
                pd._bindings[str(name)] = [(o, f) for o, f in entries
                                           if not (o is self._this and f == func)]

            def _detach(self, value):
                self._this.detach = int(value)

            def _isthreaded(self):
                return 1

        def _send(name, *args):
            value = args[0] if len(args) == 1 else tuple(args)
            selector, atoms = pd._convert_out(value)
            if selector == "list" and not atoms:
                selector = "bang"
            pd._forward(str(name), selector, atoms)

        module._class = _class
        module.Symbol = Symbol
        module.Buffer = lambda name: Buffer(pd, name)
        module._send = _send
        module._samplerate = lambda: pd.samplerate
        module._blocksize = lambda: pd.blocksize
        module._searchpaths = lambda: None
        module._helppaths = lambda: None
        module._arraysupport = lambda: True
        self.module = module
        sys.modules["pyext"] = module
        return module

    @contextlib.contextmanager
    def python_output(self):
        """While Pd runs Python code: print() goes to Pd's window, as in pyext
        (which sets sys.stdout/sys.stderr for good; pytest resets them between
        a test's phases, so the stand-in sets them around every call)."""
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = _Console(self)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = saved

    def close(self):
        """Delete every object still there (as closing the patch would), stop the queue."""
        for obj in self.objects:
            if not obj.freed:
                obj.free()
        self._closed = True
        self._queue.put(None)
        self._message_thread.join(timeout=5)
        if sys.modules.get("pyext") is self.module:
            del sys.modules["pyext"]

    # --- arrays ------------------------------------------------------------
    def array(self, name, size=100, values=None):
        """Create (or replace) a named array like [table NAME SIZE]."""
        data = np.zeros(max(1, int(size)), dtype=np.float32)
        if values is not None:
            data = np.array(values, dtype=np.float32).reshape(-1)
        self.arrays[name] = data
        return data

    def read_array(self, name):
        with self.lock:
            return self.arrays[name].copy()

    # --- console -----------------------------------------------------------
    def post(self, text):
        with self._console_lock:
            self.console.append(text)

    def console_text(self):
        with self._console_lock:
            return "\n".join(self.console)

    # --- objects -----------------------------------------------------------
    def create(self, cls, *args, canvas_dir=None):
        """Instantiate a pyext class the way [pyext module class args...] does."""
        self._check_scheduler()
        obj = PdObject(self, cls)
        self.objects.append(obj)
        with self.lock:
            instance = cls.__new__(cls)
            instance._this = obj
            instance._canvas_dir = "" if canvas_dir is None else str(canvas_dir)
            obj.instance = instance
            try:
                with self.python_output():
                    instance.__init__(*[_python_atom(_pd_atom(a)) for a in args])
            except Exception:
                self.post(traceback.format_exc())
                raise
            obj.inlets = _count(instance, "_inlets")
            obj.outlets = _count(instance, "_outlets")
        return obj

    def _check_scheduler(self):
        if threading.get_ident() != self.scheduler:
            raise RuntimeError("Pd objects are driven from the scheduler thread (the one that made Pd)")

    def _is_system_thread(self):
        ident = threading.get_ident()
        return ident == self.scheduler or ident == self._message_thread.ident

    def _is_registered(self):
        return threading.get_ident() in self.registered

    # --- output ------------------------------------------------------------
    def _convert_out(self, value):
        """pyext's GetPyArgs: a Python value to (selector, Pd atoms)."""
        if value is None:
            return "bang", []
        if _is_sequence(value):
            items = list(value)
            if len(items) == 2 and _is_symbolish(items[0]) and _is_sequence(items[1]):
                return str(items[0]), [self._convert_atom(a) for a in items[1]]
            return "list", [self._convert_atom(a) for a in items]
        atom = self._convert_atom(value)
        return ("float" if isinstance(atom, float) else "symbol"), [atom]

    def _convert_atom(self, value):
        if isinstance(value, (bool, int)):
            return _pd_float(int(value))
        if isinstance(value, float):
            return _pd_float(value)
        if isinstance(value, (str, Symbol)):
            return str(value)
        self.post(f"py/pyext: Could not convert argument {type(value)}")
        return "_"

    def _outlet(self, obj, n, args):
        value = args[0] if len(args) == 1 else tuple(args)
        if not isinstance(n, int) or not 1 <= n <= obj.outlets:
            raise ValueError("pyext - _outlet: index out of range")
        selector, atoms = self._convert_out(value)
        if self._is_registered():
            self._queue.put(("outlet", obj, (n - 1, selector, atoms)))
        else:   # Pd's threads, and (unsafely, as in real pyext) unknown ones
            obj._record(n - 1, selector, atoms)

    def _forward(self, name, selector, atoms):
        if self._is_registered():
            self._queue.put(("forward", None, (name, selector, atoms)))
        else:   # Pd's threads, and (unsafely, as in real pyext) unknown ones
            self._call_bound(name, selector, atoms)

    def _call_bound(self, name, selector, atoms):
        if name == "pd":
            return self._pd_message(selector, atoms)
        if name in self.canvases:
            return self.canvases[name].message(selector, atoms)
        for receiver in list(self._receivers.get(name, [])):
            receiver.receive(selector, atoms)
        for obj, func in list(self._bindings.get(name, [])):
            if obj.freed:
                continue
            args = ([Symbol(selector)] if selector not in _NOT_ANYTHING else [])
            args += [_python_atom(a) for a in atoms]
            try:
                with self.python_output():
                    func(*args)
            except Exception:
                self.post(traceback.format_exc())

    def _deliver_queue(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            kind, obj, payload = item
            with self.lock:
                if kind == "outlet":
                    if not obj.freed:
                        obj._record(*payload)
                else:
                    self._call_bound(*payload)

    def settle(self, timeout=5.0):
        """Wait until flext's queue is empty and no clock has work (what other
        threads sent has arrived)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.tick()
            if self._queue.empty() and not self.clocks:
                with self.lock:
                    if self._queue.empty():
                        return
            time.sleep(0.005)
        raise TimeoutError("flext's message queue did not drain")

    # --- a little of Pd: dynamic patching, [metro], [file which] ---------------
    @property
    def _receivers(self):
        receivers = {}
        for canvas in self.canvases.values():
            for box in canvas.boxes:
                if isinstance(box, _Receive):
                    receivers.setdefault(box.name, []).append(box)
        return receivers

    def _pd_message(self, selector, atoms):
        if selector == "menunew" and atoms:
            self.canvases[f"pd-{atoms[0]}"] = _Canvas(self, str(atoms[0]))
        elif selector != "dsp":
            self.post(f"pd: unknown message {selector}")

    def tick(self):
        """Run the [metro]s that are due, on the scheduler thread, under Pd's lock."""
        if threading.get_ident() != self.scheduler:
            return
        now = time.monotonic()
        for clock in list(self.clocks):
            if clock.due <= now:
                with self.lock:
                    clock.fire(now)


def _count(instance, name):
    value = getattr(instance, name, 1)
    if callable(value):
        value = value()
    return int(value) if isinstance(value, int) else 1


def _is_symbolish(value):
    return isinstance(value, (str, Symbol))


def _is_sequence(value):
    return not _is_symbolish(value) and isinstance(value, (list, tuple, np.ndarray))


def _pd_atom(value):
    """A test's Python value as a Pd atom: numbers become 32-bit floats, the rest symbols."""
    if isinstance(value, (bool, int, float, np.integer, np.floating)):
        return _pd_float(value)
    return str(value)


def _python_atom(atom):
    """pyext's MakePyAtom."""
    if isinstance(atom, str):
        return Symbol(atom)
    if atom != atom:             # NaN, as real pyext passes it
        return -2147483648
    whole = int(atom) if abs(atom) < 2 ** 31 else None
    return whole if whole is not None and float(whole) == atom else float(atom)


def parse_message(text):
    """A message box's text as (selector, atoms), the way Pd reads one."""
    words = []
    for word in text.split():
        try:
            words.append(_pd_float(float(word)))
        except ValueError:
            words.append(word)
    if not words:
        return "bang", []
    if isinstance(words[0], float):
        return ("float" if len(words) == 1 else "list"), words
    return words[0], words[1:]


class PdObject:
    """One [pyext ...] box: send it messages, read what came out of its outlets."""

    def __init__(self, pd, cls):
        self.pd = pd
        self.cls = cls
        self.instance = None
        self.inlets = self.outlets = 1
        self.detach = 0
        self.freed = False
        self.outputs = []
        self.connections = []        # callables run for every output, as patch cords
        self._cond = threading.Condition()

    # --- input -------------------------------------------------------------
    def send(self, inlet, selector, *atoms):
        """Send ``selector atoms...`` to Pd inlet ``inlet`` (0 is pyext's own)."""
        self.pd._check_scheduler()
        atoms = [_pd_atom(a) for a in atoms]
        with self.pd.lock:
            self._receive(inlet, str(selector), atoms)

    def message(self, text, inlet=1):
        """Send a message box's text, e.g. ``obj.message("coeffs 1 -0.5")``."""
        selector, atoms = parse_message(text)
        self.send(inlet, selector, *atoms)

    def _receive(self, n, s, atoms):
        if self.freed:
            raise RuntimeError("message to a freed object")
        if n == 0:
            if s == "detach" and atoms:
                self.detach = int(atoms[0])
            else:
                self.pd.post(f"pyext - no method for type '{s}' into inlet 0")
            return
        if n > self.inlets:
            raise ValueError(f"the object has no inlet {n}")
        if self.detach:
            threading.Thread(target=self._detached, args=(n, s, atoms), daemon=True).start()
        else:
            self._work(n, s, atoms)

    def _detached(self, n, s, atoms):
        self.pd.registered.add(threading.get_ident())
        try:
            self._work(n, s, atoms)
        finally:
            self.pd.registered.discard(threading.get_ident())

    def _call(self, name, inlet, selector, atoms):
        method = getattr(self.instance, name, None)
        if method is None:
            return False
        args = [inlet] if inlet else []
        if selector is not None and selector not in _NOT_ANYTHING:
            args.append(Symbol(selector))
        args += [_python_atom(a) for a in atoms]
        try:
            with self.pd.python_output():
                result = method(*args)
        except Exception:
            self.pd.post(traceback.format_exc())
            return False
        if result:
            self.pd.post("pyext - returned value is ignored")
        return True

    def _work(self, n, s, atoms):
        isfloat = s == "float" and len(atoms) == 1
        whole = isfloat and float(int(atoms[0])) == atoms[0]
        truncated = [float(int(atoms[0]))] if isfloat else None
        found = whole and self._call(f"int_{n}", 0, None, atoms)
        found = found or self._call(f"{s}_{n}", 0, None, atoms)
        found = found or (isfloat and self._call(f"int_{n}", 0, None, truncated))
        found = found or self._call(f"_anything_{n}", 0, s, atoms)
        found = found or (whole and self._call("int_", 0, None, atoms))
        found = found or self._call(f"{s}_", n, None, atoms)
        found = found or (isfloat and self._call("int_", 0, None, truncated))
        if not found:
            if s == "bang" and not atoms:
                found = self._call("_anything_", n, s, ["_"])
            else:
                found = self._call("_anything_", n, s, atoms)
        if not found:
            self.pd.post(f"pyext - no matching method found for '{s}' into inlet {n}")

    # --- output ------------------------------------------------------------
    def _record(self, outlet, selector, atoms):
        reply = Reply(outlet, selector, atoms, threading.current_thread().name)
        with self._cond:
            self.outputs.append(reply)
            self._cond.notify_all()
        for connection in list(self.connections):
            connection(reply)

    def replies(self, selector=None):
        with self._cond:
            return [r for r in self.outputs if selector is None or r.selector == selector]

    def wait_for(self, selector, count=1, timeout=120.0):
        """Wait until ``count`` outputs with ``selector`` arrived; returns them all.
        Pd's clocks run meanwhile (on this, the scheduler, thread)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                found = [r for r in self.outputs if r.selector == selector]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {count} x '{selector}' within {timeout} s; got {self.outputs}"
                                         f"\nconsole:\n{self.pd.console_text()}")
                self._cond.wait(min(left, 0.005))
            self.pd.tick()

    # --- freeing -----------------------------------------------------------
    def free(self):
        """Delete the box: unbind its names, call its ``_del``, drop its queued output."""
        self.pd._check_scheduler()
        with self.pd.lock:
            for name, entries in list(self.pd._bindings.items()):
                self.pd._bindings[name] = [(o, f) for o, f in entries if o is not self]
            self.freed = True
            method = getattr(self.instance, "_del", None)
            if method is not None:
                try:
                    method()
                except Exception:
                    self.pd.post(traceback.format_exc())


class Buffer:
    """pyext.Buffer over one of ``Pd.arrays``."""

    def __init__(self, pd, name):
        if not isinstance(name, (str, Symbol)):
            raise TypeError("Buffer: expected an array name")
        self._pd = pd
        self.symbol = Symbol(name)
        self._name = str(name)
        self._valid = self._name in pd.arrays
        self._dirty = False

    def _data(self):
        if not self._pd.lock.held():
            raise RuntimeError(f"pyext.Buffer('{self._name}') used by a thread that does not hold "
                               "Pd's lock: real Pd would race with DSP and the GUI here")
        data = self._pd.arrays.get(self._name)
        if data is None:
            self._valid = False
        return data

    def __repr__(self):
        return f"<Samplebuffer {self._name}>"

    def __len__(self):
        if not self._valid:
            return 0
        data = self._data()
        return 0 if data is None else len(data)

    def __getitem__(self, key):
        data = self._data() if self._valid else None
        if isinstance(key, slice):
            if data is None:
                return None
            if key.step not in (None, 1):
                raise TypeError("Buffer: slices with a step are not supported")
            low, high = _clamp(len(data), key.start, key.stop)
            return data[low:high]
        if data is None:
            return None
        index = int(key)
        if not 0 <= index < len(data):
            raise IndexError("Index out of range")
        return data[index]

    def __setitem__(self, key, value):
        data = self._data() if self._valid else None
        if data is None:
            raise ValueError("Buffer is not assigned")
        if isinstance(key, slice):
            if key.step not in (None, 1):
                raise TypeError("Buffer: slices with a step are not supported")
            low, high = _clamp(len(data), key.start, key.stop)
            source = np.ascontiguousarray(value, dtype=np.float32)
            if source.ndim != 1:
                raise NotImplementedError("Multiple dimensions not supported yet")
            count = min(len(source), high - low)
            data[low:low + count] = source[:count]
        else:
            index = int(key)
            if not 0 <= index < len(data):
                raise IndexError("Index out of range")
            data[index] = float(value)
        self._dirty = True

    def __iter__(self):
        data = self._data() if self._valid else None
        return iter(() if data is None else list(data))

    def __array__(self, dtype=None, copy=None):
        data = self._data() if self._valid else None
        values = np.zeros(0, np.float32) if data is None else data
        return np.array(values, dtype=dtype) if dtype is not None else values

    def resize(self, frames, keep=1, zero=1):
        data = self._data() if self._valid else None
        if data is None:
            raise RuntimeError("Invalid buffer")
        frames = max(1, int(frames))
        new = np.zeros(frames, dtype=np.float32)
        if keep:
            count = min(frames, len(data))
            new[:count] = data[:count]
        self._pd.arrays[self._name] = new
        return self

    def dirty(self):
        self._dirty = True

    def __del__(self):
        if getattr(self, "_dirty", False):
            self._pd.redraws[self._name] = self._pd.redraws.get(self._name, 0) + 1


def _clamp(n, low, high):
    """buffer_slice's clamping of a slice's ends."""
    low = 0 if low is None else int(low)
    high = 1 << 30 if high is None else int(high)
    if low < 0:
        low += n
    if low >= n:
        low = n - 1
    if high < 0:
        high += n
    if high > n:
        high = n
    return max(low, 0), max(high, max(low, 0))


class _Console:
    """pyext's sys.stdout / sys.stderr: text goes to Pd's window, line by line."""

    def __init__(self, pd):
        self._pd = pd
        self._line = ""

    def write(self, text):
        self._line += str(text)
        while "\n" in self._line:
            line, self._line = self._line.split("\n", 1)
            self._pd.post(line)
        return len(text)

    def flush(self):
        pass


class _Canvas:
    """A canvas made by ``pd menunew``, built with ``obj`` and ``connect``."""

    def __init__(self, pd, name):
        self.pd, self.name, self.boxes = pd, name, []

    def message(self, selector, atoms):
        if selector == "obj":
            cls, args = (str(atoms[2]), list(atoms[3:])) if len(atoms) > 2 else ("", [])
            factory = {"r": _Receive, "s": _Send, "metro": _Metro, "file": _FileWhich}.get(cls)
            if factory is None:
                self.pd.post(f"{cls} ... couldn't create")
                self.boxes.append(_Box(self.pd))
            else:
                self.boxes.append(factory(self.pd, args))
        elif selector == "connect":
            a, outlet, b, inlet = (int(x) for x in atoms)
            self.boxes[a].cords.setdefault(outlet, []).append(self.boxes[b])
        elif selector not in ("vis", "dirty"):
            self.pd.post(f"{self.name}: no method for '{selector}'")


class _Box:
    def __init__(self, pd, args=()):
        self.pd, self.cords = pd, {}

    def out(self, outlet, selector, atoms):
        for box in list(self.cords.get(outlet, [])):
            box.receive(selector, atoms)

    def receive(self, selector, atoms):
        pass


class _Receive(_Box):
    def __init__(self, pd, args):
        super().__init__(pd)
        self.name = str(args[0])

    def receive(self, selector, atoms):
        self.out(0, selector, atoms)


class _Send(_Box):
    def __init__(self, pd, args):
        super().__init__(pd)
        self.name = str(args[0])

    def receive(self, selector, atoms):
        self.pd._call_bound(self.name, selector, atoms)


class _Metro(_Box):
    def __init__(self, pd, args):
        super().__init__(pd)
        self.interval = float(args[0]) / 1000.0 if args else 0.001
        self.due = 0.0

    def receive(self, selector, atoms):
        on = bool(atoms[0]) if selector == "float" and atoms else selector == "bang"
        if selector == "stop":
            on = False
        if on:
            if self not in self.pd.clocks:
                self.pd.clocks.append(self)
            self.fire(time.monotonic())     # [metro] bangs at once when started
        elif self in self.pd.clocks:
            self.pd.clocks.remove(self)

    def fire(self, now):
        self.due = now + self.interval
        self.out(0, "bang", [])


class _FileWhich(_Box):
    def receive(self, selector, atoms):
        import os

        name = str(atoms[0]) if atoms else ""
        for folder in self.pd.search_path:
            path = os.path.join(str(folder), name)
            if os.path.isfile(path):
                return self.out(0, "list", [path, 0.0])
        self.out(1, "symbol", [name])

"""The pyext classes (pd_external/ganspacesynth_pyext.py) inside the pyext stand-in.

The same scenarios as [ganspacesynth~]'s: load, coefficients, generate, write,
errors, a storm of requests, unload and deletion while the worker is busy,
Hallu; then the original GANSpaceSynth patches' message sequences
(ganspacesynth.pd, ganspacesynth_noz.pd, hallu.pd) against the classes that
replace the original objects. Audio is compared with the Python engine run
directly on the fixture model.
"""

import importlib.util
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import pyext_standin
from conftest import REFERENCE_DIR, relative_error

pytestmark = pytest.mark.slow

MODULE_PATH = Path(__file__).resolve().parents[1] / "pd_external" / "ganspacesynth_pyext.py"
DATA = REFERENCE_DIR.parent          # the "patch folder" the objects live in
MODEL = REFERENCE_DIR.name           # relative to it, as a patch would name it
PCA = f"{MODEL}/pca_conv0.pickle"
N_COMPONENTS = 32
TIMEOUT = 120.0


@pytest.fixture
def pd(monkeypatch):
    """A fresh fake Pd with the stand-in installed as ``pyext``, at the model's rate."""
    pd = pyext_standin.Pd(samplerate=16000)
    pd.install()
    monkeypatch.delenv("GANSPACESYNTH_TEST_DELAY", raising=False)
    yield pd
    pd.close()
    # The classes must never let an exception reach pyext (it would print a
    # traceback and go on looking for other methods) nor send values pyext
    # cannot convert.
    text = pd.console_text()
    assert "Traceback" not in text, text
    assert "Could not convert" not in text, text
    assert "no matching method" not in text, text


@pytest.fixture
def gss(pd):
    """The module, imported under the stand-in (a fresh import per Pd)."""
    spec = importlib.util.spec_from_file_location("ganspacesynth_pyext", MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pca():
    from ganspacesynth import load_pca

    return load_pca(REFERENCE_DIR / "pca_conv0.pickle")


def padded(values, n=N_COMPONENTS):
    out = np.zeros(n, np.float32)
    out[:len(values)] = values
    return out


def new(pd, gss, cls="ganspacesynth", *args):
    return pd.create(getattr(gss, cls), *args, canvas_dir=DATA)


def loaded(pd, gss):
    obj = new(pd, gss, "ganspacesynth", MODEL, PCA)
    obj.wait_for("loaded", timeout=TIMEOUT)
    return obj


def errors(obj):
    return [" ".join(r.atoms) for r in obj.replies("error")]


def wait_for_error(obj, count=1):
    return [" ".join(r.atoms) for r in obj.wait_for("error", count, timeout=TIMEOUT)]


# --- the stand-in behaves like pyext ----------------------------------------------

def test_standin_dispatch_conversions_and_outlets(pd):
    calls = []

    class probe(pd.module._class):
        def __init__(self, *args):
            calls.append(("init",) + args)
            self._inlets = 2
            self._outlets = 1

        def int_1(self, value):
            calls.append(("int_1", value))

        def float_2(self, value):
            calls.append(("float_2", value))

        def hello_1(self, *args):
            calls.append(("hello_1",) + args)
            self._outlet(1, "hi", 42)
            self._outlet(1, "hi", [42])
            self._outlet(1, ["loaded", 1, 2])
            self._outlet(1, "done")

        def _anything_1(self, *args):
            calls.append(("_anything_1",) + args)

        def boom_1(self):
            raise RuntimeError("boom")

    obj = pd.create(probe, "name", 3, 0.5)
    assert calls[0] == ("init", pyext_standin.Symbol("name"), 3, 0.5)
    assert isinstance(calls[0][2], int)
    obj.send(1, "float", 3)          # whole float: int_1 first
    obj.send(2, "float", 0.1)        # 32-bit float
    obj.send(1, "hello", "x", 2, 2.5)
    obj.send(1, "other", 1)          # no other_1: _anything_1 gets the selector
    obj.send(1, "list", 1, 2)        # a list: _anything_1 without one
    obj.send(1, "boom")              # raises: traceback, then the search goes on
    assert calls[1] == ("int_1", 3) and isinstance(calls[1][1], int)
    assert calls[2] == ("float_2", float(np.float32(0.1)))
    assert calls[3][0] == "hello_1" and isinstance(calls[3][1], pyext_standin.Symbol)
    assert calls[4] == ("_anything_1", pyext_standin.Symbol("other"), 1)
    assert calls[5] == ("_anything_1", 1, 2)
    assert calls[6] == ("_anything_1", pyext_standin.Symbol("boom"))
    assert [repr(r) for r in obj.outputs] == ["list hi 42", "hi 42", "list loaded 1 2", "symbol done"]
    assert all(r.outlet == 0 for r in obj.outputs)
    obj.send(0, "hello")
    assert "into inlet 0" in pd.console_text()
    assert "boom" in pd.console_text()
    pd.console.clear()


def test_standin_buffer_and_threads(pd):
    """As in real pyext: a plain Python thread's _send runs the bound function at
    once on that thread, without Pd's lock (a Buffer then raises here, where real
    Pd would race with DSP); a detached method's thread is one flext knows, so
    its _send is queued and flext's message thread delivers it under Pd's lock."""
    pd.array("a", 4)
    seen = []

    class probe(pd.module._class):
        def __init__(self):
            self._bind("probe-in", self.on_message)

        def on_message(self, *args):
            try:
                buffer = pd.module.Buffer("a")
                buffer.resize(3)
                buffer[:] = np.array([1, 2, 3, 4], np.float32)
                seen.append((args, buffer[0], threading.current_thread().name))
            except RuntimeError as error:
                seen.append((args, str(error), threading.current_thread().name))
            self._outlet(1, "ok", [len(args)])

        def plain_1(self):
            threading.Thread(target=lambda: pd.module._send("probe-in", "plain", 1),
                             name="plain").start()

        def detached_1(self):
            pd.module._send("probe-in", "detached", 2)

    obj = pd.create(probe)
    with pd.lock:
        missing = pd.module.Buffer("nope")
        assert len(missing) == 0 and missing[:] is None
        with pytest.raises(RuntimeError):
            missing.resize(3)
        with pytest.raises(ValueError):
            missing[:] = [1.0]
    obj.send(1, "plain")
    obj.wait_for("ok", timeout=10)
    args, error, thread = seen[0]
    assert args == (pyext_standin.Symbol("plain"), 1) and thread == "plain"
    assert "does not hold Pd's lock" in error
    obj.send(0, "detach", 1)
    obj.send(1, "detached")
    obj.wait_for("ok", 2, timeout=10)
    args, first, thread = seen[1]
    assert args == (pyext_standin.Symbol("detached"), 2)
    assert isinstance(first, np.float32) and first == 1.0
    assert thread == "flext-messages"
    np.testing.assert_array_equal(pd.read_array("a"), [1, 2, 3])


def test_standin_nan_searchpaths_and_dynamic_patching(pd, tmp_path):
    """NaN arrives as -2147483648; _searchpaths() is None; a canvas made with
    'pd menunew' runs a [metro] on Pd's thread and [file which] searches Pd's path."""
    got = []

    class probe(pd.module._class):
        def nan_1(self, *args):
            got.append(args)

    obj = pd.create(probe)
    obj.send(1, "nan", float("nan"), 1.5)
    assert got == [(-2147483648, 1.5)] and isinstance(got[0][0], int)
    assert pd.module._searchpaths() is None

    (tmp_path / "f.npz").write_bytes(b"")
    pd.search_path.append(tmp_path)
    ticks, found = [], []
    obj.instance._bind("tick", lambda *a: ticks.append(threading.get_ident()))
    obj.instance._bind("found", lambda *a: found.append(a))
    with pd.lock:
        send = pd.module._send
        send("pd", "menunew", ["hidden", "."])
        for line in ([0, 0, "r", "run"], [0, 0, "metro", 5], [0, 0, "s", "tick"],
                     [0, 0, "r", "which"], [0, 0, "file", "which"], [0, 0, "s", "found"],
                     [0, 0, "s", "found"]):
            send("pd-hidden", "obj", line)
        for cord in ([0, 0, 1, 0], [1, 0, 2, 0], [3, 0, 4, 0], [4, 0, 5, 0], [4, 1, 6, 0]):
            send("pd-hidden", "connect", cord)
        send("which", "symbol", ["f.npz"])
        send("which", "symbol", ["g.npz"])
        send("run", 1)
    assert found == [(str(tmp_path / "f.npz"), 0), (pyext_standin.Symbol("g.npz"),)]
    deadline = time.monotonic() + 5
    while len(ticks) < 3 and time.monotonic() < deadline:
        pd.tick()
        time.sleep(0.002)
    assert len(ticks) >= 3 and set(ticks) == {threading.get_ident()}
    with pd.lock:
        pd.module._send("run", 0)
    assert not pd.clocks


# --- [ganspacesynth~]'s scenarios ------------------------------------------------

def test_load_generate_write_matches_engine(pd, gss, reference_model, pca):
    obj = loaded(pd, gss)
    assert [r.selector for r in obj.outputs[:2]] == ["loading", "loaded"]
    assert obj.replies("loaded")[0].atoms == [N_COMPONENTS, 16000, 64000]
    pd.array("snd", 10)
    obj.message("coeffs 1 -0.5")
    obj.message("generate")
    ready = obj.wait_for("ready", timeout=TIMEOUT)
    assert ready[0].atoms[0] > 0
    obj.message("write snd")
    assert repr(obj.replies("written")[0]) == "written snd 64000"
    expected = reference_model.synthesize(pca, padded([1, -0.5]))
    assert relative_error(pd.read_array("snd"), np.reshape(expected, -1)) < 1e-5
    assert pd.redraws.get("snd", 0) >= 1
    assert errors(obj) == []


def test_generate_follows_pd_rate_auto_and_array(pd, gss, reference_model, pca):
    from ganspacesynth.instrument import resample

    pd.samplerate = 44100.0
    obj = loaded(pd, gss)
    pd.array("out", 1)
    obj.message("array out")
    obj.message("auto 1")
    obj.message("coeff 2 1.5")           # a change: generates by itself
    obj.wait_for("ready", timeout=TIMEOUT)
    clip = pd.read_array("out")
    assert len(clip) == 176400
    expected = resample(np.reshape(reference_model.synthesize(pca, padded([0, 0, 1.5])), -1), 16000, 44100)
    assert relative_error(clip, expected) < 1e-5
    obj.message("stats")
    assert repr(obj.replies("stats")[0]) == "stats 0 0 0 1"


def test_errors(pd, gss, tmp_path):
    obj = new(pd, gss)
    obj.message("generate")
    assert "no model loaded" in wait_for_error(obj)[0]
    obj.message("load no-such-model")
    assert wait_for_error(obj, 2)[1].startswith("load:")
    obj.message(f"load {MODEL} no-such.pickle")
    assert "no-such.pickle" in wait_for_error(obj, 3)[2]
    obj.message(f"load {MODEL} {PCA}")
    obj.wait_for("loaded", timeout=TIMEOUT)
    count = len(errors(obj))
    # Numbers are checked on Pd's side, at once: NaN arrives from real pyext
    # as -2147483648 and is refused like a symbol where a number belongs.
    count = len(errors(obj))
    obj.send(1, "coeffs", 1.0, float("nan"))
    obj.message("coeffs 1 foo")
    obj.send(1, "pitch", float("nan"))
    obj.send(1, "step", float("nan"))
    obj.send(1, "coeff", 0, float("nan"))
    obj.send(1, "spacing", float("nan"))
    found = errors(obj)[count:]
    assert found[0].startswith("coeffs: got NaN or infinity (pyext passes NaN as -2147483648)")
    assert found[1] == "coeffs: expected a number, got 'foo'"
    assert [f.split(":")[0] for f in found[2:]] == ["pitch", "step", "coeff", "spacing"]
    assert all("NaN" in f for f in found[2:])
    # Queued messages of one kind in a row collapse into the last one (as in
    # [ganspacesynth~]), so every 'coeffs' here follows something else.
    count = len(errors(obj))
    obj.message(f"coeff {N_COMPONENTS} 1")
    obj.message("coeffs " + " ".join(["0.1"] * (N_COMPONENTS + 1)))
    obj.message("pitch 200")
    obj.message("mode sideways")
    obj.message("interp 99")
    found = wait_for_error(obj, count + 5)[count:]
    assert "out of range" in found[0]
    assert f"{N_COMPONENTS + 1} coefficients given but the PCA has {N_COMPONENTS}" in found[1]
    assert "pitch: 200" in found[2]
    assert "unknown mode" in found[3]
    assert "outside 0..32" in found[4]
    # each error is words (not one symbol), and is in Pd's window too
    assert len(obj.replies("error")[-1].atoms) > 3
    assert "ganspacesynth_pyext: error: interp: 99 is outside 0..32" in pd.console_text()
    # Found on Pd's side, at once.
    count = len(errors(obj))
    for text in ("frobnicate 1", "play", "write nowhere", "coeffs-array nowhere",
                 "z-array nowhere", "hallucinate nowhere", "coeff 1", "load"):
        obj.message(text)
    obj.send(1, "float", 3)
    found = errors(obj)[count:]
    assert found[0] == "unknown message 'frobnicate'"
    assert found[1].startswith("play: the pyext version has no signal outlet")
    assert found[2].startswith("write: no clip yet")
    assert found[3] == "coeffs-array: no array named 'nowhere'"
    assert found[4] == "z-array: no array named 'nowhere'"
    assert found[5] == "hallucinate: no array named 'nowhere'"
    assert found[6] == "coeff: expected an index and a value"
    assert found[7].startswith("load: expected a model folder")
    assert found[8] == "unknown message 'float'"


def test_paths_patch_folder_then_search_path(pd, gss, tmp_path):
    """Not in the patch's folder but along Pd's search path, which the module asks
    Pd for through [file which] in its hidden canvas (pyext's _searchpaths() is None)."""
    obj = pd.create(gss.ganspacesynth, canvas_dir=tmp_path)
    obj.message(f"load {MODEL} {PCA}")
    assert "no such model folder" in wait_for_error(obj)[0]
    pd.search_path.append(DATA)
    obj.message(f"load {MODEL} {PCA}")
    assert obj.wait_for("loaded", timeout=TIMEOUT)[0].atoms[0] == N_COMPONENTS


def test_storm_of_generates_coalesces(pd, gss, reference_model, pca, monkeypatch):
    obj = loaded(pd, gss)
    monkeypatch.setenv("GANSPACESYNTH_TEST_DELAY", "0.5")
    obj.message("generate")
    time.sleep(0.2)                          # the worker is inside the first one
    start = time.monotonic()
    for i in range(40):
        obj.message(f"coeffs {i / 10}")
        obj.message("generate")
    took = time.monotonic() - start
    assert took < 0.5, f"80 messages kept Pd busy for {took:.3f} s"
    obj.wait_for("ready", 2, timeout=TIMEOUT)
    monkeypatch.delenv("GANSPACESYNTH_TEST_DELAY")
    time.sleep(1.0)
    pd.settle()
    assert len(obj.replies("ready")) == 2   # the running one and the latest
    pd.array("snd")
    obj.message("write snd")
    expected = reference_model.synthesize(pca, padded([3.9]))
    assert relative_error(pd.read_array("snd"), np.reshape(expected, -1)) < 1e-5
    assert errors(obj) == []


def test_unload_while_generating(pd, gss, monkeypatch):
    obj = loaded(pd, gss)
    monkeypatch.setenv("GANSPACESYNTH_TEST_DELAY", "0.5")
    obj.message("generate")
    time.sleep(0.1)
    obj.message("unload")
    obj.message("generate")
    obj.wait_for("ready", timeout=TIMEOUT)
    assert "generate: no model loaded" in wait_for_error(obj)[0]
    pd.array("snd")
    obj.message("write snd")                  # the clip outlives the model
    assert repr(obj.replies("written")[0]) == "written snd 64000"


def test_delete_while_hallucinating(pd, gss):
    obj = loaded(pd, gss)
    worker = obj.instance._worker._thread
    pd.array("mix")
    for text in ("step 1", "step -1", "step 1", "step -1", "interp 32", "hallucinate mix"):
        obj.message(text)
    obj.wait_for("progress", timeout=TIMEOUT)
    obj.free()
    worker.join(TIMEOUT)
    assert not worker.is_alive(), "the worker outlived its object"
    pd.settle()
    assert obj.replies("written") == []


def test_hallucinate_matches_engine(pd, gss, reference_model, pca):
    import ganspacesynth
    from ganspacesynth.instrument import resample

    pd.samplerate = 22050.0
    obj = loaded(pd, gss)
    pd.array("mix")
    for text in ("steps-clear", "step 1.5 0 -1", "step -2 1", "step 0 0 2", "interp 2",
                 "spacing 0.25", "trim 0.1", "attack 0.2", "sustain 0.3", "release 0.4",
                 "hallucinate mix"):
        obj.message(text)
    written = obj.wait_for("written", timeout=TIMEOUT)[0]
    progress = [r.atoms[0] for r in obj.replies("progress")]
    assert progress and progress[-1] == 1.0 and progress == sorted(progress)
    audio, _ = ganspacesynth.hallucinate(reference_model, pca, [padded([1.5, 0, -1]), padded([-2, 1]),
                                                                padded([0, 0, 2])],
                                         interp_steps=2, spacing=0.25, start_trim=0.1, attack=0.2,
                                         sustain=0.3, release=0.4)
    expected = resample(audio, 16000, 22050)
    assert written.atoms == ["mix", float(len(expected))]
    assert relative_error(pd.read_array("mix"), expected) < 1e-5


# --- the original GANSpaceSynth patches -------------------------------------------

def test_original_ganspacesynth_patch(pd, gss, reference_model, pca):
    """ganspacesynth.pd and ganspacesynth_noz.pd, with [pyext ganspacesynth_pyext gansynth]."""
    from ganspacesynth.model import slerp

    pd.samplerate = 44100.0                  # the original's arrays stay at the model's rate
    pd.array("amplitudes", 8192)
    pd.array("z", 256)
    pd.array("z1", 256)
    pd.array("zmid", 256)
    pd.array("sound", 64000)
    obj = new(pd, gss, "gansynth")
    obj.message("synthesize z sound 32")     # before 'load': the error names the message
    assert wait_for_error(obj)[0] == "synthesize: no model loaded (send 'load CHECKPOINT' first)"
    obj.message("synthesize_noz sound 32")
    assert wait_for_error(obj, 2)[1].startswith("synthesize_noz: no model loaded")
    obj.message("randomize_z z")
    assert wait_for_error(obj, 3)[2].startswith("randomize_z: no model loaded")
    obj.send(1, "slerp_z", "z", "z1", "zmid", float("nan"))
    assert errors(obj)[3].startswith("slerp_z: got NaN")
    obj.message(f"load {MODEL}")
    assert repr(obj.wait_for("loaded", timeout=TIMEOUT)[0]) == "loaded 64000 16000"
    obj.message(f"load_ganspace_components {PCA} amplitudes")
    obj.wait_for("loaded_pca", timeout=TIMEOUT)
    assert len(pd.arrays["amplitudes"]) == N_COMPONENTS
    pd.arrays["amplitudes"][:3] = [1.0, -0.5, 0.25]   # the patch's sliders
    obj.message("randomize_z z z1")
    obj.wait_for("randomized", timeout=TIMEOUT)
    z, z1 = pd.read_array("z"), pd.read_array("z1")
    assert len(z) == 256 and np.std(z) > 0.5 and not np.array_equal(z, z1)

    obj.message("synthesize z sound 32")
    obj.wait_for("synthesized", timeout=TIMEOUT)
    expected = reference_model.synthesize(pca, padded([1.0, -0.5, 0.25]), z=z, pitch=32, space="z")
    assert relative_error(pd.read_array("sound"), np.reshape(expected, -1)) < 1e-5

    obj.message("synthesize_noz sound 32 amplitudes")
    obj.wait_for("synthesized", 2, timeout=TIMEOUT)
    expected = reference_model.synthesize(pca, padded([1.0, -0.5, 0.25]))
    assert relative_error(pd.read_array("sound"), np.reshape(expected, -1)) < 1e-5

    obj.message("slerp_z z z1 zmid 0.25")
    obj.wait_for("slerped", timeout=TIMEOUT)
    np.testing.assert_allclose(pd.read_array("zmid"), slerp(z, z1, 0.25), rtol=1e-6)

    pd.array("hallu", 1)
    obj.message("hallucinate hallu 2 2")   # two random notes, one point between
    assert repr(obj.wait_for("hallucinated", timeout=TIMEOUT)[0]) == "hallucinated 30400"

    obj.message("unload")
    obj.wait_for("unloaded", timeout=TIMEOUT)
    assert len(errors(obj)) == 4


def test_original_hallu_patch(pd, gss, reference_model, pca):
    """hallu.pd's sequence, with [pyext ganspacesynth_pyext halluseq $0-edits]."""
    import ganspacesynth

    pd.array("edits", 8192)
    pd.array("out_audio", 800000)
    pd.array("preview_audio", 64000)
    obj = new(pd, gss, "halluseq", "edits")
    obj.message(f"load {MODEL}")
    assert repr(obj.wait_for("worker", timeout=TIMEOUT)[0]) == "worker on 64000 16000"
    obj.message(f"load_ganspace_components {PCA}")
    obj.wait_for("updated", timeout=TIMEOUT)       # as the original: one value per component
    assert len(pd.arrays["edits"]) == N_COMPONENTS
    pd.arrays["edits"][:2] = [1.0, 0.5]
    obj.message("add_step")                        # copies the current step
    pd.arrays["edits"][:2] = [-1.0, 2.0]
    obj.message("add_step")
    pd.arrays["edits"][:3] = [0.0, -2.0, 1.0]
    obj.message("prev_step")                       # back to step 1: the array shows it
    np.testing.assert_array_equal(pd.read_array("edits")[:3], [-1.0, 2.0, 0.0])
    obj.message("next_step")
    np.testing.assert_array_equal(pd.read_array("edits")[:3], [0.0, -2.0, 1.0])
    obj.message("prev_step")
    obj.message("prev_step")
    obj.message("remove_step")                     # drops step 0
    for text in ("interp_steps 3", "sample_spacing 0.3", "start_trim 0.05", "attack 0.1",
                 "sustain 0.2", "release 0.6"):
        obj.message(text)
    assert len(obj.replies("updated")) == 14
    obj.message("send_state")
    state = [repr(r) for r in obj.outputs[-8:]]
    assert state == ["step index 0", "step count 2", "settings interp_steps 3",
                     "settings sample_spacing 0.3", "settings start_trim 0.05", "settings attack 0.1",
                     "settings sustain 0.2", "settings release 0.6"]

    obj.message("synthesize_noz preview_audio 32 edits")   # the preview button
    obj.wait_for("synthesized", timeout=TIMEOUT)
    expected = reference_model.synthesize(pca, padded([-1.0, 2.0]))
    assert relative_error(pd.read_array("preview_audio"), np.reshape(expected, -1)) < 1e-5

    obj.message("hallucinate_noz out_audio")
    done = obj.wait_for("hallucinated", timeout=TIMEOUT)[0]
    # The original's "interpolation steps 3" placed 2 points between steps.
    audio, _ = ganspacesynth.hallucinate(reference_model, pca, [padded([-1.0, 2.0]), padded([0, -2.0, 1.0])],
                                         interp_steps=2, spacing=0.3, start_trim=0.05, attack=0.1,
                                         sustain=0.2, release=0.6)
    assert done.atoms == [float(len(audio))]
    assert relative_error(pd.read_array("out_audio"), audio) < 1e-5
    obj.message("rand_step")                       # in hallu.pd, never implemented
    assert errors(obj) == ["unknown message 'rand_step'"]
    obj.message("unload")
    assert repr(obj.wait_for("worker", 2, timeout=TIMEOUT)[1]) == "worker off"


# --- how results reach Pd ---------------------------------------------------------

def test_results_reach_pd_on_its_own_thread(pd, gss):
    """The worker never touches Pd: every reply and array write happens in the
    module's poll clock on Pd's (the scheduler's) thread, and the clock stops
    when no object waits for its worker. '@detach' is refused (it would run the
    methods on flext's threads); a deleted object is not kept alive by its worker."""
    import gc
    import weakref

    obj = loaded(pd, gss)
    pd.array("clip")
    obj.message("mode z")
    obj.message("array clip")
    obj.message("generate")
    obj.wait_for("ready", timeout=TIMEOUT)
    assert {r.thread for r in obj.outputs} == {threading.main_thread().name}
    assert len(pd.read_array("clip")) == 64000
    pd.settle()
    assert not pd.clocks, "the poll clock runs on while every worker is idle"

    obj.send(0, "detach", 1)
    obj.message("generate")
    assert "do not use @detach" in " ".join(wait_for_error(obj))
    assert obj.detach == 0
    obj.message("generate")
    obj.wait_for("ready", 2, timeout=TIMEOUT)

    instance = weakref.ref(obj.instance)
    obj.free()
    obj.instance = None
    gc.collect()
    assert instance() is None, gc.get_referrers(instance())


def test_knob_names_and_find(pd, gss, tmp_path, reference_model):
    """As [ganspacesynth~]: 'names ...' after 'loaded' for a PCA with names, 'knob NAME V'
    as 'coeff I V', 'find FILE STEPS LAYER_STEPS' -> progress, found; mistakes are errors."""
    import soundfile

    from ganspacesynth.invert import audio_distance
    from ganspacesynth.pca import load_pca
    from named_pca import NAMES, write_named_pca

    named = write_named_pca(tmp_path / "named.npz")
    obj = new(pd, gss, "ganspacesynth", MODEL, str(named))
    obj.wait_for("names", timeout=TIMEOUT)
    assert [r.selector for r in obj.outputs[:3]] == ["loading", "loaded", "names"]
    assert obj.replies("loaded")[0].atoms == [4, 16000, 64000] and obj.replies("names")[0].atoms == NAMES
    pd.array("snd", 10)
    obj.message("knob noisiness 1.5")
    obj.message("generate")
    obj.wait_for("ready", timeout=TIMEOUT)
    obj.message("write snd")
    expected = reference_model.synthesize(load_pca(named), [0, 0, 1.5])
    assert relative_error(pd.read_array("snd"), np.reshape(expected, -1)) < 1e-5

    obj.message("knob colour 1")
    assert wait_for_error(obj)[0] == ("knob: no component is called 'colour'; the names are "
                                      + " ".join(NAMES))
    obj.message("knob 3 1")
    obj.message("find")
    obj.message("find x.wav -1")
    obj.send(1, "knob", "loudness", float("nan"))
    found = errors(obj)[1:]
    assert found[0] == "knob: expected a component's name and a value"
    assert found[1].startswith("find: expected an audio file")
    assert found[2].startswith("find: the steps must be a whole number")
    assert found[3].startswith("knob: got NaN")
    obj.message(f"find {tmp_path / 'nothing.wav'}")
    assert "cannot read" in wait_for_error(obj, 6)[5]
    obj.message(f"pca {PCA}")
    obj.wait_for("loaded", 2, timeout=TIMEOUT)
    obj.message("knob loudness 1")
    assert wait_for_error(obj, 7)[6].startswith("knob: the PCA's components have no names")
    assert len(obj.replies("names")) == 1       # an unnamed PCA brings no 'names'

    target = reference_model.generate(reference_model.random_z(1, seed=11), 50)[0]
    soundfile.write(tmp_path / "target.wav", target, 16000)
    obj.message("mode z")
    obj.message(f"find {tmp_path / 'target.wav'} 2 0")
    reply = obj.wait_for("found", timeout=TIMEOUT)[0]
    distance, pitch = reply.atoms[:2]
    assert len(reply.atoms) == 2 + N_COMPONENTS and pitch in reference_model.pitches
    progress = [r.atoms[0] for r in obj.replies("progress")]
    assert progress and progress[-1] == 1.0 and progress == sorted(progress)
    obj.message("generate")
    obj.wait_for("ready", 2, timeout=TIMEOUT)
    obj.message("write snd")
    assert audio_distance(pd.read_array("snd"), target) == pytest.approx(distance, rel=1e-3)
    assert len(errors(obj)) == 7


def test_the_default_models_named_directions_by_name(pd, gss):
    """As [ganspacesynth~]: 'pca named' on the default model loads the named.npz shipped in
    its folder (a bare name found nowhere near the patch), and 'knob' plays them."""
    obj = new(pd, gss, "ganspacesynth", "default")
    obj.wait_for("loaded", timeout=TIMEOUT)
    obj.message("pca named")
    obj.wait_for("names", timeout=TIMEOUT)
    assert obj.replies("names")[0].atoms == ["brightness", "loudness", "noisiness", "pitch-salience"]
    obj.message("knob brightness 1.5")
    obj.message("generate")
    obj.wait_for("ready", timeout=TIMEOUT)
    assert not errors(obj)

"""The Hallu abstractions (hallu/) in real Pd.

Every abstraction and help patch must open without a complaint; the parts
without the engine ([hallu-steps], [hallu-path], [hallu]'s own errors) are
driven message by message; then the main tool composes with the fixture
model, saves the WAV, the session and its JSON export, and a second Pd
reloads the session and composes the same sound. The WAV is compared with
ganspacesynth.hallucinate for the same steps and settings, and with the JSON
session rendered by HalluSession, resampled to Pd's rate.

As in test_pd_external.py, patches chain on replies and quit themselves. The
patches that use the engine run with Pd's real-time scheduler, which leaves
the engine's worker the CPU (batch mode's thread never sleeps; see
pd_helpers.py); none of them turns DSP on or waits on logical time.
"""

import re

import numpy as np
import pytest

from pd_helpers import REPO, Patch, locate_external, printed, run_pd
from pd_patch import read_wav, relative_error

pytestmark = [pytest.mark.pd, pytest.mark.slow]

HALLU = REPO / "hallu"
FIXTURE = REPO / "tests" / "data" / "gansynth-reference"
FIXTURE_PCA = FIXTURE / "pca_conv0.pickle"
PD_RATE = 44100  # -noaudio without -r
# The WAV is 24-bit, as the original Hallu wrote it: quantisation is 2^-23
# of full scale (1.2e-7); the rest is TensorFlow's run-to-run differences
# (oneDNN's thread scheduling), as in test_pd_external.py.
TOLERANCE = 1e-4
# What a clean Pd prints nothing of.
PROBLEM = re.compile(r"couldn't create|error|bad arguments|no method|can't|not found|stack overflow|"
                     r"warning|out of range|rounding", re.IGNORECASE)

# The composition the tests make: steps, then the settings as messages.
STEPS = [[1.5, 0, -1], [-2, 1], [-2, 0, 2]]
SETTINGS = {"interp": 2, "spacing": 0.25, "trim": 0.1, "attack": 0.2, "sustain": 0.3, "release": 0.4}
ENGINE_SETTINGS = {"interp_steps": 2, "spacing": 0.25, "start_trim": 0.1, "attack": 0.2, "sustain": 0.3,
                   "release": 0.4}


@pytest.fixture(scope="session")
def pd_dir():
    return locate_external(REPO / "build" / "pd-tests")


def run(patch, pd_dir, *sends, timeout=240):
    extra = ["-path", str(HALLU)]
    for message in sends:
        extra += ["-send", message]
    return run_pd(patch, pd_dir, extra=extra, timeout=timeout, batch=False)


def problems(stderr):
    return [line for line in stderr.splitlines() if PROBLEM.search(line)]


def hallu_harness(path, chain):
    """[r hallu-test] -> [hallu] whose replies are printed and, for each
    (reply, message) of `chain`, answered with that message; an error or the
    last reply of the chain quits Pd."""
    patch = Patch()
    receive = patch.obj("r hallu-test")
    hallu = patch.obj("hallu")
    show = patch.obj("print hallu")
    replies = [reply for reply, _ in chain]
    route = patch.obj("route error " + " ".join(replies))
    quit_ = patch.msg("; pd quit")
    patch.connect(receive, 0, hallu)
    patch.connect(hallu, 1, show)       # first: 'pd quit' exits at once
    patch.connect(hallu, 1, route)
    patch.connect(route, 0, quit_)
    for i, (reply, message) in enumerate(chain):
        if message is None:
            patch.connect(route, i + 1, quit_)
        else:
            answer = patch.msg(message)
            patch.connect(route, i + 1, answer)
            patch.connect(answer, 0, hallu)
    return patch.write(path)


def padded(values, n=32):
    out = np.zeros(n, np.float32)
    out[:len(values)] = values
    return out


# --- opening ------------------------------------------------------------------

def test_every_patch_opens_cleanly(pd_dir):
    patches = sorted(HALLU.glob("*.pd"))
    names = {p.stem for p in patches}
    abstractions = [name for name in names if not name.endswith("-help")]
    assert {"hallu", "hallu-steps", "hallu-step-editor", "hallu-settings", "hallu-player", "hallu-path",
            "hallu-json"} <= names
    assert [name for name in abstractions if f"{name}-help" not in names] == []
    extra = ["-path", str(HALLU)]
    for patch in patches[:-1]:
        extra += ["-open", str(patch)]
    code, stderr = run_pd(patches[-1], pd_dir, extra=extra + ["-send", "pd quit"], timeout=120)
    assert code == 0, stderr
    assert problems(stderr) == [], stderr


# --- the parts that need no engine -------------------------------------------------

def test_steps_path_and_hallu_errors(pd_dir, tmp_path):
    (tmp_path / "here.txt").write_text("")
    patch = Patch()
    steps = patch.obj("hallu-steps")
    path = patch.obj("hallu-path")
    hallu = patch.obj("hallu")
    for name, obj in (("steps", steps), ("path", path), ("hallu", hallu)):
        receive = patch.obj(f"r test-{name}")
        show = patch.obj(f"print {name}")
        patch.connect(receive, 0, obj)
        patch.connect(obj, 1 if name == "hallu" else 0, show)
    file = patch.write(tmp_path / "parts.pd")
    sends = [f"test-steps {text}" for text in (
        "bang", "coeff 0 1.5", "coeff 15 -2", "coeff 16 9", "add", "coeff 1 0.5", "copy", "step 7 7",
        "dump", "prev", "prev", "remove", "dump", "goto 9", "next", "append 1 2 3", "dump", "clear",
        "remove", "dump", "frob 1 2")]
    sends += [f"test-path {text}" for text in (
        "symbol here.txt", "symbol nowhere.txt", "new nowhere.wav", "symbol /an/absolute.pickle",
        "symbol default", "new sub/x.wav")]
    sends += [f"test-hallu {text}" for text in ("save-wav x.wav", "frobnicate 1", "next")]
    sends += ["pd quit"]
    code, stderr = run(file, pd_dir, *sends)
    assert code == 0, stderr

    zeros = lambda values: " ".join(str(v) for v in values + [0] * (16 - len(values)))  # noqa: E731
    expected = [
        f"values {zeros([])}", "index 0 1",                     # loadbang
        f"values {zeros([])}", "index 0 1",                     # bang
        f"values {zeros([1.5])}", "index 0 1",
        f"values {zeros([1.5] + [0] * 14 + [-2])}", "index 0 1",  # coeff 16: ignored
        f"values {zeros([1.5] + [0] * 14 + [-2])}", "index 1 2",  # add: a copy at the end
        f"values {zeros([1.5, 0.5] + [0] * 13 + [-2])}", "index 1 2",
        f"values {zeros([1.5, 0.5] + [0] * 13 + [-2])}", "index 2 3",  # copy: after the current
        f"values {zeros([7, 7])}", "index 2 3",
        f"step {zeros([1.5] + [0] * 14 + [-2])}", f"step {zeros([1.5, 0.5] + [0] * 13 + [-2])}",
        f"step {zeros([7, 7])}", "dumped 3",
        f"values {zeros([1.5, 0.5] + [0] * 13 + [-2])}", "index 1 3",
        f"values {zeros([1.5] + [0] * 14 + [-2])}", "index 0 3",
        f"values {zeros([1.5, 0.5] + [0] * 13 + [-2])}", "index 0 2",  # remove: the next moves up
        f"step {zeros([1.5, 0.5] + [0] * 13 + [-2])}", f"step {zeros([7, 7])}", "dumped 2",
        f"values {zeros([7, 7])}", "index 1 2",                 # goto 9: clipped to the last
        f"values {zeros([1.5, 0.5] + [0] * 13 + [-2])}", "index 0 2",  # next: wraps around
        f"values {zeros([1, 2, 3])}", "index 2 3",              # append
        f"step {zeros([1.5, 0.5] + [0] * 13 + [-2])}", f"step {zeros([7, 7])}", f"step {zeros([1, 2, 3])}",
        "dumped 3",
        f"values {zeros([])}", "index 0 1",                     # clear
        f"values {zeros([])}", "index 0 1",                     # remove of the last: zeroed
        f"step {zeros([])}", "dumped 1",
        "error hallu-steps: unknown message frob"]
    assert printed(stderr, "steps") == expected

    assert printed(stderr, "path") == [
        f"symbol {tmp_path}/here.txt", "symbol nowhere.txt", f"symbol {tmp_path}/nowhere.wav",
        "symbol /an/absolute.pickle", "symbol default", f"symbol {tmp_path}/sub/x.wav"]

    # 'next' with one step changes nothing, so no new 'step' event.
    assert printed(stderr, "hallu") == [
        "step 0 1",
        "error save-wav: nothing generated yet (send 'generate' and wait for 'generated')",
        "error hallu: unknown message frobnicate"]


# --- composing with the engine -----------------------------------------------------

@pytest.fixture(scope="module")
def composed(pd_dir, tmp_path_factory):
    """One composition made through [hallu]'s inlet, its WAV and session saved."""
    folder = tmp_path_factory.mktemp("hallu")
    patch = hallu_harness(folder / "compose.pd", [("generated", "save-wav out.wav"),
                                                  ("saved-wav", "save-session session.txt"),
                                                  ("saved-session", "export-json session.json"),
                                                  ("exported-json", None)])
    sends = [f"hallu-test load {FIXTURE} {FIXTURE_PCA}", "hallu-test range 10"]
    for i, step in enumerate(STEPS):
        if i:
            sends.append("hallu-test add")         # a copy of the current step...
        sends.append("hallu-test step " + " ".join(map(str, step)))   # ...then changed
    sends.append("hallu-test coeff 1 0")        # the last step through the slider's message
    sends += [f"hallu-test {name} {value}" for name, value in SETTINGS.items()]
    sends.append("hallu-test generate")
    code, stderr = run(patch, pd_dir, *sends)
    return folder, code, stderr


def test_hallu_composes_like_the_engine(composed, reference_model):
    import ganspacesynth
    from ganspacesynth.instrument import resample

    folder, code, stderr = composed
    events = printed(stderr, "hallu")
    assert code == 0, stderr
    assert [e for e in events if e.startswith("error")] == [], stderr
    assert "loaded 32 16000 64000" in events
    assert "step 2 3" in events
    assert f"saved-session {folder}/session.txt" in events
    pca = ganspacesynth.load_pca(FIXTURE_PCA)
    audio, _ = ganspacesynth.hallucinate(reference_model, pca, [padded(s) for s in STEPS], **ENGINE_SETTINGS)
    expected = resample(audio, reference_model.sample_rate, PD_RATE)
    assert f"generated {len(expected)}" in events
    assert f"saved-wav {folder}/out.wav {len(expected)}" in events
    assert relative_error(read_wav(folder / "out.wav"), expected) < TOLERANCE


def test_session_is_readable_and_reloads(composed, pd_dir):
    folder, code, _ = composed
    assert code == 0
    lines = (folder / "session.txt").read_text().split(";\n")
    assert lines[0] == f"model {FIXTURE}"
    assert lines[1] == f"pca {FIXTURE_PCA}"
    assert lines[2] == "range 10"
    assert set(lines[3:9]) == {f"{name} {value:g}" for name, value in SETTINGS.items()}
    assert lines[9:12] == ["step " + " ".join(f"{v:g}" for v in padded(s, 16)) for s in STEPS]

    patch = hallu_harness(folder / "reload.pd", [("loaded-session", "generate"),
                                                 ("generated", "save-wav again.wav"),
                                                 ("saved-wav", None)])
    code, stderr = run(patch, pd_dir, "hallu-test load-session session.txt")
    events = printed(stderr, "hallu")
    assert code == 0, stderr
    assert [e for e in events if e.startswith("error")] == [], stderr
    assert f"loaded-session {folder}/session.txt" in events
    first, again = read_wav(folder / "out.wav"), read_wav(folder / "again.wav")
    assert relative_error(again, first) < TOLERANCE


def test_json_export_renders_the_same_in_python(composed, reference_model):
    from ganspacesynth.hallu import HalluSession
    from ganspacesynth.instrument import resample

    folder, code, stderr = composed
    assert code == 0, stderr
    assert f"exported-json {folder}/session.json" in printed(stderr, "hallu")
    session = HalluSession.load(folder / "session.json")
    assert session.model == str(FIXTURE) and session.pca == str(FIXTURE_PCA)
    assert session.mode == "layer"
    np.testing.assert_allclose(session.steps, [padded(s, 16) for s in STEPS])
    for name, value in ENGINE_SETTINGS.items():
        assert getattr(session.settings, name) == pytest.approx(value, rel=1e-6)
    audio, _ = session.render(model=reference_model)
    expected = resample(audio, reference_model.sample_rate, PD_RATE)
    assert relative_error(read_wav(folder / "out.wav"), expected) < TOLERANCE


def test_pca_with_fewer_components_than_sliders(pd_dir, tmp_path, reference_model):
    """The sliders always make 16 coefficients; [hallu] sends the engine only as many as
    the PCA has, for the preview and for the composition."""
    import ganspacesynth
    from ganspacesynth.instrument import resample
    from ganspacesynth.pca import PCA

    full = ganspacesynth.load_pca(FIXTURE_PCA)
    pca = PCA(full.layer, full.components[:8], full.stdev[:8], full.explained_variance_ratio[:8], full.mean,
              estimator=full.estimator, model_id=full.model_id)
    pca.save(tmp_path / "pca8.npz")
    steps = [[1, 0, 0, 0, 0, 0, 0, 0.5, 0, 0, 3], [-1, 2]]
    # The count comes with 'loaded': what is sent to the engine before that is not cut.
    patch = hallu_harness(tmp_path / "eight.pd", [("loaded", "preview"), ("ready", "generate"),
                                                  ("generated", "save-wav eight.wav"), ("saved-wav", None)])
    code, stderr = run(patch, pd_dir, f"hallu-test load {FIXTURE} pca8.npz",
                       "hallu-test step " + " ".join(map(str, steps[0])), "hallu-test add",
                       "hallu-test step " + " ".join(map(str, steps[1])), "hallu-test prev")
    events = printed(stderr, "hallu")
    assert code == 0, stderr
    assert [e for e in events if e.startswith("error")] == [], stderr
    assert "loaded 8 16000 64000" in events
    audio, _ = ganspacesynth.hallucinate(reference_model, pca, [padded(s[:8], 8) for s in steps])
    expected = resample(audio, reference_model.sample_rate, PD_RATE)
    assert relative_error(read_wav(tmp_path / "eight.wav"), expected) < TOLERANCE


def test_step_editor_labels_sliders_with_names(pd_dir, tmp_path):
    """'names N0 N1 ...' puts the names on the first sliders and the numbers back on the
    rest (the sliders' labels, as Pd saves them: the editor's insides, copied into a
    subpatch of a saved patch)."""
    body = (HALLU / "hallu-step-editor.pd").read_text().split("\n", 1)[1].rstrip("\n")
    path = tmp_path / "editor.pd"
    path.write_text("#N canvas 0 50 900 700 12;\n#X obj 10 10 r editor-test;\n"
                    f"#N canvas 0 50 1024 554 ed 0;\n{body}\n#X restore 10 40 pd ed;\n#X connect 0 0 1 0;\n")
    code, stderr = run_pd(path, pd_dir, extra=["-send", "editor-test names " + " ".join("abcdefghijklmnopqrs"),
                                               "-send", "editor-test names brightness loudness",
                                               "-send", "pd-editor.pd menusave", "-send", "pd quit"],
                          timeout=120)
    assert code == 0 and problems(stderr) == [], stderr
    labels = [line.split()[13:16] for line in path.read_text().splitlines() if " hsl " in line]
    assert labels == [["brightness", "3", "8"], ["loudness", "3", "8"]] + [[str(i), "-22", "8"]
                                                                          for i in range(2, 16)]


def test_hallu_names_and_find(pd_dir, tmp_path):
    """With a PCA that has names [hallu] passes 'names' to its sliders; 'find FILE' ends with
    'found' and the found point as a new step (here: z mode, so zero coefficients, and the
    found pitch in the panel)."""
    import soundfile

    from ganspacesynth import load_model
    from named_pca import NAMES, write_named_pca

    model = load_model("default")
    write_named_pca(tmp_path / "named.npz", "default")
    target = model.generate(model.random_z(1, seed=11), model.pitches[3])[0]
    soundfile.write(tmp_path / "target.wav", target, model.sample_rate)
    patch = hallu_harness(tmp_path / "find.pd", [("names", "find target.wav 2 0"),
                                                 ("found", "save-session s.txt"), ("saved-session", None)])
    code, stderr = run(patch, pd_dir, "hallu-test load default named.npz", "hallu-test step 1 2 3",
                       "hallu-test mode z", timeout=1800)
    events = printed(stderr, "hallu")
    assert code == 0, stderr[-3000:]
    assert [e for e in events if e.startswith("error")] == [], stderr[-3000:]
    assert "names " + " ".join(NAMES) in events
    found = [e.split() for e in events if e.startswith("found")]
    assert len(found) == 1 and len(found[0]) == 3 + len(NAMES), events
    assert any(e.startswith("progress") for e in events)
    steps = [line for line in (tmp_path / "s.txt").read_text().split(";\n") if line.startswith("step")]
    assert steps == ["step 1 2 3" + " 0" * 13, "step" + " 0" * 16], steps

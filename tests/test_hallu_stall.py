"""The first preview after a load: no tracing left for it, and the tool says it is working.

Once, in the Hallu tool with Pd's GUI on a busy machine, `preview` answered
about 29 s after the click, following a failed `generate`. Measured again
beside two CPU-bound processes, the wait was all in the engine: the first
clip after `load` traced TensorFlow's graph (1-2 s of CPU for the default
model; 7-18 s from click to `ready` with the engine's worker running nicer
than the load, against 0.3 s for the next clip), while Pd's thread ran on
and the failed `generate` played no part. Meanwhile the panel's status still said `error` (from the failed
`generate`), so the wait looked like a hang.

Now `load` (and `pca`, and a new `mode`) trace and run once what `generate`
uses, for any batch size, so the wait happens while the status says `loading`;
and `preview` sets the status to `generating` at the click, as `generate`
does. Both are checked here by what happens, not by how long it takes.
"""

import pytest

from pd_helpers import REPO, Patch, locate_external, run_pd

HALLU = REPO / "hallu"
# The case had the default model; the Magenta fixture takes the same path and
# stays the same while the default model is retrained.
FIXTURE = REPO / "tests" / "data" / "gansynth-reference"
FIXTURE_PCA = FIXTURE / "pca_conv0.pickle"
EMPTY_NOTES = {"attack": 0, "sustain": 0, "release": 0}   # a composition that cannot be made


def tracings(model):
    return {key: function.experimental_get_tracing_count() for key, function in model._compiled.items()}


@pytest.mark.slow
def test_first_clip_after_load_traces_nothing(tmp_path):
    import shutil

    from ganspacesynth.errors import GanspacesynthError
    from ganspacesynth.instrument import Instrument

    instrument = Instrument()
    instrument.load(str(FIXTURE), str(FIXTURE_PCA))
    for name, value in EMPTY_NOTES.items():
        instrument.set_hallu(name, value)
    instrument.add_step([1.0])
    with pytest.raises(GanspacesynthError, match="attack \\+ sustain \\+ release is 0"):
        instrument.hallucinate(44100)
    for mode in ("layer", "z", "layer"):
        instrument.set_mode(mode)
        before = tracings(instrument.model)
        assert before and all(count >= 1 for count in before.values())
        instrument.generate(44100)
        assert tracings(instrument.model) == before, mode

    # a batch of points (Hallu) reuses the same trace as a single clip
    instrument.set_hallu("attack", 0.1)
    instrument.add_step([-1.0, 0.5])
    layer = instrument.model.generator.layer_index(instrument.pca.layer)
    before = tracings(instrument.model)[(layer, None, None)]
    instrument.hallucinate(16000)
    assert tracings(instrument.model)[(layer, None, None)] == before

    # a new model: the same again, without a generate between; and z alone (no PCA),
    # the graph of 'latent' mode too. Copies of the fixture, because loading the
    # same folder again shares the copy already loaded (and traced).
    first, second = (shutil.copytree(FIXTURE, tmp_path / name) for name in ("first", "second"))
    instrument.load(str(first), str(FIXTURE_PCA))
    before = tracings(instrument.model)
    assert before
    instrument.generate(44100)
    assert tracings(instrument.model) == before
    instrument.set_mode("z")
    instrument.load(str(second), "none")
    before = tracings(instrument.model)
    assert before and {layer for layer, _, _ in before} == {-1}   # z's graphs only (whole clip, first part)
    instrument.generate(44100)
    assert tracings(instrument.model) == before


def stall_patch(path):
    """The Hallu tool: a `generate` that fails, then `preview` once the error
    is shown; the panel's status is printed as `status: ...` by a spy put
    inside [hallu] (where $0 is the tool's own)."""
    (path.parent / "status-spy.pd").write_text(
        "#N canvas 0 50 300 200 12;\n#X obj 10 10 r \\$1;\n#X obj 10 40 print \\$2;\n#X connect 0 0 1 0;\n")
    patch = Patch()
    receive = patch.obj("r hallu-test")
    hallu = patch.obj("hallu")
    show = patch.obj("print hallu")
    start = patch.obj("loadbang")
    spy = patch.msg("; pd-hallu.pd obj 900 500 status-spy \\$0-status status")
    route = patch.obj("route error ready")
    failed = patch.obj("route hallucinate:")
    bang = patch.obj("t b")
    later = patch.obj("delay 1")         # a click comes after the error is shown, not inside it
    preview = patch.msg("preview")
    quit_ = patch.msg("; pd quit")
    patch.connect(start, 0, spy)
    patch.connect(receive, 0, hallu)
    patch.connect(hallu, 1, show)
    patch.connect(hallu, 1, route)
    patch.connect(route, 0, failed)
    patch.connect(failed, 0, bang)
    patch.connect(bang, 0, later)
    patch.connect(later, 0, preview)
    patch.connect(failed, 1, quit_)      # the preview's own answer, or any other error, ends the run
    patch.connect(route, 1, quit_)
    patch.connect(preview, 0, hallu)
    return patch.write(path)


@pytest.mark.pd
def test_preview_says_generating_after_a_failed_generate(tmp_path):
    """The panel's status at the preview's click, after a failed generate: no model is
    loaded here, so that the check costs no model load (the engine's side is above);
    the generate and the preview both fail, each with its own error."""
    pd_dir = locate_external(REPO / "build" / "pd-tests")
    patch = stall_patch(tmp_path / "stall.pd")
    code, stderr = run_pd(patch, pd_dir, extra=["-path", str(HALLU), "-path", str(tmp_path),
                                                 "-send", "hallu-test generate"])
    assert code == 0, stderr
    events = [line.strip() for line in stderr.splitlines() if line.startswith(("hallu: error", "status:"))]
    assert events == ["status: symbol generating",
                      "hallu: error hallucinate: no model loaded (send 'load MODEL' first)",
                      "status: symbol error",
                      "status: symbol generating",            # the preview's click
                      "hallu: error generate: no model loaded (send 'load MODEL' first)"], stderr

"""Instrument: the state machine behind [ganspacesynth~], without Pd."""

import numpy as np
import pytest

from ganspacesynth.errors import GanspacesynthError
from ganspacesynth import instrument as instrument_module
from ganspacesynth.instrument import PART_FRAMES, UNCHECKED_PARTS, Instrument, resample


@pytest.fixture(scope="module")
def instrument(reference_dir):
    i = Instrument()
    assert i.load(reference_dir) == (0, 16000, 64000)
    return i


@pytest.mark.parametrize("call, message", [
    (lambda i: i.generate(), "generate: no model loaded"),
    (lambda i: i.set_pitch(60), "pitch: no model loaded"),
    (lambda i: i.set_coefficients([1, float("nan")]), "coeffs: value 1 is nan"),
    (lambda i: i.set_coefficients([]), "coeffs: expected at least one coefficient"),
    (lambda i: i.set_coefficient(-1, 0), "coeff: index -1 is negative"),
    (lambda i: i.set_coefficient(0, float("inf")), "coeff 0: inf is not a finite number"),
    (lambda i: i.set_mode("sideways"), "mode: unknown mode 'sideways'"),
    (lambda i: i.set_hallu("interp", 33), "interp: 33 is outside 0..32"),
    (lambda i: i.set_hallu("spacing", 0), "spacing: 0 s must be more than 0"),
    (lambda i: i.set_hallu("tempo", 1), "unknown Hallu setting 'tempo'"),
    (lambda i: i.load("/nonexistent/model"), "load: /nonexistent/model: no such model folder"),
    (lambda i: i.hallucinate(), "hallucinate: no model loaded"),
])
def test_bad_input_without_a_model(call, message):
    with pytest.raises(GanspacesynthError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        call(Instrument())


def test_bad_input_with_a_model(instrument):
    with pytest.raises(GanspacesynthError, match="pitch: 200 is not a pitch .* 24..84"):
        instrument.set_pitch(200)
    with pytest.raises(GanspacesynthError, match="z: expected 256 values"):
        instrument.set_z([0.0] * 3)
    with pytest.raises(GanspacesynthError, match="z-random: seed -2 is negative"):
        instrument.random_z(-2)
    instrument.set_mode("layer")
    with pytest.raises(GanspacesynthError, match="generate: no PCA loaded"):
        instrument.generate()


def test_z_mode_without_pca_is_plain_generation(instrument, reference_model):
    instrument.set_mode("z")
    instrument.random_z(4)
    instrument.set_pitch(48)
    clip = instrument.generate(44100)
    expected = reference_model.generate(reference_model.random_z(1, seed=4), 48)[0]
    np.testing.assert_allclose(clip, resample(expected, 16000, 44100), atol=1e-5 * np.abs(expected).max())
    assert clip.dtype == np.float32 and clip.shape == (176400,)


def test_pca_coefficient_counts(instrument, reference_dir):
    pytest.importorskip("ganspacesynth.pca", reason="the engine cannot load PCAs yet")
    i = Instrument()
    n, _, _ = i.load(reference_dir, reference_dir / "pca_conv0.pickle")
    with pytest.raises(GanspacesynthError, match=f"coeffs: {n + 1} coefficients given but the PCA has {n}"):
        i.set_coefficients([0.5] * (n + 1))
    with pytest.raises(GanspacesynthError, match=f"coeff: index {n} is out of range"):
        i.set_coefficient(n, 1.0)
    i.set_coefficients([1.0, -1.0])      # the rest are zero
    assert i.generate().shape == (64000,)


def test_test_delay(monkeypatch, instrument):
    import time

    instrument.set_mode("z")
    monkeypatch.setenv("GANSPACESYNTH_TEST_DELAY", "0.3")
    start = time.perf_counter()
    instrument.generate()
    assert time.perf_counter() - start >= 0.3


def test_a_model_brings_its_own_pca(tmp_path):
    """'load MODEL' takes the pca.npz in the model's folder; 'load MODEL none' does not."""
    import shutil

    from ganspacesynth.model import resolve_model_path
    from ganspacesynth.pca import DEFAULT_PCA_FILE, load_pca

    own = load_pca("default").n_components
    assert own > 0
    i = Instrument()
    assert i.load("default")[0] == own
    assert i.pca is not None and i.generate().shape == (64000,)    # layer mode, no other step
    assert i.load("default", "none")[0] == 0 and i.pca is None
    assert i.load("default", "")[0] == own                         # empty: the same as none given

    # a folder with a broken pca.npz: a clear error, the previous model stays
    folder = tmp_path / "model"
    shutil.copytree(resolve_model_path("default"), folder)
    (folder / DEFAULT_PCA_FILE).write_bytes(b"not a PCA")
    with pytest.raises(GanspacesynthError, match=r"^load: the model's own PCA cannot be used .*"
                                                 r"'load .*model none'"):
        i.load(folder)
    assert i.n_components == own and i.model_name == "default"
    assert i.load(folder, "none")[0] == 0
    (folder / DEFAULT_PCA_FILE).unlink()
    assert i.load(folder)[0] == 0                                  # no file: no PCA, no error


def test_knob_sets_a_named_coefficient(tmp_path, reference_dir):
    from named_pca import NAMES, write_named_pca

    instrument = Instrument()
    instrument.load(reference_dir, "none")
    with pytest.raises(GanspacesynthError, match="^knob: no PCA loaded"):
        instrument.set_knob("loudness", 1)
    instrument.load_pca(reference_dir / "pca_conv0.pickle")
    assert instrument.component_names() == []
    with pytest.raises(GanspacesynthError, match="^knob: the PCA's components have no names"):
        instrument.set_knob("loudness", 1)
    instrument.load_pca(write_named_pca(tmp_path / "named.npz"))
    assert instrument.component_names() == NAMES
    instrument.set_knob("noisiness", 1.5)
    assert list(instrument.coefficients) == [0, 0, 1.5]
    with pytest.raises(GanspacesynthError, match="^knob: no component is called 'colour'; the names are "
                                                 "brightness loudness noisiness pitch-salience$"):
        instrument.set_knob("colour", 1)
    with pytest.raises(GanspacesynthError, match="^knob loudness: nan is not a finite number"):
        instrument.set_knob("loudness", float("nan"))
    assert list(instrument.coefficients) == [0, 0, 1.5]


def test_find_makes_the_found_point_current(tmp_path, reference_dir, reference_model):
    import soundfile

    from ganspacesynth.invert import audio_distance
    from named_pca import write_named_pca

    target = reference_model.generate(reference_model.random_z(1, seed=11), 50)[0]
    soundfile.write(tmp_path / "t.wav", target, 16000)
    instrument = Instrument()
    instrument.load(reference_dir, str(write_named_pca(tmp_path / "named.npz")))
    instrument.set_coefficients([3.0])
    with pytest.raises(GanspacesynthError, match="^find: .*nothing.wav: cannot read"):
        instrument.find(tmp_path / "nothing.wav")
    with pytest.raises(GanspacesynthError, match="^find: -1 steps is outside"):
        instrument.find(tmp_path / "t.wav", steps=-1)
    assert list(instrument.coefficients) == [3.0] and instrument.pitch == reference_model.default_pitch
    fractions = []
    distance, pitch, coefficients = instrument.find(tmp_path / "t.wav", steps=2, layer_steps=2,
                                                    progress=fractions.append)
    assert fractions[-1] == 1.0 and pitch == instrument.pitch and coefficients.shape == (4,)
    assert np.array_equal(instrument.coefficients, coefficients) and np.any(coefficients != 0)
    assert distance == pytest.approx(audio_distance(instrument.generate(), target), rel=1e-4)
    instrument.set_mode("latent")       # the fixture's PCA has no latent directions: refused at once
    with pytest.raises(GanspacesynthError, match="^find: .*has no latent directions"):
        instrument.find(tmp_path / "t.wav", steps=2)
    instrument.set_mode("z")
    distance, pitch, coefficients = instrument.find(tmp_path / "t.wav", steps=2, layer_steps=0)
    assert np.abs(coefficients).max() < 1e-4   # z and pitch alone are the found point
    assert distance == pytest.approx(audio_distance(reference_model.generate(instrument.z, pitch), target),
                                     rel=1e-3)


# How far a part may be from the whole clip's start: float32 rounding of sums
# taken in another order (the clips peak near 0.1-1).
PART_ROUNDING = 1e-6


@pytest.mark.parametrize("rate", [None, 44100, 48000])
def test_parts_are_the_start_of_the_whole_clip(instrument, reference_dir, rate):
    """What a host plays before the whole clip is there must be that clip's start
    (no seam where the whole clip takes over), resampler look-ahead included.

    To float rounding, not bit for bit: on some CPUs TensorFlow's oneDNN kernels
    sum in a different order for a shorter input (seen in CI: 1e-7, -140 dB)."""
    instrument.set_mode("z")
    instrument.random_z(7)
    instrument.whole_seconds = 10.0  # as if the whole clip took long: every part is made
    parts = []
    whole = instrument.generate_parts(rate, parts.append)
    sizes = [part.size for part in parts] + [whole.size]
    assert len(parts) == len(PART_FRAMES) and 0 < sizes[0] and sizes == sorted(set(sizes))
    for part in parts:
        assert part.dtype == np.float32
        np.testing.assert_allclose(part, whole[:part.size], rtol=0, atol=PART_ROUNDING)
    np.testing.assert_array_equal(whole, instrument.generate(rate))
    # the first part is short (a fraction of a second) ...
    assert parts[0].size / (rate or 16000) < 0.15
    # ... and when the whole clip comes quickly, it is the only one
    instrument.whole_seconds = 0.01
    parts.clear()
    instrument.generate_parts(rate, parts.append)
    assert len(parts) == 1


def traces(model):
    return len(model._compiled), sum(f.experimental_get_tracing_count() for f in model._compiled.values())


@pytest.mark.parametrize("mode", ["layer", "z"])
@pytest.mark.parametrize("slow_model", [False, True])
def test_after_loading_no_part_is_traced_while_playing(reference_dir, mode, slow_model, monkeypatch):
    """Which parts a clip needs depends on how long the last whole clip took; a part graph
    first traced while playing stalled the stream (seen under JACK: 0.2-0.7 s). The same for
    the graphs of a whole clip computed in steps (a model whose whole clip is slow)."""
    if slow_model:  # as if the fixture's whole clip took as long as the full size's
        monkeypatch.setattr(instrument_module, "CHECKED_WHOLE_SECONDS", 0.0)
    i = Instrument()
    i.load(reference_dir, reference_dir / "pca_conv0.pickle")
    i.set_mode(mode)
    assert i.check_layers == slow_model
    traced = traces(i.model)
    i.whole_seconds = 10.0  # the machine got busy: every part is made
    parts, checks = [], []
    i.generate_parts(48000, parts.append, lambda: checks.append(1))
    assert len(parts) == len(PART_FRAMES) and traces(i.model) == traced
    assert bool(checks) == slow_model


def test_a_slow_whole_clip_is_checked_between_layers_and_stops(reference_dir, monkeypatch):
    """A host stops a long whole clip when a newer one is wanted (the external, when a knob
    turns while the last turn's clip is computed): ``check`` is called between the steps of
    the later parts and the whole clip, and what it raises ends the work there, with
    nothing of the clip returned."""
    monkeypatch.setattr(instrument_module, "CHECKED_WHOLE_SECONDS", 0.0)
    i = Instrument()
    i.load(reference_dir, reference_dir / "pca_conv0.pickle")
    i.set_coefficients([1.5, -0.5])
    plain = i.generate(48000)
    events = []
    i.whole_seconds = 10.0  # as if the whole clip took long: every part is made
    whole = i.generate_parts(48000, lambda part: events.append("part"), lambda: events.append("check"))
    np.testing.assert_array_equal(whole, plain)
    steps = ["check"] * len(i.model.checked_steps(i.model.layer_names.index(i.pca.layer)))
    # the first two parts in one graph each (a change waits to hear the first, and the
    # second must come before the first has played), then the later ones and the whole
    # clip from the PCA's layer, each checked after every step
    assert len(steps) >= 4 and len(PART_FRAMES) > UNCHECKED_PARTS
    assert events == (["part"] * UNCHECKED_PARTS + (steps + ["part"]) * (len(PART_FRAMES) - UNCHECKED_PARTS)
                      + steps)

    def stop():
        raise KeyboardInterrupt  # what the bridge's check raises for a newer clip

    events.clear()
    i.whole_seconds = 10.0
    with pytest.raises(KeyboardInterrupt):
        i.generate_parts(48000, lambda part: events.append("part"), stop)
    assert events == ["part"] * UNCHECKED_PARTS  # stopped in the next part
    np.testing.assert_array_equal(i.generate(48000), plain)  # nothing left behind


def test_parts_in_layer_mode_and_stopping(reference_dir):
    i = Instrument()
    i.load(reference_dir, reference_dir / "pca_conv0.pickle")
    i.set_coefficients([1.5, -0.5])
    i.whole_seconds = 10.0
    parts = []
    whole = i.generate_parts(48000, parts.append)
    for part in parts:
        np.testing.assert_allclose(part, whole[:part.size], rtol=0, atol=PART_ROUNDING)

    def stop(part):
        raise KeyboardInterrupt  # what the bridge's callback raises to abandon the clip

    with pytest.raises(KeyboardInterrupt):
        i.generate_parts(48000, stop)

"""Find this sound: the differentiable inversion, the distance, and inverting the model's own clips."""

import json

import numpy as np
import pytest

from ganspacesynth import spectral, spectral_tf
from ganspacesynth.invert import InversionError, audio_distance, invert, invert_file
from ganspacesynth.pca import load_pca

from conftest import REFERENCE_DIR, relative_error

PITCH = 44
# The claim, on the small reference model: inverting a clip it generated from a known z and
# pitch (30 Adam steps on z, then LAYER_STEPS on conv0's activations) finds a clip whose multi-resolution
# STFT distance to it is below FOUND_BELOW, and less than half that of the nearest of 8 random
# clips at the same pitch. For scale: on this model moving that z by 3% of its length (0.03 per
# coordinate) gives distances of 0.3 to 0.5, by 10% already 0.7 to 1.4, as far as random clips
# (1.2 to 7.7): its output decorrelates fast, so z alone gets only as near as the best random
# clip and the layer refinement does the rest.
# The target (z seed 6): loud bursts in the last second where the z search's best clip is
# all but silent, the plateau on which the audio distance alone stalled (1.03 here, seeds 123
# and 6 both; 0.34 and 0.53 on seeds 1 and 3), and which matching magnitudes first crosses
# (seeds 6, 123, 1, 3: 0.41, 0.52, 0.59, 0.46 with TensorFlow's default kernels; below 0.6 on
# seed 6 with oneDNN's too). Seed 0 is no test: it is the search's own first start.
# LAYER_STEPS: 200 found 0.41 on seed 6 either way, 120 finds 0.48 with TensorFlow's default
# kernels and 0.41 with oneDNN's (this is the suite's slowest test: 100 s alone at 120 steps
# without oneDNN).
# Fewer are not safe: the step count sets the learning-rate schedule, and 100 steps found
# 0.39 and 0.599.
FOUND_BELOW = 0.6
TARGET_SEED = 6
LAYER_STEPS = 120


def test_the_tensorflow_inversion_equals_the_numpy_one(reference_model):
    specgrams = reference_model.generate_specgrams(reference_model.random_z(2, seed=1), PITCH)
    expected = spectral.specgrams_to_waves(specgrams)
    assert relative_error(spectral_tf.specgrams_to_waves(specgrams).numpy(), expected) < 1e-3


def test_the_distance_is_zero_only_for_equal_clips():
    rng = np.random.default_rng(0)
    a = 0.1 * rng.standard_normal((2, 64000)).astype(np.float32)
    assert audio_distance(a[0], a[0]) == pytest.approx(0.0, abs=1e-6)
    assert audio_distance(a[0], a[1]) > 0.5
    found = audio_distance(a, a[:1])  # broadcasts one target over several clips
    assert found.shape == (2,) and found[0] == pytest.approx(0.0, abs=1e-6) and found[1] > 0.5
    assert audio_distance(2 * a[0], a[0]) > 0.5  # a level change counts: spectral convergence sees it


@pytest.fixture(scope="module")
def target(reference_model):
    return reference_model.generate(reference_model.random_z(1, seed=TARGET_SEED), PITCH)[0]


def test_inverting_a_clip_of_the_model_finds_it(tmp_path, reference_model, target):
    model = reference_model
    random = audio_distance(model.generate(model.random_z(8, seed=7), PITCH), target[np.newaxis])
    fractions = []
    found = invert(model, target, pitch=PITCH, starts=16, keep=2, steps=30, layer_steps=LAYER_STEPS, seed=0,
                   progress=fractions.append)
    assert found.pitch == PITCH and found.z.shape == (model.latent_size,)
    assert found.distance == pytest.approx(audio_distance(found.audio, target), rel=1e-3)
    assert found.distance < FOUND_BELOW and found.distance < 0.5 * random.min(), (
        f"found {found.distance:.3f} (z alone {found.distance_z:.3f}), random clips from {random.min():.3f}")
    assert found.distance_z < np.median(random)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert found.history[-1] == pytest.approx(found.distance) and found.history[0] >= found.history[-1]
    # The record: the layer values give the found clip; z and pitch, the clip before refinement.
    out = model.generate_from_layer("conv0", found.layer_values)[0]
    assert audio_distance(out, target) == pytest.approx(found.distance, rel=1e-3)
    assert audio_distance(model.generate(found.z, found.pitch), target) == pytest.approx(found.distance_z, rel=1e-3)
    pca = load_pca(REFERENCE_DIR / "pca_conv0.pickle")
    coefficients = found.coefficients(pca)
    assert coefficients["layer"].shape == coefficients["z"].shape == (32,) and coefficients["latent"] is None
    assert model.synthesize(pca, coefficients["z"], z=found.z, pitch=PITCH).shape == (64000,)
    path, wav = found.save(tmp_path / "found.json", pca=pca)
    record = json.loads(path.read_text())
    assert record["pitch"] == PITCH and len(record["z"]) == model.latent_size
    assert record["distance"] == pytest.approx(found.distance) and len(record["pca"]["layer"]) == 32
    assert len(record["layer_values"]) == 2 * 16 * 32 and wav.name == "found.wav" and wav.exists()


def test_a_search_with_kept_graphs_finds_what_new_graphs_find(target):
    import ganspacesynth
    from ganspacesynth.invert import graphs_for

    def same(a, b):
        assert (a.pitch, a.distance, a.distance_z, a.history) == (b.pitch, b.distance, b.distance_z, b.history)
        for name in ("z", "layer_values", "audio"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)

    model = ganspacesynth.load_model(REFERENCE_DIR)  # no graphs kept yet
    search = dict(pitch=PITCH, starts=3, keep=2, steps=2, layer_steps=2, seed=2)
    new = invert(model, target, **search)
    # Another search in between moves all that is kept: target, z, the layer's rows, Adam's
    # moments and step count, the learning rates' schedules.
    other = model.generate(model.random_z(1, seed=3), PITCH)[0]
    invert(model, other, **{**search, "seed": 4, "steps": 3, "layer_steps": 4})
    same(invert(model, target, **search), new)
    kept = model._inversion_graphs[(0, 2)]
    assert len(kept) == 1 and not kept[0].lock.locked()
    # Each graph traced once in three searches: Adam's moments are made before its first
    # step (a first call that makes variables traces twice), and the z search's batches
    # (starts) and Adam's (keep) share one trace.
    for graph in ("distances", "z_step", "magnitude_step", "layer_step"):
        assert getattr(kept[0], graph).experimental_get_tracing_count() == 1, graph
    # While one search holds the kept graphs (voices sharing a model), another gets new ones.
    with graphs_for(model, 0, 2) as held:
        assert held is kept[0]
        with graphs_for(model, 0, 2) as second:
            assert second is not held and kept == [held, second]
    assert not any(graphs.lock.locked() for graphs in kept)
    with graphs_for(model, 0, 2) as again:
        assert again is held


def test_without_refinement_z_and_pitch_are_the_result(reference_model, target):
    found = invert(reference_model, target, pitch=PITCH, starts=2, keep=1, steps=3, seed=1)
    assert found.distance == found.distance_z
    pca = load_pca(REFERENCE_DIR / "pca_conv0.pickle")
    assert np.abs(found.coefficients(pca)["z"]).max() < 1e-4  # nothing to add to z's activation
    np.testing.assert_array_equal(found.layer_values, reference_model.layer_output("conv0", found.z, PITCH)[0])


def test_files_any_rate_and_bad_input(tmp_path, reference_model, target):
    import soundfile

    from ganspacesynth.audio import resample

    stereo = np.stack([resample(target, 16000, 22050)] * 2, axis=1)
    soundfile.write(tmp_path / "t.wav", stereo, 22050)
    found = invert_file(reference_model, tmp_path / "t.wav", pitch=PITCH, starts=1, keep=1, steps=0)
    assert found.pitch == PITCH and np.isfinite(found.distance)
    soundfile.write(tmp_path / "silent.wav", np.zeros(1000), 16000)
    with pytest.raises(InversionError, match="silent"):
        invert_file(reference_model, tmp_path / "silent.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio")
    with pytest.raises(InversionError, match="cannot read"):
        invert_file(reference_model, tmp_path / "junk.wav")
    with pytest.raises(ValueError, match="valid pitches"):
        invert(reference_model, target, pitch=7)
    with pytest.raises(ValueError, match="steps"):
        invert(reference_model, target, steps=-1)


def test_cli_invert(tmp_path, capsys, reference_model, target):
    import soundfile

    from ganspacesynth.cli import main

    soundfile.write(tmp_path / "t.wav", target, 16000)
    out = tmp_path / "found.json"
    assert main(["invert", str(REFERENCE_DIR), str(tmp_path / "t.wav"), "-o", str(out), "--pitch", str(PITCH),
                 "--starts", "1", "--keep", "1", "--steps", "2", "--pca",
                 str(REFERENCE_DIR / "pca_conv0.pickle")]) == 0
    assert "spectral distance" in capsys.readouterr().out
    assert json.loads(out.read_text())["pitch"] == PITCH and (tmp_path / "found.wav").exists()
    assert main(["invert", str(REFERENCE_DIR), str(tmp_path / "nothing.wav"), "-o", str(out)]) == 2
    assert "cannot read" in capsys.readouterr().err

"""GANSpace: estimators, the PCA file format, safe reading of original pickles, synthesis, descriptors."""

import builtins
import json
import os
import pickle

import numpy as np
import pytest

import ganspacesynth
from ganspacesynth import describe
from ganspacesynth.errors import PCAError
from ganspacesynth.pca import PCA, compute_pca, load_pca, synthesize_specgrams

from conftest import REFERENCE_DIR, relative_error

PCA_PICKLE = REFERENCE_DIR / "pca_conv0.pickle"
# Four ipca batches of 2048 exercise its incremental updates. The estimators
# see the same samples (same seed), so where they differ it is the algorithm,
# not sampling noise; sklearn's SVDs make more samples slow here.
SAMPLES = 8192


@pytest.fixture(scope="module")
def original_pca():
    return load_pca(PCA_PICKLE)


@pytest.fixture(scope="module")
def cov_pca(reference_model):
    """An exact PCA of the small model's conv0, with latent directions."""
    return compute_pca(reference_model, n_samples=SAMPLES, n_components=8, estimator="cov", seed=0,
                       latent_samples=6000)


# --- the original GANSpaceSynth file ---------------------------------------------

def test_original_pickle_reproduces_the_reference_edits(reference_model, reference, original_pca):
    pca = original_pca
    assert (pca.layer, pca.layer_shape, pca.n_components, pca.model_id) == ("conv0", (2, 16, 32), 32, None)
    assert relative_error(pca.layer_values(reference["edits"]), reference["edit_layer"]) < 1e-6
    specgrams = synthesize_specgrams(reference_model, pca, reference["edits"])
    assert relative_error(specgrams, reference["edit_specgram"]) < 1e-4
    audio = reference_model.synthesize(pca, reference["edits"])
    assert audio.shape == (4, 64000)
    assert relative_error(audio, reference["edit_wave"]) < 1e-3
    one = reference_model.synthesize(pca, reference["edits"][2][:3])  # fewer coefficients: the rest are 0
    assert one.shape == (64000,)
    assert relative_error(one, reference["edit_wave"][2]) < 1e-3


class _RunsCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _Evaluates:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return builtins.eval, (self.code,)


def _original_dict():
    with open(PCA_PICKLE, "rb") as f:
        data = f.read()
    return pickle.loads(data)  # the project's own fixture, trusted here to build the attacks


@pytest.mark.parametrize("attack", ["os.system", "eval", "custom class", "extra key", "object array",
                                    "list", "int array", "structured array", "not a dict"])
def test_pickles_beyond_plain_arrays_are_refused_and_run_nothing(tmp_path, attack):
    marker = tmp_path / "marker"
    data = _original_dict()
    if attack == "os.system":
        data["comp"] = _RunsCommand(f"touch {marker}")
    elif attack == "eval":
        data["stdev"] = _Evaluates(f"open({str(marker)!r}, 'w').close()")
    elif attack == "custom class":
        data["layer"] = _RunsCommand("true")
    elif attack == "extra key":
        data["note"] = "hello"
    elif attack == "object array":
        data["stdev"] = np.array([1.0, "x"], dtype=object)
    elif attack == "list":
        data["stdev"] = [1.0] * 32
    elif attack == "int array":
        data["stdev"] = np.ones(32, dtype=np.int64)
    elif attack == "structured array":
        data["stdev"] = np.zeros(32, dtype=[("a", "f4"), ("b", "f4")])
    else:
        data = [data]
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(PCAError, match="refused|not a"):
        load_pca(path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_plain_pickles_of_every_protocol_are_read(tmp_path, protocol, original_pca):
    path = tmp_path / "pca.pickle"
    path.write_bytes(pickle.dumps(_original_dict(), protocol=protocol))
    pca = load_pca(path)
    np.testing.assert_array_equal(pca.components, original_pca.components)
    np.testing.assert_array_equal(pca.mean, original_pca.mean)


def test_garbage_files_are_refused(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a pca at all")
    with pytest.raises(PCAError, match="junk.npz"):
        load_pca(path)
    with pytest.raises(PCAError, match="no such"):
        load_pca(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", x=np.ones(3))
    with pytest.raises(PCAError, match="not a ganspacesynth PCA"):
        load_pca(tmp_path / "other.npz")


# --- computing ----------------------------------------------------------------------

def test_estimators_agree_on_the_top_components(reference_model, cov_pca):
    ref = cov_pca.components.reshape(cov_pca.n_components, -1)
    for estimator in ("ipca", "pca"):
        pca = compute_pca(reference_model, n_samples=SAMPLES, n_components=8, estimator=estimator, seed=0,
                          batch_size=2048, latent_samples=0)
        assert pca.estimator == estimator and pca.n_samples == SAMPLES
        assert pca.model_id == reference_model.identifier
        flat = pca.components.reshape(8, -1)
        np.testing.assert_allclose(np.linalg.norm(flat, axis=1), 1, atol=1e-5)
        cosines = np.abs(np.sum(flat[:5] * ref[:5], axis=1))
        assert cosines.min() > 0.99, (estimator, cosines)
        np.testing.assert_allclose(pca.stdev[:5], cov_pca.stdev[:5], rtol=0.01, err_msg=estimator)
        np.testing.assert_allclose(pca.mean, cov_pca.mean, atol=1e-4)


def test_components_are_sorted_signed_and_reproducible(reference_model, cov_pca):
    flat = cov_pca.components.reshape(cov_pca.n_components, -1)
    assert np.all(np.diff(cov_pca.stdev) <= 0)
    assert np.all(flat[np.arange(len(flat)), np.abs(flat).argmax(axis=1)] > 0)
    np.testing.assert_allclose(flat @ flat.T, np.eye(len(flat)), atol=1e-5)
    calls = []
    a = compute_pca(reference_model, n_samples=600, n_components=4, estimator="cov", seed=3, batch_size=64,
                    latent_samples=0, progress=lambda stage, done, total: calls.append((done, total)))
    b = compute_pca(reference_model, n_samples=600, n_components=4, estimator="cov", seed=3, batch_size=300,
                    latent_samples=0)
    np.testing.assert_allclose(a.components, b.components, atol=1e-5)
    assert calls[-1] == (600, 600) and len(calls) > 1


def test_cov_finds_known_directions_of_a_wide_layer():
    """Wider than 1024 values: cov takes the Lanczos path; a large mean must not cancel the variance."""
    from ganspacesynth.pca import CovarianceEstimator, _finish

    rng = np.random.default_rng(0)
    d, n = 1536, 2000
    basis = np.linalg.qr(rng.standard_normal((d, 6)))[0].T
    stdev = np.array([10.0, 8.0, 6.0, 4.0, 3.0, 2.0])
    X = (rng.standard_normal((n, 6)) * stdev) @ basis + 0.1 * rng.standard_normal((n, d)) + 100.0
    fit = CovarianceEstimator(4, d, n, 0)
    for part in np.array_split(X.astype(np.float32), 5):
        fit.partial_fit(part)
    components, found, ratio, mean = fit.result()
    components, found, ratio = _finish(components, found, ratio)
    assert np.abs(np.sum(components * basis[:4], axis=1)).min() > 0.99
    exact_values, exact_vectors = np.linalg.eigh(np.cov(X, rowvar=False))
    exact_vectors = exact_vectors[:, ::-1][:, :4].T
    assert np.abs(np.sum(components * exact_vectors, axis=1)).min() > 1 - 1e-6
    np.testing.assert_allclose(found, np.sqrt(exact_values[::-1][:4]), rtol=1e-5)
    np.testing.assert_allclose(ratio, exact_values[::-1][:4] / exact_values.sum(), rtol=1e-5)
    np.testing.assert_allclose(mean, X.mean(axis=0), atol=1e-4)


def test_ica_gives_unit_directions_sorted_by_stdev(reference_model):
    pca = compute_pca(reference_model, n_samples=1500, n_components=4, estimator="ica", seed=0,
                      latent_samples=0)
    flat = pca.components.reshape(4, -1)
    np.testing.assert_allclose(np.linalg.norm(flat, axis=1), 1, atol=1e-5)
    assert np.all(np.diff(pca.stdev) <= 0) and np.all(pca.stdev > 0)


def test_one_pitch_and_bad_arguments(reference_model):
    pca = compute_pca(reference_model, n_samples=200, n_components=4, estimator="pca", pitch=40,
                      latent_samples=0)
    assert pca.pitch == 40
    with pytest.raises(ValueError, match="estimator"):
        compute_pca(reference_model, estimator="svd")
    with pytest.raises(ValueError, match="layer"):
        compute_pca(reference_model, layer="conv9")
    with pytest.raises(ValueError, match="n_samples"):
        compute_pca(reference_model, n_samples=8, n_components=8)
    with pytest.raises(ValueError, match="pitch"):
        compute_pca(reference_model, n_samples=100, n_components=4, pitch=200)
    with pytest.raises(PCAError, match="ipca"):  # 65536 values: too big a covariance
        compute_pca(reference_model, layer="conv0_4", estimator="cov")


# --- the file format ------------------------------------------------------------------

def test_save_load_round_trip(tmp_path, reference_model, cov_pca):
    assert (ganspacesynth.compute_pca, ganspacesynth.load_pca, ganspacesynth.PCA) == (compute_pca, load_pca, PCA)
    path = cov_pca.save(tmp_path / "pca.npz")
    loaded = load_pca(path, model=reference_model)
    for name in ("components", "stdev", "explained_variance_ratio", "mean", "latent_directions",
                 "latent_stdev"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(cov_pca, name), err_msg=name)
    for name in ("layer", "layer_shape", "estimator", "n_samples", "model_id", "pitch", "seed",
                 "latent_samples", "n_components"):
        assert getattr(loaded, name) == getattr(cov_pca, name), name
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["metadata"]))
    assert meta["format"] == "ganspacesynth-pca" and meta["version"] == 1
    assert meta["layer_shape"] == [2, 16, 32] and meta["model_id"] == reference_model.identifier


def test_a_pca_of_another_model_or_layer_shape_is_refused(tmp_path, reference_model, cov_pca):
    from ganspacesynth.generator import Generator
    from ganspacesynth.model import Model

    other_model = Model(Generator(reference_model.config))  # same architecture, other weights
    path = cov_pca.save(tmp_path / "pca.npz")
    with pytest.raises(PCAError, match=f"computed on model {reference_model.identifier}"):
        load_pca(path, model=other_model)
    with pytest.raises(PCAError, match="computed on model"):
        other_model.synthesize(load_pca(path), [1.0])
    wrong = PCA("conv0", np.ones((1, 2, 16, 16)) / 16, [1.0], [0.1], np.zeros((2, 16, 16)), estimator="pca")
    with pytest.raises(PCAError, match=r"shape \(2, 16, 16\).*has shape \(2, 16, 32\)"):
        reference_model.synthesize(wrong, [1.0])


def test_coefficient_errors(reference_model, original_pca):
    with pytest.raises(ValueError, match="33 coefficients"):
        reference_model.synthesize(original_pca, np.ones(33))
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="NaN or infinite"):
            reference_model.synthesize(original_pca, [1.0, bad])
    with pytest.raises(ValueError, match="one vector"):
        original_pca.edit(np.ones((1, 1, 2)))
    with pytest.raises(ValueError, match="space"):
        reference_model.synthesize(original_pca, [1.0], space="w")
    with pytest.raises(ValueError, match="no effect"):
        reference_model.synthesize(original_pca, [1.0], pitch=40, space="layer")
    np.testing.assert_array_equal(original_pca.edit([1.0]), original_pca.edit([1.0] + [0.0] * 31))


# --- synthesis ----------------------------------------------------------------------------

def test_z_space_adds_the_edit_to_the_activation_of_z(reference_model, original_pca):
    pca, model = original_pca, reference_model
    z = model.random_z(2, seed=7)
    c = np.array([[1.5, -0.5, 0.25], [0.0, 2.0, -1.0]])
    manual = sum(c[:, i, None, None, None] * pca.stdev[i] * pca.components[i] for i in range(3))
    expected = model.specgrams_from_layer("conv0", model.layer_output("conv0", z, [40, 60]) + manual)
    out = synthesize_specgrams(model, pca, c, z=z, pitch=[40, 60])
    # to float rounding, amplified over 14 layers. Here: the edit made in float32 against the
    # one above in float64 (without oneDNN 8e-6 while block 1 was a padded conv, 1.1e-5 since it
    # is a matrix product). Below: without oneDNN that product sums in another order for one
    # clip than for a batch of two (6e-5, -84 dB; 0 with the padded conv, 0 with oneDNN).
    assert relative_error(out, expected) < 1e-4
    audio = model.synthesize(pca, c[0], z=z[0], pitch=40)
    assert audio.shape == (64000,)
    assert relative_error(audio, model.synthesize(pca, c, z=z, pitch=[40, 60])[0]) < 1e-4


def test_latent_directions_move_one_component_and_keep_pitch(reference_model, cov_pca, original_pca):
    model, pca = reference_model, cov_pca
    assert pca.latent_directions.shape == (8, 256)
    np.testing.assert_allclose(np.linalg.norm(pca.latent_directions, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(pca.latent_stdev, 1, atol=0.1)  # z is standard normal in every direction
    z = model.random_z(16, seed=11)
    before = model.layer_output("conv0", z, 48)
    after = model.layer_output("conv0", z + pca.latent_stdev[0] * pca.latent_directions[0], 48)
    change = (after - before).reshape(16, -1)
    cosines = change @ pca.components[0].reshape(-1) / np.linalg.norm(change, axis=1)
    # The rest of the change lies outside the top components (the spectrum is flat).
    assert cosines.min() > 0.6, cosines
    moved = pca.coordinates(after) - pca.coordinates(before)
    assert 0.5 < moved[:, 0].mean() < 1.5
    assert np.abs(moved[:, 1:]).max() < 0.2 * moved[:, 0].mean()

    c = [1.0, -0.5]
    expected = model.generate_specgrams(z[:1] + pca.latent_offset(c), 48)[0]
    out = synthesize_specgrams(model, pca, c, z=z[0], pitch=48, space="latent")
    assert relative_error(out, expected) < 1e-5
    low = synthesize_specgrams(model, pca, c, pitch=36, space="latent")
    high = synthesize_specgrams(model, pca, c, pitch=72, space="latent")
    assert relative_error(low, high) > 0.05  # the pitch label still steers
    with pytest.raises(PCAError, match="no latent directions"):
        model.synthesize(original_pca, c, space="latent")


# --- SeFa ----------------------------------------------------------------------------------

def _z_to_conv0_preactivation(model):
    """Block 1's conv0 (before its bias and nonlinearity) as a matrix from z, measured by running
    the TensorFlow conv on each basis vector of z placed where the generator places its input."""
    import tensorflow as tf

    c, conv = model.config, model.generator.convs[0]
    inputs = np.eye(c.latent_size, c.latent_size + c.num_pitches, dtype=np.float32)
    padded = np.zeros((c.latent_size, 2 * c.start_height - 1, 2 * c.start_width - 1, inputs.shape[1]),
                      np.float32)
    padded[:, c.start_height - 1, c.start_width - 1] = inputs
    out = tf.nn.conv2d(padded, conv.kernel, 1, "VALID").numpy()
    return out.reshape(c.latent_size, -1).astype(np.float64)


def test_sefa_equals_a_direct_eigendecomposition(reference_model, tmp_path):
    model = reference_model
    pca = compute_pca(model, estimator="sefa", n_components=6)
    A = _z_to_conv0_preactivation(model)
    A /= np.linalg.norm(A, axis=0, keepdims=True)  # genforce/sefa normalises each output's weights
    values, vectors = np.linalg.eigh(A @ A.T)
    values, vectors = values[::-1][:6], vectors[:, ::-1][:, :6].T
    np.testing.assert_allclose(pca.explained_variance_ratio, values / np.trace(A @ A.T), rtol=1e-5)
    assert np.abs(np.sum(pca.latent_directions * vectors, axis=1)) == pytest.approx(np.ones(6), abs=1e-5)
    np.testing.assert_allclose(pca.latent_stdev, 1.0)
    assert (pca.estimator, pca.n_samples, pca.layer_shape) == ("sefa", None, (2, 16, 32))
    assert np.linalg.norm(pca.components.reshape(6, -1), axis=1) == pytest.approx(np.ones(6), abs=1e-5)
    assert np.all(pca.stdev > 0)
    path = pca.save(tmp_path / "sefa.npz")
    again = load_pca(path, model=model)
    assert again.estimator == "sefa" and again.latent_directions.shape == (6, model.latent_size)
    audio = model.synthesize(again, [2.0, -1.0], z=model.random_z(1, seed=3)[0], pitch=40, space="latent")
    assert audio.shape == (64000,) and np.all(np.isfinite(audio))
    with pytest.raises(PCAError, match="reads z"):
        compute_pca(model, layer="conv1", estimator="sefa")
    with pytest.raises(ValueError, match="size of z"):
        compute_pca(model, estimator="sefa", n_components=model.latent_size + 1)


# --- names ---------------------------------------------------------------------------------

def test_names_are_saved_loaded_and_checked(tmp_path, cov_pca):
    pca = cov_pca
    named = PCA(pca.layer, pca.components[:2], pca.stdev[:2], pca.explained_variance_ratio[:2], pca.mean,
                estimator="named", model_id=pca.model_id, names=["brightness", "loudness"])
    again = load_pca(named.save(tmp_path / "named.npz"))
    assert again.names == ["brightness", "loudness"] and again.index("loudness") == 1
    assert list(again.named_coefficients({"loudness": 1.5})) == [0.0, 1.5]
    assert list(again.named_coefficients({"brightness": -1}, base=[0.5, 2.0])) == [-1.0, 2.0]
    assert again.label(0) == "brightness" and "names       brightness, loudness" in again.summary()
    with pytest.raises(PCAError, match="no component named 'pitch'.*brightness, loudness"):
        again.index("pitch")
    assert load_pca(pca.save(tmp_path / "plain.npz")).names is None  # a file without names
    with pytest.raises(PCAError, match="no named components"):
        load_pca(tmp_path / "plain.npz").index("brightness")
    for names, why in ((["a"], "1 names for 2"), (["a", "a"], "distinct"), (["a", "b c"], "without spaces"),
                       ("ab", "list of strings")):
        with pytest.raises(PCAError, match=why):
            PCA(pca.layer, pca.components[:2], pca.stdev[:2], pca.explained_variance_ratio[:2], pca.mean,
                estimator="named", names=names)


# --- directions per pitch ---------------------------------------------------------------

def _two_of(pca, first, pitch=None):
    """Components first and first + 1 of ``pca``, named brightness and loudness."""
    cut = slice(first, first + 2)
    return PCA(pca.layer, pca.components[cut], pca.stdev[cut], pca.explained_variance_ratio[cut], pca.mean,
               estimator="named", model_id=pca.model_id, names=["brightness", "loudness"], pitch=pitch,
               latent_directions=pca.latent_directions[cut], latent_stdev=pca.latent_stdev[cut])


def _sets_of(pca):
    """A pooled set (components 0-1) with sets of its own at pitches 40 (2-3) and 60 (4-5)."""
    return _two_of(pca, 0).with_pitch_sets({60: _two_of(pca, 4, 60), 40: _two_of(pca, 2, 40)})


def test_directions_per_pitch_play_at_their_pitch(reference_model, cov_pca):
    model, played = reference_model, _sets_of(cov_pca)
    assert list(played.pitch_sets) == [40, 60] and played.at_pitch(50) is played
    assert played.at_pitch(40.0) is played.pitch_sets[40] and played.at_pitch(None) is played
    c = np.array([[1.5, -0.5], [0.25, 2.0], [-1.0, 1.0]])
    pitches = [40, 50, 60]
    offsets = played.edit(c, pitches)
    for row, (pitch, first) in enumerate(zip(pitches, (2, 0, 4))):
        manual = sum(c[row, i] * cov_pca.stdev[first + i] * cov_pca.components[first + i] for i in range(2))
        np.testing.assert_allclose(offsets[row], manual, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(played.edit(c), played.edit(c, [50] * 3))  # no pitch: the pooled set
    np.testing.assert_array_equal(played.with_pitch_sets(None).edit(c, pitches), played.edit(c))
    np.testing.assert_array_equal(played.edit(c[0], 40), offsets[0])
    # z space plays each clip's pitch's set; layer space, which has no pitch, the pooled one
    z = model.random_z(3, seed=2)
    expected = model.specgrams_from_layer("conv0", model.layer_output("conv0", z, pitches) + offsets)
    np.testing.assert_allclose(synthesize_specgrams(model, played, c, z=z, pitch=pitches), expected, atol=1e-5)
    np.testing.assert_array_equal(synthesize_specgrams(model, played, c[0]),
                                  synthesize_specgrams(model, _two_of(cov_pca, 0), c[0]))
    latent = played.latent_offset(c, pitches)
    np.testing.assert_allclose(latent[0], played.pitch_sets[40].latent_offset(c[0]), rtol=1e-6)
    np.testing.assert_allclose(latent[1], played.latent_offset(c[1]), rtol=1e-6)
    out = synthesize_specgrams(model, played, c, z=z, pitch=pitches, space="latent")
    np.testing.assert_allclose(out, model.generate_specgrams(z + latent, pitches), atol=1e-5)
    # coordinates at a pitch invert that pitch's edit
    values = model.layer_output("conv0", z[:1], 60)[0] + offsets[2]
    moved = played.coordinates(values, 60) - played.coordinates(model.layer_output("conv0", z[:1], 60)[0], 60)
    np.testing.assert_allclose(moved, c[2], atol=1e-3)


def test_directions_per_pitch_are_saved_loaded_and_checked(tmp_path, reference_model, cov_pca):
    played = _sets_of(cov_pca)
    path = played.save(tmp_path / "per-pitch.npz")
    again = load_pca(path, model=reference_model)
    assert list(again.pitch_sets) == [40, 60] and again.names == ["brightness", "loudness"]
    for pitch in (40, 60):
        for name in ("components", "stdev", "explained_variance_ratio", "latent_directions", "latent_stdev"):
            np.testing.assert_array_equal(getattr(again.pitch_sets[pitch], name),
                                          getattr(played.pitch_sets[pitch], name), err_msg=name)
        assert again.pitch_sets[pitch].pitch == pitch and again.pitch_sets[pitch].names == again.names
    assert "own directions at 2 pitches (40, 60)" in again.summary()
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["metadata"]))
        arrays = {name: data[name] for name in data.files}
    assert meta["version"] == 2 and meta["pitch_sets"] == [40, 60] and arrays["pitch_components"].shape[:2] == (2, 2)
    # a file without sets stays version 1, which older versions read
    with np.load(played.pitch_sets[40].save(tmp_path / "plain.npz"), allow_pickle=False) as data:
        assert json.loads(str(data["metadata"]))["version"] == 1 and "pitch_components" not in data.files
    # sets that are not the same directions are refused, in memory and in files
    other = PCA(cov_pca.layer, cov_pca.components[:3], cov_pca.stdev[:3], cov_pca.explained_variance_ratio[:3],
                cov_pca.mean, estimator="named", names=["brightness", "loudness", "noisiness"])
    with pytest.raises(PCAError, match="not the same 2 components"):
        played.with_pitch_sets({40: other})
    with pytest.raises(PCAError, match="not a MIDI pitch"):
        played.with_pitch_sets({"low": played.pitch_sets[40]})
    with pytest.raises(PCAError, match="not a plain PCA"):
        played.with_pitch_sets({40: played})

    def rewritten(change, name):
        broken = dict(arrays)
        change(broken, dict(meta))
        target = tmp_path / name
        with open(target, "wb") as f:
            np.savez(f, **broken)
        return target

    def without_sets(broken, info):
        info.pop("pitch_sets")
        broken["metadata"] = np.array(json.dumps(info))

    def short(broken, info):
        broken["pitch_stdev"] = broken["pitch_stdev"][:1]

    def twice(broken, info):
        broken["metadata"] = np.array(json.dumps(dict(info, pitch_sets=[40, 40])))

    def newer(broken, info):
        broken["metadata"] = np.array(json.dumps(dict(info, version=3)))

    for change, why in ((without_sets, "no pitch_sets in its metadata"), (short, "1 sets for 2 pitch_sets"),
                        (twice, "lists a pitch twice"), (newer, "version 3.*upgrade")):
        with pytest.raises(PCAError, match=why):
            load_pca(rewritten(change, change.__name__ + ".npz"))


def test_a_bare_name_is_found_in_the_models_folder(tmp_path, reference_model):
    """``named`` names the file named.npz beside the model (how the default model ships its
    named directions); a file here comes first, and a missing one says where it looked."""
    import ganspacesynth
    from ganspacesynth.hallu import HalluSession
    from named_pca import write_named_pca

    from conftest import REFERENCE_DIR

    folder = tmp_path / "model"
    folder.mkdir()
    for part in ("experiment.json", "stage_00012"):
        (folder / part).symlink_to(REFERENCE_DIR / part)
    write_named_pca(folder / "named.npz")
    model = ganspacesynth.load_model(folder)
    assert load_pca("named", model=model).names[0] == "brightness"
    with pytest.raises(PCAError, match=r"^named: no such PCA file$"):
        load_pca("named")
    with pytest.raises(PCAError, match=r"missing: no such PCA file \(nor .*model/missing\.npz\)"):
        load_pca("missing", model=model)
    with pytest.raises(PCAError, match=r"no such PCA file$"):
        load_pca("named.npz", model=model)  # only a bare name is looked for there
    session = HalluSession(model=str(folder), pca="named", steps=[[1.0], [0.0]], base_dir=tmp_path)
    audio, points = session.render(model=model)
    assert len(points) == 3 and np.all(np.isfinite(audio))  # two steps and one between


# --- descriptors ------------------------------------------------------------------------

SR = 16000
T = np.arange(64000) / SR


@pytest.mark.parametrize("frequency", [55.0, 220.0, 1000.0])
def test_descriptors_of_a_sine(frequency):
    sine = 0.5 * np.sin(2 * np.pi * frequency * T)
    assert describe.spectral_centroid(sine, SR) == pytest.approx(frequency, rel=0.01)
    assert describe.spectral_flatness(sine, SR) < 1e-6
    assert describe.f0(sine, SR) == pytest.approx(frequency, rel=0.005)
    assert describe.rms_db(sine) == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.01)


def test_descriptors_of_noise_harmonics_and_silence():
    noise = 0.1 * np.random.default_rng(0).standard_normal(64000)
    assert describe.spectral_flatness(noise, SR) > 0.5
    assert describe.spectral_centroid(noise, SR) == pytest.approx(SR / 4, rel=0.02)
    assert np.isnan(describe.f0(noise, SR))
    saw = sum(np.sin(2 * np.pi * 110 * h * T) / h for h in range(1, 20)) * 0.3
    assert describe.f0(saw, SR) == pytest.approx(110, rel=0.005)
    assert describe.rms_db(np.ones(100)) == pytest.approx(0.0)
    silent = describe.descriptors(np.zeros(64000), SR)
    assert silent["loudness"] == -120 and np.isnan(silent["brightness"]) and np.isnan(silent["pitch"])
    both = describe.descriptors(np.stack([saw, noise]), SR)
    assert both["pitch"].shape == (2,) and np.isnan(both["pitch"][1])


def test_sweep_table_and_plot(tmp_path, reference_model, original_pca):
    result = describe.sweep(reference_model, original_pca, components=2, points=3)
    assert result["brightness"].shape == (2, 3) and list(result["coefficients"]) == [-2, 0, 2]
    text = describe.format_sweep(result)
    assert "component 1" in text and "centroid Hz" in text and "salience" in text
    moved = describe.format_most_moved(result).splitlines()
    assert len(moved) == 2 and moved[0].startswith("component 0 moves ")
    png = describe.plot_sweep(result, tmp_path / "sweep.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the command line ----------------------------------------------------------------------

def test_cli_pca_synth_describe(tmp_path, capsys):
    import soundfile

    from ganspacesynth.cli import main

    out = tmp_path / "pca.npz"
    assert main(["pca", str(REFERENCE_DIR), "-o", str(out), "--samples", "400", "--components", "4",
                 "--estimator", "cov", "--batch-size", "200", "--seed", "1", "--pitch", "40"]) == 0
    pca = load_pca(out)
    assert (pca.n_components, pca.n_samples, pca.pitch, pca.estimator) == (4, 400, 40, "cov")
    wav = tmp_path / "clip.wav"
    assert main(["synth", str(REFERENCE_DIR), str(out), "--coeffs=-1,0.5", "-o", str(wav),
                 "--z-seed", "2", "--pitch", "50", "--space", "latent"]) == 0
    audio, rate = soundfile.read(wav)
    assert rate == 16000 and audio.shape == (64000,)
    assert main(["synth", str(REFERENCE_DIR), str(out), "--coeffs", "1,2,3,4,5", "-o", str(wav)]) == 2
    assert "5 coefficients" in capsys.readouterr().err
    assert main(["synth", str(REFERENCE_DIR), str(out), "--coeffs", "1", "--space", "z", "-o", str(wav)]) == 2
    assert "give --z-seed" in capsys.readouterr().err
    assert main(["describe", str(REFERENCE_DIR), str(PCA_PICKLE), "-k", "1", "--points", "3",
                 "--plot", str(tmp_path / "d.png")]) == 0
    assert "component 0" in capsys.readouterr().out and (tmp_path / "d.png").exists()

"""Named directions, pitch salience and the disentanglement matrix, on the small reference model.

The reference model's weights are barely trained, so its descriptors hardly
depend linearly on conv0 (R^2 about 0.1): these tests check the arithmetic
of each step and that the pieces fit together, not how well the directions
separate the descriptors (that is measured on a trained model with
``ganspacesynth describe --matrix``).
"""

import numpy as np
import pytest

from ganspacesynth import describe
from ganspacesynth.directions import _fit, compute_directions, condition
from ganspacesynth.errors import PCAError
from ganspacesynth.pca import compute_pca, load_pca

from conftest import REFERENCE_DIR

SR = 16000
T = np.arange(64000) / SR


def test_pitch_salience_of_tones_noise_and_silence():
    saw = sum(np.sin(2 * np.pi * 110 * h * T) / h for h in range(1, 20)) * 0.3
    noise = 0.1 * np.random.default_rng(0).standard_normal(64000)
    assert describe.pitch_salience(0.5 * np.sin(2 * np.pi * 440 * T), SR) > 0.99
    assert describe.pitch_salience(saw, SR) > 0.99
    assert describe.pitch_salience(noise, SR) < 0.5
    mix = describe.pitch_salience(saw + 3 * noise, SR)
    assert describe.pitch_salience(noise, SR) < mix < 0.99  # between the two, where f0 gives up
    assert np.isnan(describe.pitch_salience(np.zeros(64000), SR))
    both = describe.descriptors(np.stack([saw, noise]), SR, ["pitch-salience", "pitch"])
    assert set(both) == {"pitch-salience", "pitch"} and both["pitch-salience"].shape == (2,)
    with pytest.raises(ValueError, match="unknown descriptor 'colour'.*brightness"):
        describe.descriptors(saw, SR, ["colour"])


def test_conditioning_makes_each_direction_orthogonal_to_the_others():
    raw = np.random.default_rng(1).standard_normal((4, 10))
    raw /= np.linalg.norm(raw, axis=1, keepdims=True)
    out = condition(raw)
    gram = out @ raw.T
    assert np.abs(gram - np.diag(np.diag(gram))).max() < 1e-12  # moves no other attribute
    assert np.all(np.diag(gram) > 0)  # and still moves its own up
    assert np.linalg.norm(out, axis=1) == pytest.approx(np.ones(4))
    # Two attributes, InterFaceGAN's formula: n1 - (n1 . n2) n2, normalised.
    n1, n2 = raw[0], raw[1]
    expected = n1 - (n1 @ n2) * n2
    assert condition(raw[:2])[0] == pytest.approx(expected / np.linalg.norm(expected))
    with pytest.raises(PCAError, match="combination of the others"):
        condition(np.stack([n1, n2, (n1 + n2) / np.linalg.norm(n1 + n2)]))


def test_the_fit_recovers_a_linear_effect():
    rng = np.random.default_rng(2)
    steps = rng.standard_normal((400, 6))
    truth = np.array([0.5, -1.0, 0.0, 2.0, 0.0, 0.1])
    weights, r2, used = _fit(steps, steps @ truth + 0.01 * rng.standard_normal(400), "loudness")
    assert weights == pytest.approx(truth / np.linalg.norm(truth), abs=1e-3)
    assert r2 > 0.99 and used == 400
    changes = steps @ truth
    changes[:390] = np.nan
    with pytest.raises(PCAError, match="only 10 of 400"):
        _fit(steps, changes, "pitch")


@pytest.fixture(scope="module")
def named(reference_model):
    basis = compute_pca(reference_model, n_samples=2048, n_components=6, estimator="cov", seed=0,
                        latent_samples=0)
    return compute_directions(reference_model, ["brightness", "loudness", "noisiness"], basis=basis,
                              n_samples=128, moves=7, length=8000, latent_samples=200, seed=0)


def test_named_directions_are_a_pca_file_with_names(tmp_path, reference_model, named):
    assert named.names == ["brightness", "loudness", "noisiness"] and named.estimator == "named"
    assert named.components.shape == (3, 2, 16, 32) and named.latent_directions.shape == (3, 256)
    assert set(named.fit) == set(named.names)
    assert all(0 <= f["r2"] <= 1 and f["samples"] == 16 * 7 for f in named.fit.values())
    unit = np.linalg.norm(named.components.reshape(3, -1), axis=1)
    assert unit == pytest.approx(np.ones(3), abs=1e-5) and np.all(named.stdev > 0)
    again = load_pca(named.save(tmp_path / "named.npz"), model=reference_model)
    assert again.names == named.names
    np.testing.assert_array_equal(again.components, named.components)
    # Every synthesis space takes it, by name as by number.
    knob = again.named_coefficients({"loudness": 1.5})
    clip = reference_model.synthesize(again, knob, z=reference_model.random_z(1, seed=4)[0], pitch=40)
    assert clip.shape == (64000,) and np.all(np.isfinite(clip))
    assert reference_model.synthesize(again, knob, pitch=40, space="latent").shape == (64000,)


def test_bad_direction_arguments(reference_model):
    with pytest.raises(ValueError, match="unknown descriptor"):
        compute_directions(reference_model, ["loudness", "sparkle"])
    with pytest.raises(ValueError, match="once"):
        compute_directions(reference_model, ["loudness", "loudness"])
    with pytest.raises(ValueError, match="at least 4 x the basis components"):
        compute_directions(reference_model, ["loudness"], n_samples=20, basis_components=8, basis_samples=256)


def test_matrix_marks_what_moves_one_thing(tmp_path, reference_model, named):
    matrix = describe.disentanglement(reference_model, named, components=3, points=5, space="z", starts=2,
                                      pitch=40, length=8000)
    assert matrix["rho"].shape == (3, 4) and matrix["rho_starts"].shape == (2, 3, 4)
    assert matrix["labels"] == named.names and list(matrix["own"]) == [0, 1, 2]  # own = its name
    assert np.all(np.abs(np.nan_to_num(matrix["rho"])) <= 1)
    expected = [(abs(r[o]) > 0.9) and all(abs(np.nan_to_num(v)) < 0.3 for j, v in enumerate(r) if j != o)
                for r, o in zip(matrix["rho"], matrix["own"])]
    assert list(matrix["moves_one"]) == expected
    text = describe.format_matrix(matrix)
    assert "brightness" in text.splitlines()[2] and "[" in text and "moves one thing" in text
    png = describe.plot_matrix(matrix, tmp_path / "matrix.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    layer = describe.disentanglement(reference_model, named, components=2, points=3, length=8000)
    assert layer["starts"] == 1 and layer["space"] == "layer"


def test_cli_directions_and_matrix(tmp_path, capsys):
    from ganspacesynth.cli import main

    out = tmp_path / "dirs.npz"
    assert main(["directions", str(REFERENCE_DIR), "-o", str(out), "--descriptors", "loudness,pitch-salience",
                 "--samples", "64", "--moves", "3", "--basis-components", "4", "--length", "0.5",
                 "--latent-samples", "0"]) == 0
    printed = capsys.readouterr().out
    assert "names       loudness, pitch-salience" in printed and "R^2" in printed
    assert load_pca(out).names == ["loudness", "pitch-salience"]
    png = tmp_path / "m.png"
    assert main(["describe", str(REFERENCE_DIR), str(out), "--matrix", "--points", "3", "--length", "0.5",
                 "--plot", str(png)]) == 0
    printed = capsys.readouterr().out
    assert "Spearman rho" in printed and "loudness" in printed and png.exists()
    assert main(["describe", str(REFERENCE_DIR), str(out), "--points", "3", "--length", "0.5"]) == 0
    assert "moves" in capsys.readouterr().out.splitlines()[-1]
    with pytest.raises(SystemExit):
        main(["directions", str(REFERENCE_DIR), "-o", str(out), "--descriptors", "sparkle"])
    assert "unknown descriptor 'sparkle'" in capsys.readouterr().err

"""Named directions, pitch salience and the disentanglement matrix, on the small reference model.

The reference model's weights are barely trained, so its descriptors answer
a move differently at every start: these tests check the arithmetic
of each step and that the pieces fit together, not how well the directions
separate the descriptors (that is measured on a trained model with
``ganspacesynth describe --matrix``).
"""

import numpy as np
import pytest

from ganspacesynth import describe
from ganspacesynth.directions import compute_directions, fit_directions
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


def mean_unit_slopes(slopes):
    """What the fit holds at 0 for the others: each start's slope scaled to unit length, then
    averaged over the starts."""
    return (slopes / np.linalg.norm(slopes, axis=2, keepdims=True)).mean(axis=0)


def test_the_fit_holds_the_others_still_on_average():
    """Each fitted direction leaves every other descriptor's mean unit slope at 0 and raises its own
    on average."""
    rng = np.random.default_rng(1)
    slopes = rng.standard_normal((300, 4, 10)) + rng.standard_normal((1, 4, 10))
    directions, report = fit_directions(slopes, ridge=0.3)
    assert np.linalg.norm(directions, axis=1) == pytest.approx(np.ones(4))
    along = mean_unit_slopes(slopes) @ directions.T  # [descriptor, direction]
    assert np.abs(along - np.diag(np.diag(along))).max() < 1e-10
    along = slopes.mean(axis=0) @ directions.T
    assert np.all(np.diag(along) > 0)
    assert [r["slope"] for r in report] == pytest.approx(np.diag(along))
    assert all(0 <= r["consistency"] <= 1 and 0 < r["cosine_to_raw"] <= 1 for r in report)


def test_every_start_counts_once_in_holding_the_others_still():
    """At a fifth of the starts the other descriptor is a hundred times as sensitive, the other
    way: a direction that holds its plain mean slope at 0 still raises it at four starts in
    five; the fit raises it at about half."""
    rng = np.random.default_rng(5)
    n = 400
    slopes = np.zeros((n, 2, 3))
    slopes[:, 0] = 1.0 + 0.1 * rng.standard_normal((n, 3))
    sensitive = rng.random(n) < 0.2
    slopes[:, 1] = (np.where(sensitive[:, None], [-10.0, 5.0, 0.0], [0.1, 0.01, 0.0])
                    + 0.02 * rng.standard_normal((n, 3)))
    directions, _ = fit_directions(slopes, ridge=0.03)
    assert 0.4 < np.mean(slopes[:, 1] @ directions[0] > 0) < 0.6
    own, other = slopes.mean(axis=0)
    plain = own - (own @ other) / (other @ other) * other  # InterFaceGAN's conditioning
    assert np.mean(slopes[:, 1] @ plain > 0) > 0.75


def test_a_large_ridge_gives_interfacegans_conditioning():
    """With the spread swamped by the ridge, the fit is InterFaceGAN's conditioned direction, with
    every start counted once for the others: the own mean slope minus its projection on the
    others' mean unit slopes (for two: n1 - (n1 . n2) n2)."""
    rng = np.random.default_rng(2)
    slopes = rng.standard_normal((200, 2, 6)) + 3 * rng.standard_normal((1, 2, 6))
    directions, _ = fit_directions(slopes, ridge=1e9)
    n1, n2 = slopes.mean(axis=0)[0], mean_unit_slopes(slopes)[1]
    n1, n2 = n1 / np.linalg.norm(n1), n2 / np.linalg.norm(n2)
    expected = n1 - (n1 @ n2) * n2
    assert directions[0] == pytest.approx(expected / np.linalg.norm(expected), abs=1e-6)


def test_without_a_ridge_the_fit_prefers_a_consistent_direction():
    """Axis 0 raises the descriptor most on average but at random starts lowers it; axis 1 raises
    it less but always: trusting the spread (ridge 0) picks axis 1, InterFaceGAN's direction
    axis 0."""
    rng = np.random.default_rng(3)
    n = 400
    slopes = np.zeros((n, 2, 3))
    slopes[:, 0, 0] = 1.0 + 3.0 * rng.standard_normal(n)  # own: large on average, erratic
    slopes[:, 0, 1] = 0.5 + 0.01 * rng.standard_normal(n)  # own: smaller, steady
    slopes[:, 1, 2] = 1.0 + 0.1 * rng.standard_normal(n)   # the other descriptor lives on axis 2
    steady, report = fit_directions(slopes, ridge=0.0)
    assert abs(steady[0, 1]) > 0.99 and report[0]["consistency"] == 1.0
    average, report = fit_directions(slopes, ridge=1e9)
    assert abs(average[0, 0]) > 0.85 and report[0]["consistency"] < 0.8


def test_a_descriptor_the_others_explain_cannot_be_fitted():
    rng = np.random.default_rng(4)
    base = rng.standard_normal((2, 5))
    slopes = np.repeat(np.stack([base[0], base[1], base[0] + base[1]])[None], 10, axis=0)
    slopes = slopes + 1e-9 * rng.standard_normal(slopes.shape)
    with pytest.raises(PCAError, match="combination of the others"):
        fit_directions(slopes)


@pytest.fixture(scope="module")
def named(reference_model):
    basis = compute_pca(reference_model, n_samples=2048, n_components=6, estimator="cov", seed=0,
                        latent_samples=0)
    return compute_directions(reference_model, ["brightness", "loudness", "noisiness"], basis=basis, starts=8,
                              length=8000, latent_samples=200, seed=0)


def test_named_directions_are_a_pca_file_with_names(tmp_path, reference_model, named):
    assert named.names == ["brightness", "loudness", "noisiness"] and named.estimator == "named"
    assert named.components.shape == (3, 2, 16, 32) and named.latent_directions.shape == (3, 256)
    assert set(named.fit) == set(named.names)
    assert all(0 <= f["consistency"] <= 1 and 6 <= f["starts"] <= 8 and f["slope"] > 0
               for f in named.fit.values())
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
    with pytest.raises(ValueError, match=r"starts \(3\) must be at least twice the descriptors \(2\)"):
        compute_directions(reference_model, ["loudness", "noisiness"], starts=3, basis_components=4,
                           basis_samples=256)
    with pytest.raises(ValueError, match="step must be positive"):
        compute_directions(reference_model, ["loudness"], step=0, basis_components=4, basis_samples=256)


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
    assert matrix["pitches"] == [40, 40] and "at pitch 40" in text.splitlines()[0]
    layer = describe.disentanglement(reference_model, named, components=2, points=3, length=8000)
    assert layer["starts"] == 1 and layer["space"] == "layer" and layer["pitches"] == [None]
    # without a pitch, each start is at a pitch of the model's, drawn with the seed
    anywhere = describe.disentanglement(reference_model, named, components=1, points=3, space="z", starts=3,
                                        length=8000, seed=5)
    assert set(anywhere["pitches"]) <= set(reference_model.pitches) and len(anywhere["pitches"]) == 3


def test_directions_fitted_pitch_by_pitch(tmp_path, reference_model):
    """per_pitch: a pooled set plus, at each pitch, what a fit at that pitch alone gives; z space
    and the matrix sweep each start along its own pitch's set, layer space the pooled one."""
    model = reference_model
    basis = compute_pca(model, n_samples=2048, n_components=6, estimator="cov", seed=0, latent_samples=0)
    fit = dict(basis=basis, starts=6, length=8000, seed=0)
    played = compute_directions(model, ["brightness", "loudness"], pitch=[40, 60], per_pitch=True, pitch_starts=4,
                                latent_samples=100, **fit)
    pooled = compute_directions(model, ["brightness", "loudness"], pitch=[40, 60], latent_samples=100, **fit)
    np.testing.assert_array_equal(played.components, pooled.components)
    assert played.pitch_sets is not None and list(played.pitch_sets) == [40, 60]
    for pitch, directions in played.pitch_sets.items():
        alone = compute_directions(model, ["brightness", "loudness"], pitch=pitch, latent_samples=0,
                                   **dict(fit, starts=4))
        np.testing.assert_array_equal(directions.components, alone.components)
        np.testing.assert_array_equal(directions.stdev, alone.stdev)
        assert directions.pitch == pitch and directions.latent_directions.shape == (2, 256)
        assert directions.fit["loudness"]["starts"] <= 4
    again = load_pca(played.save(tmp_path / "per-pitch.npz"), model=model)
    np.testing.assert_array_equal(again.pitch_sets[60].components, played.pitch_sets[60].components)

    matrix = describe.disentanglement(model, again, components=2, points=3, space="z", starts=3, pitch=60,
                                      length=8000, seed=5)
    at_60 = describe.disentanglement(model, again.pitch_sets[60], components=2, points=3, space="z", starts=3,
                                     pitch=60, length=8000, seed=5)
    np.testing.assert_array_equal(matrix["rho_starts"], at_60["rho_starts"])
    assert matrix["per_pitch"] and not at_60["per_pitch"]
    assert "at pitch 60 (each along its pitch's own set)" in describe.format_matrix(matrix).splitlines()[0]
    layer = describe.disentanglement(model, again, components=2, points=3, length=8000)
    np.testing.assert_array_equal(layer["rho_starts"], describe.disentanglement(
        model, pooled, components=2, points=3, length=8000)["rho_starts"])
    with pytest.raises(ValueError, match=r"pitch_starts \(3\) must be at least twice"):
        compute_directions(model, ["brightness", "loudness"], per_pitch=True, pitch_starts=3, **fit)


def test_the_default_model_ships_named_directions(tmp_path):
    """named.npz beside the default model: the four descriptors, a set at each of its pitches,
    latent directions for each, made for this model (load_pca checks the identifier); the
    command line finds it by its bare name and plays the set of the clip's pitch."""
    import soundfile

    import ganspacesynth
    from ganspacesynth.cli import main

    model = ganspacesynth.load_model("default")
    named = load_pca("named", model=model)
    assert named.names == ["brightness", "loudness", "noisiness", "pitch-salience"]
    assert named.estimator == "named" and named.latent_directions is not None
    assert list(named.pitch_sets) == list(model.pitches)
    assert all(s.latent_directions is not None and s.names == named.names for s in named.pitch_sets.values())

    wav = tmp_path / "brighter.wav"
    assert main(["synth", "default", "named", "--z-seed", "0", "--pitch", "64", "--coeffs", "1.5",
                 "-o", str(wav)]) == 0
    played, _ = soundfile.read(str(wav), dtype="float32")
    z = model.random_z(1, seed=0)[0]
    own = model.synthesize(named.at_pitch(64), [1.5], z=z, pitch=64, space="z")
    np.testing.assert_allclose(played, own, atol=1e-4 * np.abs(own).max())


def test_cli_directions_and_matrix(tmp_path, capsys):
    from ganspacesynth.cli import main

    out = tmp_path / "dirs.npz"
    assert main(["directions", str(REFERENCE_DIR), "-o", str(out), "--descriptors", "loudness,pitch-salience",
                 "--starts", "4", "--basis-components", "4", "--length", "0.5",
                 "--latent-samples", "0"]) == 0
    printed = capsys.readouterr().out
    assert "names       loudness, pitch-salience" in printed and "starts; cos" in printed
    assert load_pca(out).names == ["loudness", "pitch-salience"]
    per_pitch = tmp_path / "per-pitch.npz"
    assert main(["directions", str(REFERENCE_DIR), "-o", str(per_pitch), "--descriptors", "loudness,noisiness",
                 "--starts", "4", "--basis-components", "4", "--length", "0.25", "--latent-samples", "0",
                 "--per-pitch", "--pitch-starts", "4", "--pitch", "40,60"]) == 0
    printed = capsys.readouterr().out
    assert "own directions at 2 pitches (40, 60)" in printed and "at pitch 60" in printed
    assert list(load_pca(per_pitch).pitch_sets) == [40, 60]
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

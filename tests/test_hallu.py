"""Hallu compositions: points, envelope, stitching, sessions, the CLI."""

import json

import numpy as np
import pytest
import soundfile

from ganspacesynth.errors import GanspacesynthError
from ganspacesynth.hallu import (HalluSession, HalluSettings, envelope, hallucinate,
                                 interpolate_steps, stitch)

from conftest import REFERENCE_DIR

SR = 16000
PCA_PICKLE = REFERENCE_DIR / "pca_conv0.pickle"


# --- points ---------------------------------------------------------------

@pytest.mark.parametrize("n, m", [(1, 0), (1, 5), (2, 0), (2, 1), (3, 2), (4, 8)])
def test_point_count_and_order(n, m):
    steps = np.arange(n * 3, dtype=float).reshape(n, 3) ** 1.5
    points = interpolate_steps(steps, m)
    assert len(points) == n + (n - 1) * m
    # Every step appears, in order, m + 1 points apart.
    np.testing.assert_allclose(points[::m + 1], steps, rtol=1e-6)
    for i in range(n - 1):
        segment = points[i * (m + 1):(i + 1) * (m + 1) + 1]
        expected = steps[i] + (steps[i + 1] - steps[i]) * np.linspace(0, 1, m + 2)[:, None]
        np.testing.assert_allclose(segment, expected, rtol=1e-6)


def test_shorter_steps_are_padded_with_zeros():
    points = interpolate_steps([[1.0], [0.0, 2.0]], 1)
    np.testing.assert_allclose(points, [[1, 0], [0.5, 1], [0, 2]])


@pytest.mark.parametrize("steps", [[], [[np.nan, 1]], [[]]])
def test_bad_steps(steps):
    with pytest.raises(GanspacesynthError):
        interpolate_steps(steps, 1)


# --- envelope and stitching ------------------------------------------------

def test_envelope_shape():
    gain = envelope(64000, SR, start_trim=0.25, attack=0.5, sustain=1.0, release=0.25)
    trim, a, s, r = 4000, 8000, 16000, 4000
    assert np.all(gain[:trim] == 0)
    ramp = gain[trim:trim + a]
    assert ramp[0] == 0 and np.allclose(np.diff(ramp), 1 / a, rtol=0, atol=1e-6)
    assert np.all(gain[trim + a:trim + a + s] == 1)
    fall = gain[trim + a + s:trim + a + s + r]
    assert np.allclose(np.diff(fall), -1 / r, rtol=0, atol=1e-6) and fall[-1] == 0
    assert np.all(gain[trim + a + s + r:] == 0)


def _clips(n, length=64000, seed=0):
    return np.random.default_rng(seed).uniform(-0.3, 0.3, (n, length)).astype(np.float32)


@pytest.mark.parametrize("points, spacing", [(1, 0.2), (5, 0.2), (28, 0.37), (3, 2.5)])
def test_output_length(points, spacing):
    settings = HalluSettings(spacing=spacing, start_trim=0.1, attack=0.2, sustain=0.3, release=0.4)
    mix = stitch(_clips(points), SR, settings)
    note = round(0.2 * SR) + round(0.3 * SR) + round(0.4 * SR)
    assert len(mix) == round(spacing * (points - 1) * SR) + note


def test_notes_are_normalised_by_absolute_peak_and_mix_to_peak():
    # Notes far apart do not overlap: each ends at the same level. The
    # second note's peak is negative, which max()-normalisation gets wrong.
    clips = _clips(2) * np.array([[0.1], [1.0]], np.float32)
    clips[1, 10000] = -5.0
    settings = HalluSettings(spacing=2.0, attack=0.0, sustain=1.0, release=0.0, peak=0.7)
    mix = stitch(clips, SR, settings)
    first, second = mix[:16000], mix[32000:48000]
    assert np.isclose(np.abs(mix).max(), 0.7)
    assert np.isclose(np.abs(first).max(), 0.7, rtol=1e-5)
    assert np.isclose(np.abs(second).max(), 0.7, rtol=1e-5)
    assert np.isclose(second.min(), -0.7, rtol=1e-5)


@pytest.mark.parametrize("change, message", [
    ({"start_trim": 1.0, "attack": 1.0, "sustain": 1.0, "release": 1.5}, "does not fit in a 4 s clip"),
    ({"attack": -0.1}, "attack must be a finite number >= 0"),
    ({"spacing": 0.0}, "spacing must be more than 0"),
    ({"interp_steps": -1}, "interp_steps must be a whole number"),
    ({"attack": 0.0, "sustain": 0.0, "release": 0.0}, "notes would be empty"),
])
def test_bad_settings(change, message):
    settings = HalluSettings(**change)
    with pytest.raises(GanspacesynthError, match=message):
        settings.validate(4.0)


# --- with the real model ------------------------------------------------------

@pytest.fixture(scope="module")
def reference_pca():
    from ganspacesynth import load_pca

    return load_pca(PCA_PICKLE)


STEPS = [[1.0, 0.0, 0.5], [-1.0, 1.0], [0.0, -2.0, 0.0, 1.0]]


def test_hallucinate_equals_point_by_point_synthesis(reference_model, reference_pca):
    audio, points = hallucinate(reference_model, reference_pca, STEPS, interp_steps=2, spacing=0.3,
                                start_trim=0.1, attack=0.2, sustain=0.5, release=0.3, batch_size=3)
    assert len(points) == 3 + 2 * 2
    clips = np.stack([reference_model.synthesize(reference_pca, p) for p in points])
    expected = stitch(clips, SR, HalluSettings(2, 0.3, 0.1, 0.2, 0.5, 0.3))
    assert audio.dtype == np.float32
    np.testing.assert_allclose(audio, expected, atol=2e-5)


def test_hallucinate_generates_only_what_the_notes_keep(reference_model, reference_pca, monkeypatch):
    asked = []
    original = reference_model.specgrams_from_layer

    def recording(name, values, frames=None):
        asked.append(frames)
        return original(name, values, frames)

    monkeypatch.setattr(reference_model, "specgrams_from_layer", recording)
    hallucinate(reference_model, reference_pca, STEPS[:2], start_trim=0.25, attack=0.5, sustain=0.5,
                release=0.25, batch_size=8)
    # 1.5 s from the start of each clip: 24000 samples, the first 53 of 128 frames.
    assert asked == [53]


def test_modes_and_progress(reference_model, reference_pca):
    seen = []
    layer, _ = hallucinate(reference_model, reference_pca, STEPS[:2], interp_steps=1, batch_size=2,
                           progress=seen.append)
    assert seen == [2 / 3, 1.0]
    z_mode, _ = hallucinate(reference_model, reference_pca, STEPS[:2], mode="z", pitch=40, seed=1)
    z_other, _ = hallucinate(reference_model, reference_pca, STEPS[:2], mode="z", pitch=40, seed=2)
    assert layer.shape == z_mode.shape
    assert not np.allclose(z_mode, z_other), "in z mode the seed's z must count"
    with pytest.raises(GanspacesynthError, match="unknown mode"):
        hallucinate(reference_model, reference_pca, STEPS, mode="w")


def test_pitch_per_step_plays_each_steps_points_at_its_pitch(reference_model, reference_pca):
    pitches = [36, 48, 60]
    audio, points = hallucinate(reference_model, reference_pca, STEPS, interp_steps=1, spacing=0.3,
                                attack=0.2, sustain=0.5, release=0.3, mode="z", pitch=pitches, seed=4)
    # Points: step 0, halfway, step 1, halfway, step 2 -> 36, 36, 48, 48, 60.
    z = reference_model.random_z(1, seed=4)[0]
    clips = np.stack([reference_model.synthesize(reference_pca, p, z=z, pitch=q, space="z")
                      for p, q in zip(points, [36, 36, 48, 48, 60])])
    expected = stitch(clips, SR, HalluSettings(1, 0.3, 0.0, 0.2, 0.5, 0.3))
    np.testing.assert_allclose(audio, expected, atol=2e-5)
    with pytest.raises(GanspacesynthError, match="one pitch per step"):
        hallucinate(reference_model, reference_pca, STEPS, mode="z", pitch=[36, 48])
    with pytest.raises(GanspacesynthError, match="z or latent mode"):
        hallucinate(reference_model, reference_pca, STEPS, pitch=pitches)


def test_session_round_trip_renders_identical_audio(tmp_path, reference_model, reference_pca):
    session = HalluSession(model=str(REFERENCE_DIR), pca=str(PCA_PICKLE), steps=STEPS,
                           settings=HalluSettings(interp_steps=1, spacing=0.25), mode="z", pitch=50, seed=3)
    path = session.save(tmp_path / "piece.json")
    loaded = HalluSession.load(path)
    assert loaded == session
    first, _ = session.render(model=reference_model, pca=reference_pca)
    again, _ = loaded.render()
    np.testing.assert_array_equal(first, again)


def test_session_paths_are_relative_to_the_session_file(tmp_path):
    path = tmp_path / "sub" / "s.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"format": "ganspacesynth-hallu", "version": 1, "model": "m",
                                "pca": "p.npz", "steps": [[1]]}))
    session = HalluSession.load(path)
    assert session.resolve(session.pca) == str(path.parent.resolve() / "p.npz")
    assert session.resolve("default") == "default"


def test_bad_session_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("{}")
    with pytest.raises(GanspacesynthError, match="not a Hallu session"):
        HalluSession.load(path)


def test_cli_hallu_resampled_16_bit_with_plot(tmp_path):
    from ganspacesynth.cli import main

    out, png, saved = tmp_path / "h.wav", tmp_path / "h.png", tmp_path / "h.json"
    code = main(["hallu", "--model", str(REFERENCE_DIR), "--pca", str(PCA_PICKLE),
                 "--step", "1,0", "--step", "-1,1", "--interp", "2", "--spacing", "0.5",
                 "--attack", "0.1", "--sustain", "0.2", "--release", "0.1",
                 "--rate", "44100", "--bits", "16", "--plot", str(png), "--save-session", str(saved),
                 "-o", str(out)])
    assert code == 0
    info = soundfile.info(str(out))
    assert info.samplerate == 44100 and info.subtype == "PCM_16"
    seconds = 0.5 * 3 + 0.4
    assert abs(info.frames - seconds * 44100) <= 2
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The saved session renders the same composition again.
    again = tmp_path / "again.wav"
    assert main(["hallu", str(saved), "--bits", "float", "-o", str(again)]) == 0
    assert soundfile.info(str(again)).frames == round(seconds * 16000)


def test_spectrogram_png_of_a_clip_with_digital_silence_warns_nothing(tmp_path):
    """A rest of exact zeros (a Hallu composition's, a 16-bit file's) made matplotlib warn
    "divide by zero" from log10 in every `--plot`; the picture floors its quiet end instead.
    Also a clip of silence alone, and one shorter than an FFT frame."""
    import warnings

    from ganspacesynth.plot import save_spectrogram

    rate = 16000
    tone = np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
    clips = {"rest": np.concatenate([tone, np.zeros(rate)]), "silence": np.zeros(rate), "short": tone[:300]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name, clip in clips.items():
            png = save_spectrogram(tmp_path / f"{name}.png", clip.astype(np.float32), rate)
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_cli_hallu_needs_steps(tmp_path, capsys):
    from ganspacesynth.cli import main

    assert main(["hallu", "--model", str(REFERENCE_DIR), "-o", str(tmp_path / "x.wav")]) == 2
    assert "--pca, --step" in capsys.readouterr().err


def test_demo_renders_the_shipped_session_on_the_default_model(tmp_path, capsys):
    from ganspacesynth import load_model, load_pca
    from ganspacesynth.cli import main
    from ganspacesynth.paths import models_dir

    model, pca = load_model("default"), load_pca("default")
    assert pca.model_id == model.identifier
    out = tmp_path / "demo.wav"
    assert main(["demo", "-o", str(out)]) == 0
    audio, rate = soundfile.read(out, dtype="float32")
    assert rate == model.sample_rate
    # 7 steps, 3 points between each: 25 notes 0.25 s apart, each 1.15 s long,
    # a C major arpeggio up and down (z mode, a pitch per step) along the first
    # three components
    session = HalluSession.load(models_dir() / "default" / "demo_session.json")
    assert session.mode == "z" and session.pitch == [60, 64, 67, 72, 67, 64, 60]
    assert len(audio) == round((0.25 * 24 + 1.15) * rate)
    assert 0.85 < np.abs(audio).max() <= 0.9 + 1e-3
    assert (tmp_path / "demo.png").read_bytes()[:4] == b"\x89PNG"
    assert "demo written:" in capsys.readouterr().out

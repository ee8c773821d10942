"""evaluate: pYIN pitch figures, NDB and timbre on clips whose answers are known, and the command."""

import json
import subprocess
import sys

import numpy as np
import pytest

from ganspacesynth import evaluate as E

RATE = 16000
PITCHES = [57, 60, 64]


def tone(midi, seconds=4.0, harmonics=(1, 2, 3)):
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    return (0.3 * sum(np.sin(2 * np.pi * f0 * h * t) / h for h in harmonics)).astype(np.float32)


def noise(count, seed=0, seconds=4.0):
    return (0.1 * np.random.default_rng(seed).standard_normal((count, int(seconds * RATE)))).astype(np.float32)


def test_pyin_hears_sines_at_their_pitch_and_no_pitch_in_noise():
    midi = [50, 57, 60, 64, 71]
    clips = np.stack([tone(m, seconds=1.0) for m in midi])
    voiced, cents = E.track_pitches(clips, midi, RATE, workers=1)
    assert voiced.all()
    assert np.max(np.abs(cents)) < 10, cents
    # A sine a semitone sharp is 100 cents off its label.
    voiced, cents = E.track_pitches(tone(61, seconds=1.0)[None], [60], RATE, workers=1)
    assert voiced[0] and abs(cents[0] - 100) < 10
    voiced, cents = E.track_pitches(noise(3, seconds=1.0), [60, 60, 60], RATE, workers=2)
    assert not voiced.any() and np.isnan(cents).all()
    summary = E.pitch_summary(voiced, cents)
    assert summary["voiced_share"] == 0 and np.isnan(summary["median_abs_cents"])
    assert not E.passes(summary)


def test_silence_has_no_pitch_and_bad_shapes_are_refused():
    voiced, cents = E.track_pitches(np.zeros((1, RATE), np.float32), [60], RATE, workers=1)
    assert not voiced[0] and np.isnan(cents[0])
    with pytest.raises(ValueError, match="n pitches"):
        E.track_pitches(np.zeros((2, RATE), np.float32), [60], RATE)


def test_ndb_of_a_set_against_itself_is_zero_and_against_noise_is_not():
    rng = np.random.default_rng(1)
    clips = np.stack([tone(m, seconds=1.0) * rng.uniform(0.3, 1.0) for m in rng.integers(50, 75, 40)])
    features = E.log_mel_features(clips, RATE)
    assert features.shape[0] == 40 and np.isfinite(features).all()
    same = E.ndb(features, features, bins=5)
    assert same["different"] == 0 and same["bins"] == 5
    other = E.ndb(features, E.log_mel_features(noise(40, seconds=1.0), RATE), bins=5)
    assert other["different"] >= 1
    with pytest.raises(ValueError, match="at least 5 reference clips"):
        E.ndb(features[:3], features, bins=5)


def test_high_energy_share_and_envelope():
    low, high = tone(60, seconds=1.0, harmonics=(1,)), np.sin(2 * np.pi * 7500 * np.arange(RATE) / RATE)
    shares = E.high_energy_share(np.stack([low, high]), RATE)
    assert shares[0] < 1e-4 and shares[1] > 0.999
    assert 0.11 < E.high_energy_share(noise(1), RATE)[0] < 0.14  # white: 1 kHz of 8
    ramp = np.concatenate([np.full(RATE, 1.0), np.full(2 * RATE, 0.5), np.full(RATE, 0.25)])
    np.testing.assert_allclose(E.envelope(ramp[None], RATE)[0], [1.0, 0.5, 0.25])
    summary = E.timbre_summary(np.stack([ramp, ramp]), RATE)
    assert summary["first_to_middle"]["median"] == pytest.approx(2.0)
    assert summary["last_to_middle"]["median"] == pytest.approx(0.5)


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """A tiny model exported without training, on a dataset of tones (test_train's)."""
    from ganspacesynth import train as T
    from test_train import TINY, write_dataset

    root = tmp_path_factory.mktemp("evaluate")
    dataset = write_dataset(root / "dataset", pitches=PITCHES, per_pitch=4)
    path, _ = T.train(dataset, root / "run", overrides=TINY, steps=0, progress_bar=False)
    return path, dataset


def test_evaluate_compares_generated_with_held_out_real_clips(untrained, tmp_path):
    model, dataset = untrained
    result = E.evaluate(model, dataset, clips_per_pitch=2, seed=3, ndb_bins=4, plot=tmp_path / "grid.png",
                        workers=1)
    assert sorted(result.pitch) == PITCHES
    for midi in PITCHES:
        real = result.pitch[midi]["real"]
        # The real clips are tones at their label: the ceiling is perfect.
        assert real["clips"] == 2 and real["voiced_share"] == 1.0 and abs(real["median_cents"]) < 10
        assert result.pitch[midi]["generated"]["clips"] == 2
    assert result.passing_labels("real") == PITCHES
    assert result.ndb["real"]["bins"] == 4 and 0 <= result.ndb["generated"]["different"] <= 4
    assert result.timbre["real"]["high_energy_share"]["median"] < 0.01
    assert (tmp_path / "grid.png").stat().st_size > 5000
    table = result.format()
    assert "real 3/3" in table and "NDB" in table and "energy above 7 kHz" in table
    data = result.to_json()
    json.dumps(data)
    assert data["passing_labels"]["real"] == PITCHES and set(data["pitch"]) == {"57", "60", "64"}
    # The same seed gives the same draws.
    again = E.evaluate(model, dataset, clips_per_pitch=2, seed=3, ndb_bins=4, workers=1)
    assert again.timbre == result.timbre and again.pitch == result.pitch


def test_cli_evaluate_json_and_errors(untrained, tmp_path):
    from test_train import run_env

    model, dataset = untrained
    command = [sys.executable, "-m", "ganspacesynth", "evaluate", str(model), str(dataset),
               "--clips-per-pitch", "1", "--ndb-bins", "3", "--plot", str(tmp_path / "e.png"), "--json"]
    result = subprocess.run(command, capture_output=True, text=True, env=run_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(result.stdout)
    assert data["clips_per_pitch"] == 1 and data["ndb"]["generated"]["bins"] == 3
    assert (tmp_path / "e.png").is_file()
    bad = subprocess.run(command[:6] + ["--clips-per-pitch", "0"], capture_output=True, text=True,
                         env=run_env(), timeout=600)
    assert bad.returncode != 0 and "--clips-per-pitch must be at least 1" in bad.stderr
    missing = subprocess.run(command[:5] + [str(tmp_path / "nowhere")], capture_output=True, text=True,
                             env=run_env(), timeout=600)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr

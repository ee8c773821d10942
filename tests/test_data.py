"""``ganspacesynth prepare`` and the dataset readers, on real audio files written here."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from ganspacesynth import cli
from ganspacesynth.data import (CLIP_SAMPLES, SAMPLE_RATE, NoClipsError, dataset_pitch_counts,
                                dataset_pitches, iter_batches, load_dataset, pitch_from_name,
                                prepare_dataset)
from ganspacesynth.errors import GanspacesynthError

ENGINE_DIR = Path(__file__).resolve().parent.parent / "engine"


def tone(seconds, rate, freq=220.0, amp=0.5, decay=None, channels=1, noise=0.0, seed=0):
    t = np.arange(round(seconds * rate)) / rate
    wave = amp * np.sin(2 * np.pi * freq * t)
    if decay:
        wave *= np.exp(-t / decay)
    rng = np.random.default_rng(seed)
    out = np.stack([wave * (1 - 0.2 * c) + noise * rng.standard_normal(len(t))
                    for c in range(channels)], axis=1)
    return out if channels > 1 else out[:, 0]


@pytest.fixture
def recordings(tmp_path):
    """A musician's folder: a long stereo FLAC, a short WAV with a pitch suffix, junk."""
    root = tmp_path / "recordings"
    (root / "cello").mkdir(parents=True)
    # 10.5 s at 44.1 kHz: the decay stays well above -60 dB to the end, so no clip is silent.
    soundfile.write(root / "long_take.flac", tone(10.5, 44100, decay=3.0, channels=2, noise=0.01),
                    44100, subtype="PCM_16")
    soundfile.write(root / "cello" / "cello_A_57.wav", tone(1.5, 48000, freq=220.0), 48000)
    (root / "x.wav").write_bytes(np.random.default_rng(1).bytes(3000))
    (root / "notes.txt").write_text("take 3 was the good one\n")
    return root


def read_summary(out):
    return json.loads((out / "prepare_summary.json").read_text())


def check_clips(out, names):
    for name in names:
        audio, rate = soundfile.read(out / "audio" / f"{name}.wav", always_2d=True)
        assert rate == SAMPLE_RATE
        assert audio.shape == (CLIP_SAMPLES, 1)


def test_cli_defaults(recordings, tmp_path, capsys):
    out = tmp_path / "dataset"
    assert cli.main(["prepare", str(recordings), str(out)]) == 0

    # long_take (10.5 s, hop 4): full clips at 0 and 4 s; the tail from 8 s
    # holds 2.5 s >= min-tail 0.5 s, padded -> 3. cello (1.5 s): padded -> 1.
    meta = json.loads((out / "meta.json").read_text())
    assert list(meta) == ["cello-cello_A-0000_57", "long_take-0000_32", "long_take-0001_32",
                          "long_take-0002_32"]
    assert [note["pitch"] for note in meta.values()] == [57, 32, 32, 32]
    assert [note["start"] for note in meta.values()] == [0.0, 0.0, 4.0, 8.0]
    assert [note["audio_seconds"] for note in meta.values()] == [1.5, 4.0, 4.0, 2.5]
    assert meta["long_take-0002_32"]["source"] == "long_take.flac"
    assert meta["cello-cello_A-0000_57"]["source"] == "cello/cello_A_57.wav"
    assert all(note["instrument_source"] == 0 for note in meta.values())
    check_clips(out, meta)
    assert sorted(p.stem for p in (out / "audio").iterdir()) == sorted(meta)

    # The padding after the cello's 1.5 s is digital silence.
    cello, _ = soundfile.read(out / "audio" / "cello-cello_A-0000_57.wav")
    assert np.abs(cello[:24000]).max() > 0.5
    assert not cello[24000:].any()

    summary = read_summary(out)
    assert summary["files_read"] == 2
    assert summary["clips_kept"] == 4
    assert summary["clips_skipped"] == {}
    assert summary["pitches"] == {"32": 3, "57": 1}
    assert [(f["path"], f["reason"]) for f in summary["files_skipped"]] == [
        ("notes.txt", "not audio"), ("x.wav", "unreadable")]
    printed = capsys.readouterr().out
    assert "clips kept:    4" in printed
    assert "x.wav: unreadable" in printed and "notes.txt: not audio" in printed

    waves, pitches, names = load_dataset(out)
    assert waves.shape == (4, CLIP_SAMPLES) and waves.dtype == np.float32
    assert pitches.tolist() == [57, 32, 32, 32] and names == list(meta)
    assert dataset_pitches(out) == [32, 57]
    assert dataset_pitch_counts(out) == {32: 3, 57: 1}
    # File normalisation: each source peaks at -1 dBFS (within 16-bit rounding).
    assert np.abs(waves[1:]).max() == pytest.approx(10 ** (-1 / 20), abs=1e-3)
    batches = list(iter_batches(out, batch_size=3))
    assert [len(names) for _, _, names in batches] == [3, 1]
    assert np.array_equal(np.concatenate([w for w, _, _ in batches]), waves)


def test_cli_subprocess_drop_tails_and_overlap(recordings, tmp_path):
    out = tmp_path / "dataset"
    env = dict(os.environ, PYTHONPATH=str(ENGINE_DIR))
    result = subprocess.run(
        [sys.executable, "-m", "ganspacesynth.cli", "prepare", str(recordings), str(out),
         "--hop", "2.5", "--tail", "drop", "--no-pitch-from-name", "--pitch", "40"],
        env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr

    # long_take, hop 2.5: starts 0, 2.5, 5 end by 9 <= 10.5; the one at 7.5
    # would end at 11.5 -> dropped. cello is shorter than 4 s -> dropped.
    meta = json.loads((out / "meta.json").read_text())
    assert list(meta) == ["long_take-0000_40", "long_take-0001_40", "long_take-0002_40"]
    assert [note["start"] for note in meta.values()] == [0.0, 2.5, 5.0]
    assert {note["pitch"] for note in meta.values()} == {40}
    check_clips(out, meta)
    summary = read_summary(out)
    assert summary["clips_kept"] == 3
    assert summary["clips_skipped"] == {"tail dropped": 2}
    assert "2 tail dropped" in result.stdout
    assert "x.wav: unreadable" in result.stdout


def test_overlapping_hop(tmp_path):
    source = tmp_path / "in" / "drone.wav"
    source.parent.mkdir()
    rng = np.random.default_rng(2)
    soundfile.write(source, 0.5 * rng.uniform(-1, 1, round(10.7 * SAMPLE_RATE)), SAMPLE_RATE,
                    subtype="FLOAT")

    # Hop 1 s over 10.7 s: full clips start at 0..6 (6 + 4 <= 10.7); the tail
    # at 7 s adds 0.7 s not in the clip at 6 s: kept with min_tail 0.5.
    summary = prepare_dataset(tmp_path / "in", tmp_path / "a", hop=1.0, bit_depth="float")
    waves, _, names = load_dataset(tmp_path / "a")
    assert summary.clips_kept == 8 and len(names) == 8
    assert names[-1] == "drone-0007_32"
    for k in range(7):
        assert np.array_equal(waves[k, SAMPLE_RATE:], waves[k + 1, :CLIP_SAMPLES - SAMPLE_RATE])
    # The padded tail holds the last 3.7 s, then silence.
    assert not waves[7, round(3.7 * SAMPLE_RATE):].any()

    summary = prepare_dataset(tmp_path / "in", tmp_path / "b", hop=1.0, min_tail=1.0)
    assert summary.clips_kept == 7
    assert summary.clips_skipped == {"tail too short": 1}


def test_silent_clips_are_skipped(tmp_path):
    source = tmp_path / "in" / "tone_then_silence.wav"
    source.parent.mkdir()
    rng = np.random.default_rng(3)
    quiet_noise = 10 ** (-80 / 20) * rng.standard_normal(4 * SAMPLE_RATE)  # -80 dBFS RMS
    audio = np.concatenate([tone(4, SAMPLE_RATE), np.zeros(4 * SAMPLE_RATE), quiet_noise])
    soundfile.write(source, audio, SAMPLE_RATE, subtype="FLOAT")

    summary = prepare_dataset(tmp_path / "in", tmp_path / "a")
    assert summary.clips_kept == 1
    assert summary.clips_skipped == {"silent": 2}
    assert list(json.loads((tmp_path / "a" / "meta.json").read_text())) == [
        "tone_then_silence-0000_32"]

    # Normalising the file lifts the noise by 5 dB, to -75: above -90, below -60.
    summary = prepare_dataset(tmp_path / "in", tmp_path / "b", silence_db=-90)
    assert summary.clips_kept == 2 and summary.clips_skipped == {"silent": 1}

    summary = prepare_dataset(tmp_path / "in", tmp_path / "c", skip_silent=False)
    assert summary.clips_kept == 3 and summary.clips_skipped == {}


def test_resampling_keeps_frequencies(tmp_path):
    source = tmp_path / "in" / "beep.wav"
    source.parent.mkdir()
    # 1 kHz must stay at 1 kHz; 10 kHz is above the 8 kHz Nyquist limit and
    # must be filtered out, not folded back to 16 - 10 = 6 kHz.
    rate = 44100
    audio = tone(4, rate, freq=1000.0) + tone(4, rate, freq=10000.0, amp=0.4)
    soundfile.write(source, audio, rate, subtype="FLOAT")

    summary = prepare_dataset(tmp_path / "in", tmp_path / "out", bit_depth="float",
                              normalize="none")
    assert summary.clips_kept == 1  # 176400 samples at 44.1 kHz are exactly 64000 at 16 kHz
    (wave,), _, _ = load_dataset(tmp_path / "out")
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    freqs = np.fft.rfftfreq(len(wave), 1 / SAMPLE_RATE)
    assert freqs[np.argmax(spectrum)] == pytest.approx(1000.0, abs=0.5)
    alias = spectrum[np.abs(freqs - 6000) < 50].max()
    assert 20 * np.log10(alias / spectrum.max()) < -60
    # Amplitude is preserved (Hann window: peak bin = amp * N / 4).
    assert spectrum.max() / (len(wave) / 4) == pytest.approx(0.5, rel=0.01)


@pytest.mark.slow
def test_tfrecord_input_imports_tensorflow(tmp_path):
    """Reads NSynth-style TFRecords; imports TensorFlow, hence slow."""
    tf = pytest.importorskip("tensorflow")

    def feature(kind, values):
        if kind == "float":
            return tf.train.Feature(float_list=tf.train.FloatList(value=values))
        if kind == "int":
            return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))

    notes = [("keyboard_acoustic_004-060-127", 60), ("keyboard_acoustic_004-062-127", 62), (None, 64)]
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    with tf.io.TFRecordWriter(str(in_dir / "notes.tfrecord")) as writer:
        for note_str, pitch in notes:
            audio = tone(4, SAMPLE_RATE, freq=440 * 2 ** ((pitch - 69) / 12), amp=0.3)
            features = {"audio": feature("float", audio.astype(np.float32)),
                        "pitch": feature("int", [pitch]), "velocity": feature("int", [127])}
            if note_str:
                features["note_str"] = feature("str", [note_str])
            example = tf.train.Example(features=tf.train.Features(feature=features))
            writer.write(example.SerializeToString())
    (in_dir / "broken.tfrecord").write_bytes(np.random.default_rng(4).bytes(500))

    assert cli.main(["prepare", str(in_dir), str(tmp_path / "out"), "--normalize", "none",
                     "--bit-depth", "float"]) == 0
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert list(meta) == ["keyboard_acoustic_004-060-127", "keyboard_acoustic_004-062-127",
                          "notes-00002"]
    assert [note["pitch"] for note in meta.values()] == [60, 62, 64]
    assert [note["record"] for note in meta.values()] == [0, 1, 2]
    assert meta["notes-00002"]["velocity"] == 127
    waves, _, _ = load_dataset(tmp_path / "out")
    assert np.allclose(waves[2], tone(4, SAMPLE_RATE, freq=440 * 2 ** (-5 / 12), amp=0.3), atol=1e-6)
    summary = read_summary(tmp_path / "out")
    assert summary["clips_kept"] == 3
    assert [(f["path"], f["reason"]) for f in summary["files_skipped"]] == [
        ("broken.tfrecord", "unreadable")]


def test_no_clip_is_an_error_with_status_2(tmp_path, capsys):
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    (in_dir / "readme.txt").write_text("no audio here")
    soundfile.write(in_dir / "hum_40.wav", np.zeros(SAMPLE_RATE), SAMPLE_RATE)

    assert cli.main(["prepare", str(in_dir), str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert "no clip was produced" in captured.err
    assert "readme.txt: not audio" in captured.out
    assert not (tmp_path / "out" / "meta.json").exists()
    assert read_summary(tmp_path / "out")["clips_skipped"] == {"silent": 1}
    with pytest.raises(GanspacesynthError, match="no meta.json"):
        load_dataset(tmp_path / "out")
    with pytest.raises(NoClipsError):
        prepare_dataset(in_dir, tmp_path / "out", overwrite=True)


def test_out_dir_is_protected(recordings, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.wav").write_bytes(b"")
    with pytest.raises(GanspacesynthError, match="not empty"):
        prepare_dataset(recordings, mine)
    assert (mine / "keep.wav").exists()

    out = tmp_path / "out"
    prepare_dataset(recordings, out)
    with pytest.raises(GanspacesynthError, match="--overwrite"):
        prepare_dataset(recordings, out)
    summary = prepare_dataset(recordings, out, hop=8.0, overwrite=True)
    # Hop 8: the clip at 0 s, the padded one at 8 s; the cello. No leftovers.
    assert summary.clips_kept == 3
    assert len(list((out / "audio").iterdir())) == 3


@pytest.mark.parametrize("stem, pitch", [
    ("cello_A_57", 57), ("a_0", 0), ("b_127", 127), ("c_057", 57),
    ("take_128", None), ("x57", None), ("y_57_b", None), ("z-57", None)])
def test_pitch_from_name(stem, pitch):
    assert pitch_from_name(stem) == pitch

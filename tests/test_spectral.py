"""Mel spectrogram <-> audio, checked against audio Magenta itself made."""

import numpy as np
import pytest

from ganspacesynth.spectral import (
    AUDIO_LENGTH, MIN_FRAMES, N_FFT, HOP, N_FRAMES, N_MEL, SAMPLE_RATE, frames_for_samples,
    linear_to_mel_matrix, mel_to_linear_matrix, samples_for_frames, specgrams_to_waves,
    waves_to_specgrams)

from conftest import relative_error


def harmonic_tone(f0=440.0, partials=4):
    """A plucked-string-like note: 4 partials, 20 ms attack, exponential decay."""
    t = np.arange(AUDIO_LENGTH) / SAMPLE_RATE
    envelope = np.minimum(t / 0.02, 1.0) * np.exp(-t)
    tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, partials + 1))
    return (0.5 * envelope * tone).astype(np.float32)


def stft_magnitude(x):
    padded = np.pad(x, (N_FFT, 0))
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    return np.abs(np.fft.rfft(frames * np.hanning(N_FFT)))


@pytest.mark.parametrize("specgram, wave", [("specgram", "wave"), ("edit_specgram", "edit_wave")])
def test_audio_matches_magenta(reference, specgram, wave):
    out = specgrams_to_waves(reference[specgram])
    assert out.shape == (4, AUDIO_LENGTH) and out.dtype == np.float32
    # Per clip, so that a quiet clip is held to the same standard. Measured:
    # at most 1.9e-4. That floor is Magenta's: it accumulates phases of
    # hundreds of radians in float32 (a float32 transcription of its graph
    # matches the reference to 2e-7), where this module keeps them exact.
    for i in range(len(out)):
        assert relative_error(out[i], reference[wave][i]) < 5e-4, i


def test_one_clip_gives_the_same_as_a_batch(reference):
    batch = specgrams_to_waves(reference["specgram"])
    one = specgrams_to_waves(reference["specgram"][2])
    assert one.shape == (AUDIO_LENGTH,)
    np.testing.assert_allclose(one, batch[2], rtol=0, atol=1e-6 * np.abs(batch[2]).max())

    waves = reference["wave"][:2]
    batch = waves_to_specgrams(waves)
    one = waves_to_specgrams(waves[1])
    assert one.shape == (N_FRAMES, N_MEL, 2)
    np.testing.assert_allclose(one, batch[1], rtol=0, atol=1e-5)


def test_round_trip_of_a_harmonic_tone():
    x = harmonic_tone()
    specgrams = waves_to_specgrams(x.astype(np.float64))
    assert specgrams.shape == (N_FRAMES, N_MEL, 2) and specgrams.dtype == np.float32
    y = specgrams_to_waves(specgrams)
    assert y.shape == x.shape and y.dtype == np.float32

    # Magenta's mel map is not invertible: a float64 transcription of its
    # formulas gives the same 16.1 dB SNR and 0.100 spectral convergence on
    # this tone (partials come back ~9% quieter). The margins are for
    # rounding; a hop of delay (1.9 dB), a wrong window scale (7.6 dB),
    # doubled power (9.3 dB) or lost phase (0 dB) all fail.
    snr = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum((y - x).astype(np.float64) ** 2))
    assert snr > 14.0
    reference_mag, out_mag = stft_magnitude(x), stft_magnitude(y)
    convergence = np.linalg.norm(out_mag - reference_mag) / np.linalg.norm(reference_mag)
    assert convergence < 0.12


def test_silence_sits_on_magentas_floor():
    specgrams = waves_to_specgrams(np.zeros((2, AUDIO_LENGTH), np.float32))
    # log(mel power + 1e-6) with the power itself ~1e-12: the floor the
    # dataset normaliser and the generator's quietest output are built on.
    np.testing.assert_allclose(specgrams[..., 0], np.log(1e-6), atol=1e-5)
    assert np.all(specgrams[..., 1] == 0)


@pytest.mark.parametrize("shape", [(AUDIO_LENGTH - 1,), (2, AUDIO_LENGTH + 512), (1, 1, AUDIO_LENGTH)])
def test_wrong_audio_length_is_refused(shape):
    with pytest.raises(ValueError, match=str(AUDIO_LENGTH)):
        waves_to_specgrams(np.zeros(shape, np.float32))


@pytest.mark.parametrize("shape", [(N_FRAMES, N_MEL), (N_FRAMES, N_MEL // 2, 2), (1, 1, N_FRAMES, N_MEL, 2)])
def test_wrong_specgram_shape_is_refused(shape):
    with pytest.raises(ValueError, match=f"{N_FRAMES}, {N_MEL}, 2"):
        specgrams_to_waves(np.zeros(shape, np.float32))


def test_leading_frames_give_the_start_of_the_audio(reference):
    whole = specgrams_to_waves(reference["specgram"])
    for frames in (MIN_FRAMES, 8, 53, 100, N_FRAMES - 1):
        start = specgrams_to_waves(reference["specgram"][:, :frames])
        assert start.shape == (4, samples_for_frames(frames))
        np.testing.assert_array_equal(start, whole[:, :start.shape[1]])
    # The frame count a sample count needs is the smallest whose audio covers it.
    for samples in (1, 511, 512, 513, 24000, 62464, 62465, AUDIO_LENGTH):
        frames = frames_for_samples(samples)
        assert samples_for_frames(frames) >= samples
        assert frames == MIN_FRAMES or samples_for_frames(frames - 1) < samples


@pytest.mark.parametrize("frames", [0, MIN_FRAMES - 1, N_FRAMES + 1])
def test_too_few_or_too_many_frames_are_refused(frames):
    with pytest.raises(ValueError, match=f"first {MIN_FRAMES} to {N_FRAMES} frames"):
        specgrams_to_waves(np.zeros((1, frames, N_MEL, 2), np.float32))


def test_mel_matrices():
    to_mel, to_linear = linear_to_mel_matrix(), mel_to_linear_matrix()
    assert to_mel.shape == (N_FFT // 2, N_MEL) and to_linear.shape == (N_MEL, N_FFT // 2)
    assert np.all(to_mel[0] == 0) and np.all(to_mel >= 0)
    # Cached and shared by every caller, so nobody may write into them.
    assert not to_mel.flags.writeable and not to_linear.flags.writeable
    # The inverse is the transpose scaled per linear bin by 1 / column sum of M M^T.
    sums = (to_mel @ to_mel.T).sum(axis=0)
    used = sums > 1e-8
    np.testing.assert_allclose(to_linear[:, used], to_mel.T[:, used] / sums[used], rtol=1e-12)
    assert np.all(to_linear[:, ~used] == 0)

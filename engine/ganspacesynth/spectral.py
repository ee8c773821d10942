"""GANSynth's mel spectrogram <-> audio conversion, in numpy and scipy.fft.

GANSynth models see audio as 128 STFT frames x 1024 mel bins x (log mel
magnitude, mel instantaneous frequency). This module reproduces Magenta's
``SpecgramsHelper.melspecgrams_to_waves`` and ``waves_to_melspecgrams`` for the
released configuration (16 kHz, 64000 samples, 2048-point STFT, hop 512).

It does not import TensorFlow: it runs after every generated clip and in
dataset preparation. A clip takes 2-4 ms each way on one core, against
20-40 ms for a direct transcription with dense float64 matrices, because the
mel <-> linear matrices are almost empty (see ``_Banded``) and scipy's FFT
is about three times faster than numpy's on these frames.
"""

from functools import lru_cache
import math

import numpy as np
import scipy.fft

SAMPLE_RATE = 16000
AUDIO_LENGTH = 64000
N_FFT = 2048
HOP = 512
N_FRAMES = 128
N_MEL = 1024

N_BINS = N_FFT // 2  # the DC bin is dropped: 1024 bins, the last one at Nyquist
# Magenta puts all of the padding in front (tail frames are not fully
# overlapped, an edge effect the models were trained with).
PAD_LEFT = HOP * (N_FRAMES - 1) + N_FFT - AUDIO_LENGTH  # 3072
_OVERLAP = N_FFT // HOP  # 4 frames cover each sample
_EPS = 1.0e-6

_MEL_BREAK_HZ = 700.0
_MEL_HIGH_Q = 1127.0


def _hz_to_mel(hz):
    return _MEL_HIGH_Q * np.log1p(np.asarray(hz, dtype=np.float64) / _MEL_BREAK_HZ)


def _mel_to_hz(mel):
    return _MEL_BREAK_HZ * np.expm1(np.asarray(mel, dtype=np.float64) / _MEL_HIGH_Q)


@lru_cache(maxsize=None)
def linear_to_mel_matrix():
    """Magenta's linear -> mel weights, float64 (N_BINS linear, N_MEL mel), read-only.

    ``mel = linear @ linear_to_mel_matrix()``. HTK mel scale over 0..8000 Hz,
    linear bins placed at ``linspace(0, 8000, 1024)`` with the first row zero,
    and a minimum band width of 1.5 linear bins.
    """
    nyquist = SAMPLE_RATE / 2.0
    linear_hz = np.linspace(0.0, nyquist, N_BINS)[1:, np.newaxis]
    edges = np.linspace(_hz_to_mel(0.0), _hz_to_mel(nyquist), N_MEL + 2)

    # Band i runs edges[i] .. edges[i+1] (centre) .. edges[i+2]. Magenta keeps
    # lower, centre and upper edges as views of this one array, so widening a
    # narrow band also moves the centre of the next band and the lower edge of
    # the one after, and the loop then sees those moved edges. Trained models
    # depend on that exact matrix (the reference audio only matches with it),
    # so the widening runs in place, band by band, as there.
    min_width_hz = 1.5 * nyquist / N_BINS
    for i in range(N_MEL):
        lower_hz = _MEL_BREAK_HZ * math.expm1(edges[i] / _MEL_HIGH_Q)
        centre_hz = _MEL_BREAK_HZ * math.expm1(edges[i + 1] / _MEL_HIGH_Q)
        upper_hz = _MEL_BREAK_HZ * math.expm1(edges[i + 2] / _MEL_HIGH_Q)
        if upper_hz - lower_hz < min_width_hz:
            # Half-width in mel of a band min_width_hz wide around the centre.
            rhs = 0.5 * min_width_hz / (centre_hz + _MEL_BREAK_HZ)
            half_mel = _MEL_HIGH_Q * math.asinh(rhs)
            edges[i] = edges[i + 1] - half_mel
            edges[i + 2] = edges[i + 1] + half_mel

    lower = _mel_to_hz(edges[:-2])[np.newaxis, :]
    centre = _mel_to_hz(edges[1:-1])[np.newaxis, :]
    upper = _mel_to_hz(edges[2:])[np.newaxis, :]
    rising = (linear_hz - lower) / (centre - lower)
    falling = (upper - linear_hz) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    # HTK leaves out the DC bin: put it back as a zero row.
    weights = np.concatenate([np.zeros((1, N_MEL)), weights])
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=None)
def mel_to_linear_matrix():
    """Magenta's approximate inverse, float64 (N_MEL mel, N_BINS linear), read-only.

    The transpose of ``linear_to_mel_matrix()`` with each linear bin scaled by
    1 / (column sum of M M^T); bins whose sum is (almost) zero keep it as is.
    """
    m = linear_to_mel_matrix()
    sums = (m @ m.T).sum(axis=0)
    safe = np.abs(sums) > 1.0e-8
    scale = np.where(safe, 1.0 / np.where(safe, sums, 1.0), sums)
    out = m.T * scale[np.newaxis, :]
    out.setflags(write=False)
    return out


class _Banded:
    """``x @ matrix`` for a matrix whose nonzeros in each column are contiguous.

    Each linear bin takes at most 2 mel bins and each mel bin at most 6 linear
    bins, so a dense 1024 x 1024 product wastes over 99% of its work: a few
    gathers along the last axis do the same in float32.
    """

    def __init__(self, matrix):
        matrix = np.asarray(matrix, dtype=np.float64)
        nonzero = matrix != 0
        n_in, n_out = matrix.shape
        first = np.where(nonzero.any(axis=0), nonzero.argmax(axis=0), 0)
        last = np.where(nonzero.any(axis=0),
                        n_in - 1 - nonzero[::-1].argmax(axis=0), -1)
        width = int(max(1, (last - first + 1).max()))
        cols = np.arange(n_out)
        self.rows, self.weights = [], []
        for k in range(width):
            inside = first + k <= last
            rows = np.minimum(first + k, n_in - 1)  # any valid row: its weight is 0
            self.rows.append(rows)
            self.weights.append(np.where(inside, matrix[rows, cols], 0.0).astype(np.float32))

    def __call__(self, x):
        out = np.take(x, self.rows[0], axis=-1)
        out *= self.weights[0]
        for rows, weights in zip(self.rows[1:], self.weights[1:]):
            term = np.take(x, rows, axis=-1)
            term *= weights
            out += term
        return out


@lru_cache(maxsize=None)
def _mel_to_linear():
    return _Banded(mel_to_linear_matrix())


@lru_cache(maxsize=None)
def _linear_to_mel():
    return _Banded(linear_to_mel_matrix())


@lru_cache(maxsize=None)
def _hann():
    """Periodic Hann window (float64), as tf.signal.hann_window(periodic=True)."""
    n = np.arange(N_FFT)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)
    window.setflags(write=False)
    return window


@lru_cache(maxsize=None)
def _synthesis_window():
    # tf.signal.inverse_stft_window_fn divides by the summed squared windows
    # of the overlapping frames: for a periodic Hann at a quarter-frame hop
    # that sum is exactly 1.5 everywhere.
    window = (_hann() / 1.5).astype(np.float32)
    window.setflags(write=False)
    return window


def _wrap(phase):
    """Map radians into [-pi, pi] by whole turns.

    Steps of exactly +-pi may come out with either sign (Magenta's float32
    arithmetic has the same ambiguity); both give the same phase.
    """
    real = phase.dtype.type
    turns = np.rint(phase * real(0.5 / np.pi))
    turns *= real(2.0 * np.pi)
    return phase - turns


def frames_for_samples(samples):
    """How many leading frames determine the first ``samples`` samples of the audio.

    Each sample depends on the (up to) four frames whose windows cover it,
    and the audio starts PAD_LEFT samples into the first frame's window.
    """
    if not 1 <= samples <= AUDIO_LENGTH:
        raise ValueError(f"samples must be between 1 and {AUDIO_LENGTH}, got {samples}")
    return min(N_FRAMES, -(-(samples + PAD_LEFT) // HOP))


MIN_FRAMES = frames_for_samples(1)  # 7: the first six frames end before the audio starts


def samples_for_frames(frames):
    """How many samples the first ``frames`` frames determine exactly: all of them for
    the whole spectrogram, else the ones no later frame's window reaches."""
    if frames == N_FRAMES:
        return AUDIO_LENGTH
    return frames * HOP - PAD_LEFT


def _check_specgrams(specgrams):
    specgrams = np.asarray(specgrams, dtype=np.float32)
    if (specgrams.ndim not in (3, 4) or specgrams.shape[-2:] != (N_MEL, 2)
            or not MIN_FRAMES <= specgrams.shape[-3] <= N_FRAMES):
        raise ValueError(
            f"mel spectrograms must have shape ({N_FRAMES}, {N_MEL}, 2) or "
            f"(n, {N_FRAMES}, {N_MEL}, 2) (or the first {MIN_FRAMES} to {N_FRAMES} frames), "
            f"got {specgrams.shape}")
    return specgrams


def specgrams_to_waves(specgrams):
    """Denormalised mel spectrograms -> float32 audio at SAMPLE_RATE.

    ``specgrams``: (n, 128, 1024, 2) or (128, 1024, 2); channel 0 is the log
    mel power, channel 1 the mel instantaneous frequency (phase step per
    frame / pi). Returns (n, 64000) or (64000,), as Magenta's
    ``melspecgrams_to_waves``. Given only the first T frames, returns the
    ``samples_for_frames(T)`` samples they determine, equal to the start of
    the whole clip's audio.
    """
    specgrams = _check_specgrams(specgrams)
    single = specgrams.ndim == 3
    if single:
        specgrams = specgrams[np.newaxis]
    n_frames = specgrams.shape[1]
    mel_to_linear = _mel_to_linear()

    magnitude = mel_to_linear(np.exp(specgrams[..., 0]))
    magnitude += np.float32(_EPS)
    np.sqrt(magnitude, out=magnitude)  # exp(0.5 * log(power + eps))

    # Phase as a running sum of per-frame steps. The mel -> linear map is
    # linear, so it can act on the steps before the sum. Absolute phases reach
    # hundreds of radians, where float32 would leave ~1e-4 rad of error; the
    # sum runs in turns instead, dropping whole turns each frame, so it never
    # leaves [-0.5, 0.5] and keeps float32 resolution.
    turns = mel_to_linear(specgrams[..., 1] * np.float32(0.5))
    turns[:, 0] -= np.rint(turns[:, 0])
    for t in range(1, n_frames):
        frame = turns[:, t]
        frame += turns[:, t - 1]
        frame -= np.rint(frame)
    turns *= np.float32(2.0 * np.pi)

    # Frames 0..2 land entirely in the left padding that is cut off below.
    first = PAD_LEFT // HOP - _OVERLAP + 1
    n = specgrams.shape[0]
    stft = np.zeros((n, n_frames - first, N_BINS + 1), dtype=np.complex64)
    real, imag = stft.real[..., 1:], stft.imag[..., 1:]
    np.cos(turns[:, first:], out=real)
    np.sin(turns[:, first:], out=imag)
    real *= magnitude[:, first:]
    imag *= magnitude[:, first:]

    frames = scipy.fft.irfft(stft, n=N_FFT, axis=-1)
    frames *= _synthesis_window()

    # Overlap-add: with N_FFT = 4 * HOP, frame t's quarter q lands on hop
    # block t + q, so four shifted adds of whole arrays do it.
    quarters = frames.reshape(n, n_frames - first, _OVERLAP, HOP)
    blocks = np.zeros((n, n_frames - first + _OVERLAP - 1, HOP), dtype=np.float32)
    for q in range(_OVERLAP):
        blocks[:, q:q + n_frames - first] += quarters[:, :, q]
    skip = PAD_LEFT // HOP - first  # padding blocks still left after `first`
    length = samples_for_frames(n_frames)
    waves = blocks[:, skip:skip + length // HOP].reshape(n, length)
    return waves[0] if single else waves


def waves_to_specgrams(waves):
    """Audio -> denormalised mel spectrograms, as Magenta's ``waves_to_melspecgrams``.

    ``waves``: (n, 64000) or (64000,) at SAMPLE_RATE. Returns float32
    (n, 128, 1024, 2) or (128, 1024, 2): log mel power and mel instantaneous
    frequency, the form ``specgrams_to_waves`` takes back.
    """
    waves = np.asarray(waves, dtype=np.float32)
    if waves.ndim not in (1, 2) or waves.shape[-1] != AUDIO_LENGTH:
        raise ValueError(
            f"audio must be {AUDIO_LENGTH} samples ({AUDIO_LENGTH / SAMPLE_RATE:g} s "
            f"at {SAMPLE_RATE} Hz) per clip, as (n, {AUDIO_LENGTH}) or "
            f"({AUDIO_LENGTH},); got shape {waves.shape}")
    single = waves.ndim == 1
    if single:
        waves = waves[np.newaxis]
    n = waves.shape[0]

    padded = np.zeros((n, PAD_LEFT + AUDIO_LENGTH), dtype=np.float32)
    padded[:, PAD_LEFT:] = waves
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT, axis=-1)[:, ::HOP]
    # The STFT runs in float64: in float32 the phases of bins near the
    # rounding floor are noise, and on the way back Magenta's eps gives every
    # linear bin a magnitude of 1e-3, so that noise would reach the audio at
    # ~2e-4 of full scale. float64 costs about 1 ms per clip.
    stft = scipy.fft.rfft(frames * _hann(), axis=-1)[..., 1:]

    # Magenta squares exp(log(|S| + eps)), so the eps is inside the square.
    power = np.abs(stft).astype(np.float32)
    power += np.float32(_EPS)
    np.square(power, out=power)
    mel_power = _linear_to_mel()(power)
    mel_power += np.float32(_EPS)
    np.log(mel_power, out=mel_power)

    # Magenta unwraps the phase over time, maps it to mel, and takes the
    # wrapped frame-to-frame steps of that. Because the map is linear, the
    # same steps come from mapping the wrapped linear steps and wrapping
    # again, without ever forming phases of hundreds of radians.
    phase = np.angle(stft)
    steps = np.empty(phase.shape, dtype=np.float32)
    steps[:, 0] = phase[:, 0]
    steps[:, 1:] = _wrap(np.diff(phase, axis=1))
    mel_steps = _linear_to_mel()(steps)
    mel_steps[:, 1:] = _wrap(mel_steps[:, 1:])
    mel_steps *= np.float32(1.0 / np.pi)

    specgrams = np.stack([mel_power, mel_steps], axis=-1)
    return specgrams[0] if single else specgrams

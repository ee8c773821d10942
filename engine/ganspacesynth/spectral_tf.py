"""GANSynth's mel spectrogram -> audio inversion in TensorFlow, so that gradients reach the generator.

The same arithmetic as ``spectral.specgrams_to_waves`` (Magenta's
``melspecgrams_to_waves``), which stays the one used to play clips: it is
faster and exact in float32 where this one is not (the phase is summed in
radians here, so after 128 frames it carries about 1e-4 rad of rounding).
The matrices and constants come from ``spectral``; a test holds the two
within 1e-3 of each other.
"""

import math

import numpy as np
import tensorflow as tf

from . import spectral


def specgrams_to_waves(specgrams):
    """Denormalised mel spectrograms (n, 128, 1024, 2) -> audio (n, 64000), differentiably."""
    specgrams = tf.convert_to_tensor(specgrams, tf.float32)
    mel_to_linear = tf.constant(spectral.mel_to_linear_matrix(), tf.float32)
    power = tf.tensordot(tf.exp(specgrams[..., 0]), mel_to_linear, 1)
    magnitude = tf.sqrt(power + spectral._EPS)
    phase = tf.cumsum(tf.tensordot(specgrams[..., 1] * math.pi, mel_to_linear, 1), axis=1)
    stft = tf.complex(magnitude * tf.cos(phase), magnitude * tf.sin(phase))
    stft = tf.pad(stft, [[0, 0], [0, 0], [1, 0]])  # the DC bin Magenta drops
    frames = tf.signal.irfft(stft, fft_length=[spectral.N_FFT])
    frames *= tf.constant(np.asarray(spectral._synthesis_window()), tf.float32)
    waves = tf.signal.overlap_and_add(frames, spectral.HOP)
    return waves[:, spectral.PAD_LEFT:spectral.PAD_LEFT + spectral.AUDIO_LENGTH]


# Multi-resolution STFT sizes (Yamamoto et al.'s Parallel WaveGAN loss, DDSP's spectral loss).
FFT_SIZES = (2048, 1024, 512, 256)


# Log magnitudes are floored this far below the reference's loudest bin (60 dB), so that the
# noise floor, where a clip's bins are all but random, does not decide the distance.
FLOOR = 1e-3


def spectral_distance(a, b):
    """Multi-resolution spectral distance from clips ``a`` (n, samples) to reference clips ``b``
    (n or 1, samples): per FFT size (hop a quarter of it, Hann window) the spectral convergence
    ||B - A|| / ||B|| plus the mean absolute difference of log magnitudes (both floored at FLOOR
    times B's largest magnitude), averaged over the sizes. One value per clip; 0 only for equal
    clips."""
    a = tf.convert_to_tensor(a, tf.float32)
    b = tf.convert_to_tensor(b, tf.float32)
    total = 0.0
    for size in FFT_SIZES:
        ma = tf.abs(tf.signal.stft(a, size, size // 4, pad_end=True))
        mb = tf.abs(tf.signal.stft(b, size, size // 4, pad_end=True))
        convergence = tf.norm(mb - ma, axis=[-2, -1]) / (tf.norm(mb, axis=[-2, -1]) + 1e-7)
        floor = FLOOR * tf.reduce_max(mb, axis=[-2, -1], keepdims=True) + 1e-7
        log_l1 = tf.reduce_mean(tf.abs(tf.math.log(tf.maximum(mb, floor)) - tf.math.log(tf.maximum(ma, floor))),
                                axis=[-2, -1])
        total += convergence + log_l1
    return total / len(FFT_SIZES)

"""Synthesis from coefficients along a PCA's directions: one formula, three spaces.

The synthesis formula
---------------------
Every synthesis is *base + sum_i c_i * scale_i * direction_i*, with the
coefficients ``c`` counted in standard deviations along each direction::

    space "layer":  layer  = mean          + sum_i c_i * stdev_i * component_i
    space "z":      layer  = G_layer(z, p) + sum_i c_i * stdev_i * component_i
    space "latent": z'     = z_center      + sum_i c_i * s_i     * u_i

and the generator continues from the layer (``layer``, ``z``) or runs from
``z'`` at pitch ``p`` (``latent``). In ``layer`` space z and pitch have no
effect: the formula replaces the activation that they would have produced
(the paper's and GANSpaceSynth's mode). ``z`` adds the same offset to the
activation of a given latent vector, so the pitch label keeps its part.
``latent`` moves z itself along *latent directions* ``u_i`` found by linear
regression (see ``pca.py``), so the pitch label steers the pitch as in plain
generation; ``z_center`` is the given z, or the zero vector. Fewer
coefficients than components leave the rest at zero.

Directions fitted pitch by pitch (a PCA with ``pitch_sets``, see
``directions.py``) play, in ``z`` and ``latent`` space, the set of each
clip's pitch (``PCA.at_pitch``); ``layer`` space, which has no pitch, plays
the set pooled over the pitches.

The latent directions and their calibration are described in ``pca.py``,
which computes them.
"""

import numpy as np

from .pca_format import _coefficient_rows

SPACES = ("layer", "z", "latent")


def _synthesis_plan(model, pca, coefficients, z, pitch, space):
    """Resolve space and broadcasting; returns (kind, inputs, n, single)."""
    pca.check_model(model)
    if space is None:
        space = "layer" if z is None else "z"
    if space not in SPACES:
        raise ValueError(f"unknown space {space!r}: choose one of {', '.join(SPACES)}")
    rows, single = _coefficient_rows(coefficients, pca.n_components)
    if space == "layer":
        if z is not None or pitch is not None:
            raise ValueError("space 'layer' replaces the activation, so z and pitch have no effect there; "
                             "use space 'z' or 'latent' to play them")
        return "layer", pca.mean + pca.edit(rows), len(rows), single

    if z is None:
        if space == "z":
            raise ValueError("space 'z' adds the edit to the activation of a latent vector: give z")
        z = np.zeros(model.latent_size, dtype=np.float32)
    single = single and np.ndim(z) == 1
    zs = model.latents(z)
    pitch = model.default_pitch if pitch is None else pitch
    pitches = np.asarray(pitch)
    if pitches.ndim > 1:
        raise ValueError(f"pitch must be one MIDI pitch or one per clip, got shape {pitches.shape}")
    single = single and pitches.ndim == 0
    counts = {len(rows), len(zs), 1 if pitches.ndim == 0 else len(pitches)}
    n = max(counts)
    if counts - {1, n}:
        raise ValueError(f"coefficients ({len(rows)} rows), z ({len(zs)}) and pitch do not broadcast "
                         "to one number of clips")
    rows = np.broadcast_to(rows, (n, rows.shape[1]))
    zs = np.broadcast_to(zs, (n, model.latent_size))
    pitches = np.broadcast_to(pitches, (n,))
    if space == "z":
        return "z", (zs, pitches, pca.edit(rows, pitches)), n, single
    return "latent", (zs + pca.latent_offset(rows, pitches), pitches), n, single


def _specgram_batches(model, pca, coefficients, z, pitch, space, batch_size, frames=None):
    """(single, iterator of spectrogram batches) for the synthesis formula."""
    kind, inputs, n, single = _synthesis_plan(model, pca, coefficients, z, pitch, space)
    batch_size = max(1, int(batch_size))

    def batches():
        for start in range(0, n, batch_size):
            part = slice(start, min(n, start + batch_size))
            if kind == "layer":
                yield model.specgrams_from_layer(pca.layer, inputs[part], frames)
            elif kind == "z":
                zs, pitches, offset = inputs
                values = model.layer_output(pca.layer, zs[part], pitches[part]) + offset[part]
                yield model.specgrams_from_layer(pca.layer, values, frames)
            else:
                zs, pitches = inputs
                yield model.generate_specgrams(zs[part], pitches[part], frames)

    return single, batches()


def synthesize_specgrams(model, pca, coefficients, z=None, pitch=None, space=None, batch_size=8,
                         frames=None):
    """The spectrograms ``synthesize`` turns into audio (same arguments, same formula);
    ``frames``: only the first ones, as ``Model.generate_specgrams``."""
    single, batches = _specgram_batches(model, pca, coefficients, z, pitch, space, batch_size, frames)
    specgrams = np.concatenate(list(batches))
    return specgrams[0] if single else specgrams


def synthesize(model, pca, coefficients, z=None, pitch=None, space=None, batch_size=8, length=None):
    """Audio from GANSpace coefficients: the module docstring's one formula.

    ``coefficients``: a vector (at most ``pca.n_components`` values; missing
    ones are zero) gives one clip (audio_length,); an (n, k) array gives
    (n, audio_length). ``space``: ``"layer"`` (the default without z),
    ``"z"`` (the default with z) or ``"latent"``. ``z`` (one vector or one per
    clip) and ``pitch`` (one MIDI pitch or one per clip; default the model's
    middle pitch) count in ``z`` and ``latent`` space only; in ``latent``
    space z is the centre (default zero). ``length``: only the first
    ``length`` samples of each clip, computing only what they depend on.
    Raises PCAError for a PCA of another model or layer shape, ValueError for
    bad coefficients, z, pitch or length. Generates ``batch_size`` clips at a
    time to bound memory.
    """
    frames = model.frames_for_length(length)
    single, batches = _specgram_batches(model, pca, coefficients, z, pitch, space, batch_size, frames)
    audio = np.concatenate([model.waves(s, length) for s in batches])
    return audio[0] if single else audio


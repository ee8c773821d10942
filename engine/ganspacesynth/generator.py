"""GANSynth's progressive generator in TensorFlow 2.

The network of Magenta's GANSynth (tfgan's progressive GAN with GANSynth's
2x16 start and mel spectrogram output), rewritten without tf.compat.v1: every
conv is ``pixel_norm(leaky_relu(he * conv(x, W) + b))`` with weights stored
unscaled (equalised learning rate), block 1 maps the 1x1 input to 2x16 with a
VALID conv, and each later block upscales by nearest neighbour first.

The network is kept as a flat list of *layers* named as the original
GANSpaceSynth hooks named them (``conv0``, ``conv1``, ``conv0_2``, ...,
``conv1_7``), so that inference can stop after any layer (GANSpace reads
activations there) and resume from any layer (GANSpace writes them there).

Ways of doing the same arithmetic with less work, all exact up to float
rounding: block 1's conv of the padded point is one matrix product
(``InputConv``), the upscale and the 3x3 conv that open a block run as one
2x2 conv per output phase (``upscale_conv``), inference reads kernels scaled
once at load (``Conv.freeze``), and a forward pass can compute only the first
rows (STFT frames) of the spectrogram (``rows_plan``).
"""

import math

import numpy as np
import tensorflow as tf

from .config import ModelConfig

LEAKY_RELU_ALPHA = 0.2
PIXEL_NORM_EPSILON = 1e-8


def pixel_norm(x):
    return x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=-1, keepdims=True) + PIXEL_NORM_EPSILON)


def upscale(x, factor):
    """Nearest-neighbour upscaling in both axes (tfgan's layers.upscale)."""
    if factor == 1:
        return x
    shape = tf.shape(x)
    x = tf.reshape(x, [shape[0], shape[1], 1, shape[2], 1, shape[3]])
    x = tf.tile(x, [1, 1, factor, 1, factor, 1])
    return tf.reshape(x, [shape[0], shape[1] * factor, shape[2] * factor, shape[3]])


def layer_names(config: ModelConfig):
    names = []
    for block in range(1, config.num_blocks + 1):
        suffix = "" if block == 1 else f"_{block}"
        names += [f"conv0{suffix}", f"conv1{suffix}"]
    return names


def _phase_kernels(kernel, axis):
    """Split a 3-tap kernel along ``axis`` into the 2-tap kernels of the two output phases
    of "upscale by 2, then conv".

    After nearest-neighbour upscaling, output row 2i sees input rows i-1, i, i
    through taps 0, 1, 2, and row 2i+1 sees rows i, i, i+1: the taps that
    land on the same input row add up.
    """
    tap0, tap1, tap2 = tf.unstack(kernel, axis=axis)
    return (tf.stack([tap0, tap1 + tap2], axis=axis),  # even rows: input rows i-1, i
            tf.stack([tap0 + tap1, tap2], axis=axis))  # odd rows: input rows i, i+1


def upscale_conv_kernel(kernel):
    """``upscale_conv``'s kernels for a 3x3 kernel: for the even and for the odd output rows,
    the 2x2 kernels of the two column phases side by side, each (2, 2, in, 2 * out)."""
    return tuple(tf.concat(_phase_kernels(row_kernel, 1), axis=-1) for row_kernel in _phase_kernels(kernel, 0))


def upscale_conv(x, phase_kernels, rows=None):
    """``conv2d(upscale(x, 2), kernel, SAME)`` for a 3x3 kernel, in 4/9 of the multiply-adds,
    given ``upscale_conv_kernel(kernel)``; only its first ``rows`` rows if given.

    Each of the four output phases (even/odd row, even/odd column) is a 2x2
    conv of the input itself: a VALID conv over the input padded by one,
    where position p covers padded rows p, p+1 = input rows p-1, p. Even
    output rows of input row i take position i, odd ones position i + 1, so
    the even rows are one conv over positions 0..h-1 and the odd rows one
    over 1..h, each with the two column phases as 2x the output channels,
    and are then interleaved. Cut to ``rows``, each runs over only the
    positions those rows need: a short part's blocks keep 3 to 11 rows,
    where one conv of all four phases over all h + 1 positions computed up
    to a third more. The zero padding of the upscaled input is the zero
    padding of the input, so the edges are exact too. This is most of a
    generator's arithmetic: the block-opening convs have twice the input
    channels of the others.
    """
    even_kernel, odd_kernel = phase_kernels
    width, channels = tf.shape(x)[2], even_kernel.shape[-1] // 2
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    if rows is None:
        even_rows, odd_rows = padded[:, :-1], padded[:, 1:]
    else:  # rows (2i and 2i + 1) for i below ceil(rows / 2) and floor(rows / 2)
        even_rows, odd_rows = padded[:, :(rows + 1) // 2 + 1], padded[:, 1:rows // 2 + 2]
    phases = []
    wanted = [(even_rows, even_kernel)] + ([] if rows == 1 else [(odd_rows, odd_kernel)])  # 1 row: no odd one
    for rows_input, kernel in wanted:
        y = tf.nn.conv2d(rows_input, kernel, 1, "VALID")  # (n, rows of this phase, width + 1, 2 * channels)
        # even columns of input column j at position j, odd ones at j + 1
        y = tf.stack([y[:, :, :width, :channels], y[:, :, 1:, channels:]], axis=3)
        phases.append(tf.reshape(y, [tf.shape(y)[0], tf.shape(y)[1], 2 * width, channels]))
    if rows == 1:
        return phases[0]
    even, odd = phases
    if rows is not None and rows % 2:  # one even row more than odd ones: pad, interleave, cut
        odd = tf.pad(odd, [[0, 0], [0, 1], [0, 0], [0, 0]])
    out = tf.reshape(tf.stack([even, odd], axis=2), [tf.shape(even)[0], 2 * tf.shape(even)[1], 2 * width, channels])
    return out if rows is None else out[:, :rows]


class Conv(tf.Module):
    """A conv with equalised learning rate: the kernel is scaled at run time, not at init.

    ``freeze()`` computes the scaled kernel (and ``upscale_conv``'s) once, for
    inference: re-deriving them from the variables at every call cost a
    full-size generator about 15 ms per clip (a 4 MB phase kernel per
    block-opening conv), as much for a short part as for the whole clip.
    """

    def __init__(self, kernel_shape, gain, name):
        super().__init__(name=name)
        fan_in = int(np.prod(kernel_shape[:-1]))
        self.scale = gain / math.sqrt(fan_in)
        self.kernel = tf.Variable(tf.random.normal(kernel_shape), name="kernel")
        self.bias = tf.Variable(tf.zeros(kernel_shape[-1:]), name="bias")
        self._frozen = None

    def freeze(self):
        """Use the weights as they are now from here on (they must not change afterwards)."""
        self._frozen = self._forms()

    def _forms(self):
        """The kernels inference uses, derived from the variables: the scaled kernel, the bias and
        ``upscale_conv``'s kernel where it applies."""
        scaled = self.kernel * self.scale
        return {"kernel": scaled, "bias": tf.identity(self.bias),
                "phases": upscale_conv_kernel(scaled) if self._fuses_upscale() else None}

    def _fuses_upscale(self):
        return tuple(self.kernel.shape[:2]) == (3, 3)

    def _weights(self):
        return self._frozen if self._frozen is not None else self._forms()

    def __call__(self, x, padding="SAME"):
        weights = self._weights()
        return tf.nn.conv2d(x, weights["kernel"], 1, padding) + weights["bias"]

    def first_rows(self, x, rows):
        """The first ``rows`` rows of ``self(x)``, from the first rows + k // 2 rows of x alone
        (k the kernel's odd height): zero padding above and at the sides as SAME pads them,
        none below, where the rows read are real ones. A short part's block keeps 3 to 10
        rows: computing one more, to throw it away, cost up to a quarter more."""
        height, width = self.kernel.shape[:2]
        if height % 2 == 0 or width % 2 == 0:
            return self(x)[:, :rows]
        weights = self._weights()
        half = height // 2
        padding = [[0, 0], [half, 0], [width // 2, width // 2], [0, 0]]
        return tf.nn.conv2d(x[:, :rows + half], weights["kernel"], 1, padding) + weights["bias"]

    def upscaled(self, x, factor, rows=None):
        """``self(upscale(x, factor))``, fused where the shapes allow it; ``rows``: at least
        its first ``rows`` rows (exactly those where fused, else all)."""
        if factor == 2 and self._fuses_upscale():
            weights = self._weights()
            return upscale_conv(x, weights["phases"], rows) + weights["bias"]
        return self(upscale(x, factor))


class InputConv(Conv):
    """Block 1's conv, which reads the [z, pitch] point.

    tfgan writes it as a VALID conv of the point zero-padded to (2h - 1, 2w - 1)
    for an h x w kernel. Every output position sees the point through exactly
    one tap (position (r, c) through tap (h-1-r, w-1-c)), so it is one matrix
    product with the kernel flipped: h*w times fewer multiply-adds (32 for
    GANSynth's 2x16), about 10 ms of a full-size clip.
    """

    def _forms(self):
        forms = super()._forms()
        h, w, channels, filters = self.kernel.shape
        flipped = tf.transpose(tf.reverse(forms["kernel"], [0, 1]), [2, 0, 1, 3])  # (channels, h, w, filters)
        forms["spread"] = tf.reshape(flipped, [channels, h * w * filters])
        return forms

    def _fuses_upscale(self):
        return False

    def spread(self, point):
        """The conv of ``point`` (n, channels), padded as tfgan pads it: (n, h, w, filters)."""
        weights = self._weights()
        h, w, _, filters = self.kernel.shape
        return tf.reshape(point @ weights["spread"], [-1, h, w, filters]) + weights["bias"]


class Generator(tf.Module):
    """Weights and forward pass; holds no model-loading or audio logic."""

    def __init__(self, config: ModelConfig, name="generator"):
        super().__init__(name=name)
        self.config = config
        self.layer_names = layer_names(config)
        he_gain = math.sqrt(2.0)  # he_initializer_slope 0
        rgb_gain = 1.0  # tfgan's to_rgb keeps the default slope 1: sqrt(2 / 2) = 1
        self.convs = []
        self.to_rgb = []
        for block in range(1, config.num_blocks + 1):
            shapes = config.kernel_shapes(block)
            conv0 = InputConv if block == 1 else Conv
            self.convs.append(conv0(shapes["conv0"], he_gain, name=f"block{block}_conv0"))
            self.convs.append(Conv(shapes["conv1"], he_gain, name=f"block{block}_conv1"))
            self.to_rgb.append(Conv(shapes["to_rgb"], rgb_gain, name=f"block{block}_to_rgb"))

    def freeze(self):
        """Precompute every conv's inference kernels from the weights as they are now (see
        ``Conv``); the weights must not change afterwards. Training never freezes."""
        for conv in self.convs + self.to_rgb:
            conv.freeze()

    def layer_index(self, name: str) -> int:
        try:
            return self.layer_names.index(name)
        except ValueError:
            raise ValueError(f"unknown layer {name!r}: the model's layers are "
                             f"{', '.join(self.layer_names)}") from None

    def layer_shape(self, name: str):
        index = self.layer_index(name)
        block = index // 2 + 1
        return (*self.config.block_shape(block), self.config.num_filters(block))

    def input_layer(self, z, one_hot):
        """z and one-hot pitch to the point, pixel-normalised, that block 1's conv reads."""
        if self.config.pitch_label_gain != 1.0:
            one_hot = one_hot * self.config.pitch_label_gain
        return pixel_norm(tf.concat([z, one_hot], axis=1))

    def apply_layer(self, index, x, rows=None):
        """Layer ``index``: its conv, leaky ReLU and pixel norm (and the upscale opening a block);
        ``rows``: at least the first ``rows`` rows of its output (exactly those, but for a
        block-opening conv that is not fused with its upscale)."""
        conv = self.convs[index]
        if index == 0:
            x = conv.spread(x)
        elif index % 2 == 0:
            x = conv.upscaled(x, self.config.scale_base, rows)
        elif rows is not None:
            x = conv.first_rows(x, rows)
        else:
            x = conv(x)
        return pixel_norm(tf.nn.leaky_relu(x, LEAKY_RELU_ALPHA))

    def rows_plan(self, rows):
        """How many rows of each block's output to compute so that the first ``rows`` rows of
        the last block's output come out exactly as in the whole forward pass.

        Rows are STFT frames and every op is local in time: a 3x3 conv's
        output row depends on the input rows next to it, so when its input is
        cut, only its last output row is wrong (it saw zero padding where the
        next row was). A block whose input is cut to r rows (2r once
        upscaled) therefore gets its first 2r - 2 rows right, and each earlier
        block needs ceil((needed + 2) / 2) rows. Returns one count per block,
        None for "all of them".
        """
        c = self.config
        halo = 2 * (c.kernel_size // 2)  # rows lost at the cut by the block's two convs
        plan = [None] * c.num_blocks
        if rows is None:
            return plan
        full = c.block_shape(c.num_blocks)[0]
        if not 1 <= rows <= full:
            raise ValueError(f"rows must be between 1 and {full}, got {rows}")
        needed = rows
        for block in range(c.num_blocks, 0, -1):
            if needed >= c.block_shape(block)[0]:
                break  # this block and every earlier one are needed whole
            plan[block - 1] = needed
            needed = -(-(needed + halo) // c.scale_base)
        return plan

    def run_layers(self, x, start, stop, plan=None):
        """Apply layers start..stop-1 to x (the output of layer start-1, or ``input_layer``'s point),
        cutting each block's output to ``plan`` (from ``rows_plan``): the output given
        at entry as well as each one made here."""
        x = self._cut(x, start - 1, plan)
        for index in range(start, stop):
            x = self._cut(self.apply_layer(index, x, self._kept_rows(index, plan)), index, plan)
        return x

    def _kept_rows(self, layer, plan):
        """How many rows of ``layer``'s output ``plan`` needs (None: all of them).

        A block's conv1 makes its output, the plan's rows; its conv0 feeds
        conv1, whose last needed row reads kernel_size // 2 rows further:
        conv0's output is needed that far below. Rows computed only to be
        thrown away cost as much as the kept ones (half the work in the middle
        blocks of a short part, where the upscale makes twice the rows needed).
        """
        if plan is None or layer < 0 or plan[layer // 2] is None:
            return None
        return plan[layer // 2] + (self.config.kernel_size // 2 if layer % 2 == 0 else 0)

    def _cut(self, x, layer, plan):
        """x, the output of ``layer`` (-1: the input), cut to what ``plan`` needs of it."""
        rows = self._kept_rows(layer, plan)
        return x if rows is None else x[:, :rows]

    def rgb(self, x, block):
        x = self.to_rgb[block - 1](x)
        return tf.tanh(x) if self.config.to_rgb_activation == "tanh" else x

    def denormalize(self, x):
        c = self.config
        a = tf.constant([c.mag_normalizer_a, c.p_normalizer_a], tf.float32)
        b = tf.constant([c.mag_normalizer_b, c.p_normalizer_b], tf.float32)
        return (x - b) / a

    def progressive_output(self, z, one_hot, progress, num_blocks=None):
        """Training-time output: every block's RGB, upscaled to full size and blended by progress.

        ``progress`` runs from 0 to num_resolutions - 1 as tfgan's does; at the
        end only the last block counts, which is what inference computes.
        """
        num_blocks = num_blocks or self.config.num_blocks
        x = self.input_layer(z, one_hot)
        outputs = []
        for block in range(1, num_blocks + 1):
            x = self.run_layers(x, 2 * block - 2, 2 * block)
            alpha = tf.maximum(0.0, tf.minimum(progress - (block - 2), block - progress))
            factor = self.config.scale_base ** (self.config.num_resolutions - block)
            outputs.append(upscale(self.rgb(x, block), factor) * alpha)
        return tf.add_n(outputs)

    def weights(self):
        """Name -> variable, in the checkpoint-independent naming our model format uses."""
        named = {}
        for index, conv in enumerate(self.convs):
            block, which = index // 2 + 1, f"conv{index % 2}"
            named[f"block{block}/{which}/kernel"] = conv.kernel
            named[f"block{block}/{which}/bias"] = conv.bias
        for block, conv in enumerate(self.to_rgb, start=1):
            named[f"block{block}/to_rgb/kernel"] = conv.kernel
            named[f"block{block}/to_rgb/bias"] = conv.bias
        return named

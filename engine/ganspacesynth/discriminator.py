"""GANSynth's progressive discriminator in TensorFlow 2, for training.

The mirror of ``generator.py``, as tfgan's progressive GAN and GANSynth's
``discriminator_fn_specgram`` build it: ``from_rgb`` (1x1 conv) at the input
resolution, blocks of two 3x3 convs with leaky ReLU and a 2x2 average-pool
downscale, the lower-resolution ``from_rgb`` path faded in during
transitions, then block 1 with the minibatch standard deviation channel, a
3x3 conv, a VALID conv over the whole 2x16 grid and two dense heads: the
realness score and the pitch classifier. Every weight uses the equalised
learning rate (stored unscaled, scaled by He's constant at run time) and the
discriminator has no pixel norm.

Unlike tfgan, which always feeds full-size (128x1024) images and pools them
down inside the network, ``__call__`` takes images at the resolution of the
current stage: nearest-neighbour upscaling followed by average pooling of the
same factor is the identity, so the scores are the same and the cost of the
low-resolution stages stays low. The one place where the size of the input
shows is the gradient penalty; the trainer corrects for it (see train.py).
"""

import math

import tensorflow as tf

from .config import ModelConfig
from .generator import LEAKY_RELU_ALPHA, Conv

MINIBATCH_STDDEV_EPSILON = 1e-6


def downscale(x, factor):
    """Box downscaling (tfgan's layers.downscale)."""
    if factor == 1:
        return x
    return tf.nn.avg_pool2d(x, factor, factor, "VALID")


def minibatch_stddev(x):
    """The mean over features of the standard deviation over the batch, one scalar."""
    _, variance = tf.nn.moments(x, axes=[0])
    return tf.reduce_mean(tf.sqrt(variance + MINIBATCH_STDDEV_EPSILON))


class Dense(tf.Module):
    """A dense layer with equalised learning rate."""

    def __init__(self, units_in, units_out, gain, name):
        super().__init__(name=name)
        self.scale = gain / math.sqrt(units_in)
        self.kernel = tf.Variable(tf.random.normal([units_in, units_out]), name="kernel")
        self.bias = tf.Variable(tf.zeros([units_out]), name="bias")

    def __call__(self, x):
        return tf.matmul(x, self.kernel * self.scale) + self.bias


class Discriminator(tf.Module):
    def __init__(self, config: ModelConfig, name="discriminator"):
        super().__init__(name=name)
        self.config = config
        he_gain = math.sqrt(2.0)
        k = config.kernel_size
        nf = self._filters
        self.from_rgb = [Conv([1, 1, 2, nf(block)], he_gain, name=f"block{block}_from_rgb")
                         for block in range(1, config.num_blocks + 1)]
        # convs[b - 1] = (conv0, conv1) of block b; block b > 1 ends with nf(b - 1) channels.
        self.convs = []
        for block in range(1, config.num_blocks + 1):
            if block == 1:
                conv0 = Conv([k, k, nf(1) + 1, nf(1)], he_gain, name="block1_conv0")
                conv1 = Conv([config.start_height, config.start_width, nf(1), nf(0)], he_gain,
                             name="block1_conv1")
            else:
                conv0 = Conv([k, k, nf(block), nf(block)], he_gain, name=f"block{block}_conv0")
                conv1 = Conv([k, k, nf(block), nf(block - 1)], he_gain, name=f"block{block}_conv1")
            self.convs.append((conv0, conv1))
        # tfgan's custom_dense keeps the default He slope of 1: gain sqrt(2 / 2) = 1.
        self.logits = Dense(nf(0), 1, 1.0, name="logits")
        self.classifier = Dense(nf(0), config.num_pitches, 1.0, name="classification_logits")

    def _filters(self, block):
        c = self.config
        return int(min(c.fmap_base / math.pow(2.0, block * c.fmap_decay), c.fmap_max))

    def __call__(self, x, progress, num_blocks, transition):
        """Realness scores (n,) and pitch logits (n, P) of images at block ``num_blocks``'s size.

        ``transition`` says whether the stage fades block ``num_blocks - 1``'s
        input path in (progress between num_blocks - 2 and num_blocks - 1);
        in a stable stage its weight is exactly zero and it is not computed.
        """
        act = lambda v: tf.nn.leaky_relu(v, LEAKY_RELU_ALPHA)  # noqa: E731
        scale = self.config.scale_base
        h = act(self.from_rgb[num_blocks - 1](x))
        for block in range(num_blocks, 1, -1):
            conv0, conv1 = self.convs[block - 1]
            h = act(conv0(h))
            h = act(conv1(h))
            h = downscale(h, scale)
            if transition and block == num_blocks:
                alpha = tf.clip_by_value(float(block - 1) - progress, 0.0, 1.0)
                lod = act(self.from_rgb[block - 2](downscale(x, scale)))
                h = alpha * lod + (1.0 - alpha) * h
        stddev = minibatch_stddev(h)
        h = tf.concat([h, tf.ones_like(h[..., :1]) * stddev], axis=-1)
        conv0, conv1 = self.convs[0]
        h = act(conv0(h))
        h = act(conv1(h, padding="VALID"))
        h = tf.reshape(h, [tf.shape(h)[0], -1])
        return self.logits(h)[:, 0], self.classifier(h)

    def block_variables(self, num_blocks, transition):
        """The variables the stage's forward pass depends on (the others get no gradient)."""
        variables = []
        for block in range(1, num_blocks + 1):
            for conv in self.convs[block - 1]:
                variables += [conv.kernel, conv.bias]
        rgb_blocks = [num_blocks - 1, num_blocks] if transition else [num_blocks]
        for block in rgb_blocks:
            variables += [self.from_rgb[block - 1].kernel, self.from_rgb[block - 1].bias]
        variables += [self.logits.kernel, self.logits.bias,
                      self.classifier.kernel, self.classifier.bias]
        return variables

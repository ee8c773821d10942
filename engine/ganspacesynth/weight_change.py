"""How far training moved each block's weights from where they started.

A block that a progressive run reached late, or an EMA that still remembers
its start, exports weights that are mostly their random initial values: the
block plays noise however good the losses looked. The trainer's initial
weights are a function of its seed alone (``tf.random.set_seed(seed)`` right
before the generator is built), so they can be rebuilt at any time and
compared with what training made of them.

The measure, per block: the share of its kernels that is *not* a multiple
of their initial value, by norm: ``|w - c w0| / |w|`` with ``c w0`` the
projection of ``w`` on ``w0``, over the block's conv and to_rgb kernels taken
together (``sin`` of the angle between ``w`` and ``w0``). 0 means the block
is its initial weights (or a scaled copy of them: a uniform shrink is not
learning); 1 means nothing of them is left. With an equalised learning rate
the kernels start at N(0, 1) and Adam moves each by about the learning rate
a step, so a block trained for a few thousand steps reads 0.05 to 0.4, and
a block left untrained reads 0.
"""

import numpy as np

from .config import ModelConfig


def initial_generator(config: ModelConfig, seed: int):
    """The generator exactly as a training run with ``seed`` starts it (see ``Trainer``)."""
    import tensorflow as tf

    from .generator import Generator

    tf.random.set_seed(seed)
    return Generator(config)


def share_not_initial(trained: np.ndarray, initial: np.ndarray) -> float:
    """sin of the angle between two kernels: the share of ``trained`` (by norm) not along ``initial``."""
    trained = np.asarray(trained, np.float64).ravel()
    initial = np.asarray(initial, np.float64).ravel()
    norms = np.dot(trained, trained) * np.dot(initial, initial)
    if norms == 0.0:
        return 1.0
    return float(np.sqrt(max(0.0, 1.0 - np.dot(trained, initial) ** 2 / norms)))


def kernel_change(generator, seed: int) -> dict:
    """Per block ("1".."N"): the share of its conv and to_rgb kernels that training made new."""
    start = initial_generator(generator.config, seed).weights()
    now = generator.weights()
    shares = {}
    for block in range(1, generator.config.num_blocks + 1):
        names = [f"block{block}/{layer}/kernel" for layer in ("conv0", "conv1", "to_rgb")]
        trained = np.concatenate([now[n].numpy().ravel() for n in names])
        initial = np.concatenate([start[n].numpy().ravel() for n in names])
        shares[str(block)] = float(f"{share_not_initial(trained, initial):.3g}")
    return shares

"""Training GANSynth models in TensorFlow 2: progressive growing, WGAN-GP, pitch classifier.

What ``ganspacesynth train DATASET OUT_DIR`` does, as Magenta's GANSynth
trainer did (``train_util.py``, ``model.py``, tfgan's progressive GAN):

* Progressive growing through ``2 * num_resolutions - 1`` stages, stable and
  transition alternately. During a transition the generator's output fades
  from the previous block's ``to_rgb`` to the new one's, the discriminator's
  input path fades in the same way, and the real spectrograms are blended
  between the two resolutions with the same weights.
* WGAN-GP: gradient penalty weight 10 (target norm 1) on random
  interpolations of real and fake, plus a drift penalty of 0.001 * D(real)^2.
* The auxiliary pitch classifier (AC-GAN): cross entropy of the
  discriminator's classification head, weight 10, on real clips for D and on
  generated clips (labels drawn in the dataset's proportions) for G.
* Adam (lr 8e-4, beta1 0, beta2 0.99, epsilon 1e-8, TF1's update rule), one
  discriminator step then one generator step per training step. Magenta built
  a new graph per stage, so the optimisers' moments restart at every stage;
  so do they here.
* An exponential moving average (0.999) of the generator's weights, updated
  after every generator step. The EMA weights are what gets exported, as
  Magenta generates with them.
* Data: the dataset's clips as GANSynth mel spectrograms, normalised with the
  model's constants (``x * a + b`` per channel). Pitch label = index of the
  clip's pitch in the dataset's sorted distinct pitches; the pitch list goes
  into the exported model's config.

Everything runs at the resolution of the current stage rather than at full
size (tfgan upscales every output to 128x1024 and the discriminator pools it
down again, which changes nothing but the cost). The gradient penalty is the
exception: tfgan measures the gradient with respect to the full-size image,
whose norm is the low-resolution norm divided by the pooling factor, so the
norm is divided by that factor here too. Likewise Magenta's discriminator
takes denormalised spectrograms and normalises them itself, so the gradient
it penalises is the one in normalised units times the normaliser's ``a``.

Reproducibility and resuming: the data order follows the number of images
seen and every random draw (noise, labels, interpolation weights) comes from
``(seed, step)``, never from process state, so a run stopped and resumed
from a checkpoint ends exactly where an uninterrupted run with the same seed
ends. Checkpoints (generator, discriminator, EMA, both optimisers, counters)
live in ``OUT_DIR/train/``; rerunning the same command continues from the
newest one. TensorBoard scalars go to ``OUT_DIR/logs/``; the exported model
(ganspacesynth's format, EMA weights) to ``OUT_DIR/model/``.
"""

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import List, Optional

import numpy as np

from .config import ModelConfig
from .errors import GanspacesynthError
from .health import DEFAULT_WINDOW, HealthWatch
from .quiet import hide_retracing_warning

log = logging.getLogger(__name__)

TRAIN_DIR = "train"
LOGS_DIR = "logs"
MODEL_DIR = "model"
RUN_FILE = "run.json"
# Inside TRAIN_DIR: the newest checkpoint saved while the run was healthy,
# and the loss curves drawn from the logs.
GOOD_DIR = "healthy"
LOSS_CURVES_FILE = "loss_curves.png"


class TrainError(GanspacesynthError):
    """Bad training settings, a dataset that cannot be trained on, or a run that cannot resume."""


@dataclasses.dataclass
class TrainConfig:
    """Training settings; the defaults are those of Magenta's released models."""

    # Batch size per resolution (padded at the front with its first entry, as Magenta does).
    batch_size_schedule: List[int] = dataclasses.field(default_factory=lambda: [8])
    stable_stage_images: int = 800_000
    transition_stage_images: int = 800_000
    # Training ends here, in the last (stable) stage.
    total_images: int = 11_000_000
    # Optional images per stage (2 * num_resolutions - 1 numbers): overrides the three above.
    stage_images: Optional[List[int]] = None
    gradient_penalty_weight: float = 10.0
    gradient_penalty_target: float = 1.0
    # "stage": the gradient with respect to what the discriminator sees, at
    # the stage's resolution. "magenta": with respect to the full-size,
    # denormalised spectrogram, as GANSynth measured it; that gradient is the
    # stage's divided by the pooling factor (up to 64) and by the normaliser
    # (0.066 for magnitudes), so at low resolutions the penalty asks the
    # critic for slopes hundreds of times steeper than at full size, and on
    # CPU-length runs its scores ran away (drift 10^5; tests/test_train.py
    # measures both).
    gradient_penalty_space: str = "stage"
    real_score_penalty_weight: float = 0.001
    generator_ac_loss_weight: float = 10.0
    discriminator_ac_loss_weight: float = 10.0
    # How the critic judges pitch. "classifier" (Magenta's AC-GAN): a head
    # that learns the label of real clips only, which the generator is then
    # rewarded for satisfying. On the default model's notes the generator
    # found clips that head read as their label every time (accuracy 1.00 at
    # 32x256) while pYIN heard no such pitch: the head was fooled, not
    # satisfied. "projection" also adds the head's logit of the clip's label
    # to the critic's score (Miyato and Koyama's projection discriminator),
    # so that the critic compares real and generated notes of one pitch and
    # features that only fool the head should stop paying. Not yet measured
    # on a whole run; switched on in the middle of one, the logits the head
    # had grown sent the critic's loss to 10^3 at once, so it is for new runs.
    pitch_critic: str = "classifier"
    generator_learning_rate: float = 8e-4
    discriminator_learning_rate: float = 8e-4
    # Optional Adam learning rate of G and D per stage (2 * num_resolutions
    # - 1 numbers): overrides the two above. The critic of a small model
    # pulls ahead of the generator a little more at every resolution; a
    # lower rate at the top stages keeps it in reach, though one too low
    # leaves the top blocks near their random start (2e-4 did, on the
    # default model's notes).
    stage_learning_rates: Optional[List[float]] = None
    adam_beta1: float = 0.0
    adam_beta2: float = 0.99
    adam_epsilon: float = 1e-8
    ema_decay: float = 0.999
    seed: int = 0

    def __post_init__(self):
        if self.gradient_penalty_space not in ("magenta", "stage"):
            raise TrainError(f"gradient_penalty_space {self.gradient_penalty_space!r}: "
                             "choose 'magenta' or 'stage'")
        if self.pitch_critic not in ("classifier", "projection"):
            raise TrainError(f"pitch_critic {self.pitch_critic!r}: choose 'classifier' or 'projection'")

    def stage_ends(self, num_resolutions):
        """Cumulative image counts at which each of the 2R - 1 stages ends."""
        num_stages = 2 * num_resolutions - 1
        if self.stage_images is not None:
            if len(self.stage_images) == 1:
                return [int(self.stage_images[0]) * (stage + 1) for stage in range(num_stages)]
            if len(self.stage_images) != num_stages:
                raise TrainError(f"stage_images has {len(self.stage_images)} entries; "
                                 f"{num_resolutions} resolutions make {num_stages} stages")
            if any(int(n) < 0 for n in self.stage_images) or sum(self.stage_images) <= 0:
                raise TrainError("stage_images must be counts >= 0 with a positive sum")
            return [int(n) for n in np.cumsum(self.stage_images)]
        ends = []
        for stage in range(num_stages):
            end = ((stage // 2 + 1) * self.stable_stage_images
                   + ((stage + 1) // 2) * self.transition_stage_images)
            if stage == num_stages - 1:
                end = self.total_images
            ends.append(min(end, self.total_images))
        return ends

    def learning_rates(self, stage, num_resolutions):
        """(generator, discriminator) Adam learning rates in ``stage``."""
        rates = self.stage_learning_rates
        if rates is None:
            return self.generator_learning_rate, self.discriminator_learning_rate
        if len(rates) != 2 * num_resolutions - 1:
            raise TrainError(f"stage_learning_rates has {len(rates)} entries; {num_resolutions} "
                             f"resolutions make {2 * num_resolutions - 1} stages")
        if not all(float(rate) > 0 for rate in rates):
            raise TrainError("stage_learning_rates must all be positive")
        return float(rates[stage]), float(rates[stage])

    def batch_size(self, stage, num_resolutions):
        schedule = list(self.batch_size_schedule)
        if len(schedule) < num_resolutions:
            schedule = [schedule[0]] * (num_resolutions - len(schedule)) + schedule
        return int(schedule[(stage + 1) // 2])

    def to_json(self):
        return dataclasses.asdict(self)


# The image counts (and learning rates) of the stages: a resumed run may
# change them for the stages it has not finished (to extend or shorten a run).
SCHEDULE_KEYS = ("stage_images", "stable_stage_images", "transition_stage_images", "total_images",
                 "stage_learning_rates")

PRESETS = {
    # Magenta's released mel_prog_hires models.
    "gansynth": {"model": {}, "train": {}},
    # A model two CPU cores train in a few hours and that runs in real time:
    # GANSynth's structure (2x16 start, 7 resolutions, 128x1024x2 output)
    # with 32 channels at most. Low resolutions are cheap, so they get many
    # images; the two top stages, where pitch becomes resolvable, get 2,600
    # and 1,800 steps, with an EMA that forgets in about 200 (see
    # TrainConfig), so that their exported weights end far from their
    # initial values.
    "cpu-small": {
        # pitch_label_gain 48: with Magenta's 1 the clips of this small model
        # ignored their pitch label (no harmonic comb after 5,500 steps at
        # 16x128; the critic's lead 7.6) where 48 drew combs at the label's
        # spacing (lead 2.0), in runs on the default model's notes.
        "model": {"fmap_base": 1024, "fmap_max": 32, "pitch_label_gain": 48.0},
        "train": {"batch_size_schedule": [8],
                  "stage_images": [40000, 20000, 30000, 15000, 20000, 16000, 16000,
                                   12000, 12000, 8000, 12800, 4800, 9600],
                  "ema_decay": 0.995},
    },
}


def split_settings(settings: dict):
    """Sort flat or ``{"model": ..., "train": ...}`` settings into the two dataclasses' keys."""
    model_keys = {f.name for f in dataclasses.fields(ModelConfig)}
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    model, train = {}, {}
    for key, value in settings.items():
        if key in ("model", "train") and isinstance(value, dict):
            sub_model, sub_train = split_settings(value)
            model.update(sub_model)
            train.update(sub_train)
        elif key in model_keys and key != "pitches":
            model[key] = value
        elif key in train_keys:
            train[key] = value
        else:
            raise TrainError(f"unknown training setting {key!r}")
    return model, train


def make_configs(preset="gansynth", settings=None, overrides=None):
    """(model settings dict, TrainConfig) from a preset, a settings dict (--config) and overrides."""
    if preset not in PRESETS:
        raise TrainError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    model = dict(PRESETS[preset]["model"])
    train = dict(PRESETS[preset]["train"])
    for source in (settings or {}), (overrides or {}):
        m, t = split_settings(source)
        model.update(m)
        if any(k in t for k in ("stable_stage_images", "transition_stage_images", "total_images")):
            train.pop("stage_images", None)
        train.update(t)
    try:
        train_config = TrainConfig(**train)
        config = ModelConfig(**model)
    except TypeError as error:
        raise TrainError(f"bad training settings: {error}") from None
    smallest = min(config.num_filters(block) for block in range(1, config.num_blocks + 1))
    if smallest < 1:
        raise TrainError(f"fmap_base {config.fmap_base} leaves block {config.num_blocks} without "
                         f"filters: it needs fmap_base >= {2 ** config.num_blocks}")
    return model, train_config


# --- data --------------------------------------------------------------------

def _downscale_np(x, factor):
    if factor == 1:
        return x
    n, h, w, c = x.shape
    return x.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def _upscale_np(x, factor):
    if factor == 1:
        return x
    return np.repeat(np.repeat(x, factor, axis=1), factor, axis=2)


class Data:
    """The dataset as normalised spectrograms, with the label set and the batches of each step."""

    def __init__(self, dataset_dir, model_config: ModelConfig, seed: int):
        from .data import load_dataset
        from .spectral import waves_to_specgrams

        waves, pitches, names = load_dataset(dataset_dir)
        if len(names) == 0:
            raise TrainError(f"{dataset_dir}: the dataset has no clips")
        if waves.shape[1] != model_config.audio_length:
            raise TrainError(f"{dataset_dir}: clips of {waves.shape[1]} samples; the model "
                             f"expects {model_config.audio_length}")
        self.pitches = sorted({int(p) for p in pitches})
        index = {p: i for i, p in enumerate(self.pitches)}
        self.labels = np.array([index[int(p)] for p in pitches], np.int32)
        counts = np.bincount(self.labels, minlength=len(self.pitches)).astype(np.float64)
        self.label_probs = counts / counts.sum()
        self.names = list(names)
        c = model_config
        specgrams = np.empty((len(waves), *c.output_shape), np.float32)
        for first in range(0, len(waves), 32):
            specgrams[first:first + 32] = waves_to_specgrams(waves[first:first + 32])
        specgrams[..., 0] = specgrams[..., 0] * c.mag_normalizer_a + c.mag_normalizer_b
        specgrams[..., 1] = specgrams[..., 1] * c.p_normalizer_a + c.p_normalizer_b
        self.specgrams = specgrams
        self.seed = seed
        self._stage_cache = (None, None)

    def __len__(self):
        return len(self.labels)

    def stage_images(self, num_blocks, transition, config: ModelConfig):
        """The clips at block ``num_blocks``'s resolution, and (transition) one block lower, upscaled."""
        key = (num_blocks, transition)
        if self._stage_cache[0] != key:
            self._stage_cache = (None, None)  # free the previous stage's copies first
            factor = config.scale_base ** (config.num_resolutions - num_blocks)
            high = _downscale_np(self.specgrams, factor)
            low = (_upscale_np(_downscale_np(high, config.scale_base), config.scale_base)
                   if transition else None)
            self._stage_cache = (key, (high, low))
        return self._stage_cache[1]

    def clip_indices(self, first_image, count):
        """Clips first_image..first_image+count-1 of the endless stream: a new shuffle every epoch."""
        n = len(self.labels)
        positions = np.arange(first_image, first_image + count, dtype=np.int64)
        out = np.empty(count, np.int64)
        for epoch in np.unique(positions // n):
            order = np.random.default_rng([self.seed, 1, int(epoch)]).permutation(n)
            mask = positions // n == epoch
            out[mask] = order[positions[mask] % n]
        return out


def step_noise(seed, step, batch_size, latent_size, label_probs):
    """Every random draw of one training step, a function of (seed, step) only."""
    rng = np.random.default_rng([seed, 2, int(step)])
    num_labels = len(label_probs)
    return {
        "z_d": rng.standard_normal((batch_size, latent_size)).astype(np.float32),
        "labels_d": rng.choice(num_labels, size=batch_size, p=label_probs).astype(np.int32),
        "eps": rng.uniform(size=(batch_size,)).astype(np.float32),
        "z_g": rng.standard_normal((batch_size, latent_size)).astype(np.float32),
        "labels_g": rng.choice(num_labels, size=batch_size, p=label_probs).astype(np.int32),
    }


# --- schedule ----------------------------------------------------------------

class Schedule:
    def __init__(self, train_config: TrainConfig, model_config: ModelConfig):
        self.num_resolutions = model_config.num_resolutions
        self.ends = train_config.stage_ends(self.num_resolutions)
        self.train_config = train_config

    @property
    def num_stages(self):
        return len(self.ends)

    @property
    def total_images(self):
        return self.ends[-1]

    def stage_of(self, images_seen):
        """The stage that the next step trains in (the last one once training is done)."""
        for stage, end in enumerate(self.ends):
            if images_seen < end:
                return stage
        return self.num_stages - 1

    def start_of(self, stage):
        return self.ends[stage - 1] if stage > 0 else 0

    @staticmethod
    def num_blocks(stage):
        return (stage + 1) // 2 + 1

    @staticmethod
    def is_transition(stage):
        return stage % 2 == 1

    def progress(self, images_seen):
        """tfgan's progress: p in stable stage p, p + fraction during the transition to p + 1."""
        stage = self.stage_of(images_seen)
        base = float(stage // 2)
        if not self.is_transition(stage):
            return base
        start, end = self.start_of(stage), self.ends[stage]
        return base + min(1.0, max(0.0, (images_seen - start) / max(1, end - start)))

    def batch_size(self, stage):
        return self.train_config.batch_size(stage, self.num_resolutions)


def generator_alpha(block, progress):
    """Weight of block ``block``'s output (tfgan): a triangle peaking at progress = block - 1."""
    return max(0.0, min(progress - (block - 2), block - progress))


# --- optimiser and EMA -------------------------------------------------------

class Adam:
    """TF1's Adam update (bias correction folded into the step size), with resettable moments.

    Updates run in cross-replica context on the reduced gradients, so the same
    code serves one device and tf.distribute strategies.
    """

    def __init__(self, variables, learning_rate, beta1, beta2, epsilon):
        import tensorflow as tf

        self.learning_rate, self.beta1, self.beta2, self.epsilon = learning_rate, beta1, beta2, epsilon
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False, name="m") for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False, name="v") for v in variables]
        self._slot = {id(v): i for i, v in enumerate(variables)}

    def checkpointables(self):
        return {"iterations": self.iterations, "m": self.m, "v": self.v}

    def apply(self, grads, variables, learning_rate=None):
        import tensorflow as tf

        t = tf.cast(self.iterations.assign_add(1), tf.float32)
        learning_rate = self.learning_rate if learning_rate is None else learning_rate
        lr = learning_rate * tf.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t)
        for grad, var in zip(grads, variables):
            i = self._slot[id(var)]
            m = self.m[i].assign(self.beta1 * self.m[i] + (1.0 - self.beta1) * grad)
            v = self.v[i].assign(self.beta2 * self.v[i] + (1.0 - self.beta2) * tf.square(grad))
            var.assign_sub(lr * m / (tf.sqrt(v) + self.epsilon))

    def reset(self):
        import tensorflow as tf

        self.iterations.assign(0)
        for slot in self.m + self.v:
            slot.assign(tf.zeros_like(slot))


def _generator_variables(generator):
    return [v for _, v in sorted(generator.weights().items())]


def _generator_stage_variables(generator, num_blocks, transition):
    variables = []
    for index in range(2 * num_blocks):
        variables += [generator.convs[index].kernel, generator.convs[index].bias]
    for block in ([num_blocks - 1, num_blocks] if transition else [num_blocks]):
        variables += [generator.to_rgb[block - 1].kernel, generator.to_rgb[block - 1].bias]
    return variables


def stage_output(generator, z, one_hot, progress, num_blocks, transition):
    """The generator's training output at block ``num_blocks``'s resolution.

    tfgan's blend of every block's ``to_rgb`` (``Generator.progressive_output``),
    computed at the stage's size and without the blocks whose weight is zero
    throughout the stage.
    """
    import tensorflow as tf

    from .generator import upscale

    x = generator.input_layer(z, one_hot)
    x_previous = None
    for block in range(1, num_blocks + 1):
        x_previous = x
        x = generator.run_layers(x, 2 * block - 2, 2 * block)
    out = generator.rgb(x, num_blocks)
    if transition:
        alpha = tf.clip_by_value(progress - (num_blocks - 2), 0.0, 1.0)
        low = upscale(generator.rgb(x_previous, num_blocks - 1), generator.config.scale_base)
        out = alpha * out + (1.0 - alpha) * low
    return out


# --- time left ----------------------------------------------------------------

def step_cost(config: ModelConfig, num_blocks, batch_size):
    """Multiply-adds of one training step at a stage, up to a constant factor.

    Convs of G and D up to the stage's block; the discriminator runs on real,
    fake and interpolated images and twice more for the gradient penalty, so
    it weighs about three times the generator.
    """
    nf = config.num_filters
    total = 0.0
    for block in range(1, num_blocks + 1):
        h, w = config.block_shape(block)
        if block == 1:
            g = h * w * (config.start_height * config.start_width
                         * (config.latent_size + config.num_pitches) * nf(1) + 9 * nf(1) ** 2)
            d = h * w * (9 * (nf(1) + 1) * nf(1)) + nf(1) * h * w * min(config.fmap_base, config.fmap_max)
        else:
            g = h * w * 9 * (nf(block - 1) * nf(block) + nf(block) ** 2)
            d = h * w * 9 * (nf(block) ** 2 + nf(block) * nf(block - 1))
        total += g + 3 * d
    return total * batch_size


class TimeLeft:
    """Seconds per unit of cost, measured on the recent steps, times the cost still to come."""

    def __init__(self, schedule: "Schedule", config: ModelConfig):
        self.schedule = schedule
        self.costs = [step_cost(config, schedule.num_blocks(s), schedule.batch_size(s))
                      for s in range(schedule.num_stages)]
        self.seconds_per_cost = None
        self.stage = None
        self.steps_in_stage = 0

    def observe(self, stage, seconds):
        if stage != self.stage:
            self.stage, self.steps_in_stage = stage, 0
        self.steps_in_stage += 1
        if self.steps_in_stage <= 2:  # building the stage's graph
            return
        rate = seconds / self.costs[stage]
        self.seconds_per_cost = rate if self.seconds_per_cost is None else (
            0.98 * self.seconds_per_cost + 0.02 * rate)

    def seconds(self, images_seen):
        if self.seconds_per_cost is None:
            return None
        left = 0.0
        for stage, end in enumerate(self.schedule.ends):
            start = max(self.schedule.start_of(stage), images_seen)
            if end > start:
                steps = (end - start) / self.schedule.batch_size(stage)
                left += steps * self.costs[stage] * self.seconds_per_cost
        return left

    def text(self, images_seen):
        seconds = self.seconds(images_seen)
        if seconds is None:
            return "?"
        minutes = int(round(seconds / 60))
        return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


# --- summaries without the TensorBoard package ---------------------------------

def _scalar_metadata():
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    return metadata.SerializeToString()


# --- the trainer ---------------------------------------------------------------

def _make_strategy(name):
    import tensorflow as tf

    if name in (None, "default", "none"):
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_physical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        # Without GPUs MirroredStrategy would use one CPU device; use every
        # logical CPU device instead (see --cpu-devices).
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices,
                                              cross_device_ops=tf.distribute.ReductionToOneDevice())
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise TrainError(f"unknown strategy {name!r}: choose default, mirrored or multiworker")


def configure_devices(cpu_devices=None, threads=None):
    """Split the CPU into logical devices and cap TF's threads; only before TensorFlow starts work."""
    import tensorflow as tf

    try:
        if cpu_devices and cpu_devices > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(cpu_devices)])
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError as error:
        raise TrainError(f"cannot configure devices after TensorFlow has started ({error})") from None


@contextlib.contextmanager
def _stop_requests():
    """While training: Ctrl-C (SIGINT) or SIGTERM asks the loop to stop after the step in
    hand, so the checkpoint it then saves holds whole steps and resuming is exact.

    Yields a function returning the signal's name once one arrived (else None).
    A second Ctrl-C interrupts at once, as usual. Outside the main thread,
    where Python cannot install handlers, nothing changes.
    """
    received = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return

    def request(signum, frame):
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        received.append(signal.Signals(signum).name)
        log.warning("%s: stopping after this step and saving; press Ctrl-C again to abandon it",
                    received[-1])

    previous = {sig: signal.signal(sig, request) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: received[0] if received else None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Trainer:
    def __init__(self, dataset_dir, out_dir, model_settings: dict, train_config: TrainConfig,
                 strategy="default", save_every=600.0, summary_every=20, progress_bar=True,
                 command=None, stop_on_divergence=False, health_window=DEFAULT_WINDOW,
                 init_from=None):
        import tensorflow as tf

        hide_retracing_warning()  # each stage has its own graph by design
        self.out_dir = Path(out_dir)
        self.dataset_dir = Path(dataset_dir)
        self.train_config = train_config
        self.save_every = float(save_every)
        self.summary_every = int(summary_every)
        self.progress_bar = progress_bar
        self.command = command
        self.stop_on_divergence = bool(stop_on_divergence)
        self.init_from = init_from
        self.watch = HealthWatch(window=health_window)
        # Set when the run stopped on divergence: where, why, and the step it went back to.
        self.diverged = None
        # Set when Ctrl-C or SIGTERM stopped the run: the signal's name.
        self.interrupted = None
        self._writer = None
        self.strategy = _make_strategy(strategy)
        self.strategy_name = strategy or "default"
        self.num_replicas = self.strategy.num_replicas_in_sync
        self.data = Data(self.dataset_dir, ModelConfig(**model_settings), train_config.seed)
        self.model_config = ModelConfig(**{**model_settings, "pitches": self.data.pitches})
        self.schedule = Schedule(train_config, self.model_config)
        for stage in range(self.schedule.num_stages):
            if self.schedule.batch_size(stage) % self.num_replicas:
                raise TrainError(f"batch size {self.schedule.batch_size(stage)} does not split "
                                 f"over {self.num_replicas} replicas")
        self.is_chief = self._is_chief()
        self._check_run_file()

        from .discriminator import Discriminator
        from .generator import Generator

        tc = train_config
        tf.random.set_seed(tc.seed)  # initial weights only; training draws from (seed, step)
        with self.strategy.scope():
            self.generator = Generator(self.model_config)
            self.discriminator = Discriminator(self.model_config)
            self.ema = Generator(self.model_config, name="generator_ema")
            for target, source in zip(_generator_variables(self.ema), _generator_variables(self.generator)):
                target.assign(source)
            self.g_vars = _generator_variables(self.generator)
            self.ema_vars = _generator_variables(self.ema)
            self.d_vars = list(self.discriminator.trainable_variables)
            self.g_opt = Adam(self.g_vars, tc.generator_learning_rate, tc.adam_beta1, tc.adam_beta2,
                              tc.adam_epsilon)
            self.d_opt = Adam(self.d_vars, tc.discriminator_learning_rate, tc.adam_beta1,
                              tc.adam_beta2, tc.adam_epsilon)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.images_seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="images_seen")
            self.stage = tf.Variable(-1, dtype=tf.int64, trainable=False, name="stage")
            self.seed = tf.Variable(tc.seed, dtype=tf.int64, trainable=False, name="seed")
            # Wall-clock time spent training, summed over resumptions.
            self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="train_seconds")
        self.checkpoint = tf.train.Checkpoint(
            generator=self.generator, discriminator=self.discriminator, generator_ema=self.ema,
            g_optimizer=self.g_opt.checkpointables(), d_optimizer=self.d_opt.checkpointables(),
            step=self.step, images_seen=self.images_seen, stage=self.stage, seed=self.seed,
            train_seconds=self.train_seconds)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self._checkpoint_dir(), max_to_keep=2)
        # A second copy of the newest checkpoint saved while the run was
        # healthy: the two regular ones may both be from a diverging stretch.
        self.good_manager = tf.train.CheckpointManager(
            self.checkpoint, str(Path(self._checkpoint_dir()) / GOOD_DIR), max_to_keep=1)
        self._step_functions = {}
        self.last_losses = {}
        self.done = False

    # --- files ---------------------------------------------------------------
    def _is_chief(self):
        resolver = getattr(self.strategy, "cluster_resolver", None)
        if resolver is None or not resolver.cluster_spec().as_dict():
            return True
        task_type, task_id = resolver.task_type, resolver.task_id
        return task_type in (None, "chief") or (task_type == "worker" and task_id == 0
                                                and "chief" not in resolver.cluster_spec().as_dict())

    def _checkpoint_dir(self):
        if self.is_chief:
            return str(self.out_dir / TRAIN_DIR)
        # Every worker must write its checkpoint (collective ops), but only the
        # chief's is kept.
        resolver = self.strategy.cluster_resolver
        return str(self.out_dir / TRAIN_DIR / f".worker_{resolver.task_type}_{resolver.task_id}")

    def run_description(self):
        return {"model": self.model_config.to_json(), "train": self.train_config.to_json(),
                "dataset": {"path": str(self.dataset_dir), "clips": len(self.data),
                            "pitches": self.data.pitches}}

    def _check_run_file(self):
        """Refuse to resume a run with other settings, except for stages still to come."""
        path = self.out_dir / TRAIN_DIR / RUN_FILE
        description = self.run_description()
        self._stored_plan = None
        if path.is_file():
            stored = json.loads(path.read_text())
            differences = []
            # Settings added after the run started count with their defaults.
            defaults = {"model": ModelConfig().to_json(), "train": TrainConfig().to_json()}
            for section in ("model", "train"):
                stored[section] = {**defaults[section], **stored[section]}
                for key in sorted(set(stored[section]) | set(description[section])):
                    if section == "train" and key in SCHEDULE_KEYS:
                        continue
                    if stored[section].get(key) != description[section].get(key):
                        differences.append(f"{key}: {stored[section].get(key)!r} -> "
                                           f"{description[section].get(key)!r}")
            if differences:
                raise TrainError(f"{self.out_dir} holds a run with other settings ({'; '.join(differences)}); "
                                 "resume it with the same settings or train into a new folder")
            old_plan = self._stage_plan(TrainConfig(**stored["train"]))
            if old_plan != self._stage_plan(self.train_config):
                self._stored_plan = old_plan
                self._stored_description = stored
        elif self.is_chief:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(description, indent=2) + "\n")

    def _stage_plan(self, train_config):
        """Per stage: (the image count at which it ends, its G and D learning rates)."""
        r = self.model_config.num_resolutions
        return [(end, *train_config.learning_rates(stage, r))
                for stage, end in enumerate(train_config.stage_ends(r))]

    def _accept_schedule_change(self):
        """A new schedule may change the stage in progress and later ones, not those already trained."""
        old_plan, new_plan = self._stored_plan, self._stage_plan(self.train_config)
        old, new = [p[0] for p in old_plan], [p[0] for p in new_plan]
        images = int(self.images_seen.numpy())
        stage = next((k for k, end in enumerate(old) if images < end), len(old) - 1)
        if old_plan[:stage] != new_plan[:stage] or new[stage] < images:
            raise TrainError(
                f"{self.out_dir}: the run has seen {images} images (stage {stage + 1}); a new "
                f"schedule may only change the images and learning rates of that stage and later "
                f"ones, and not end that stage before {images} (stage ends were {old}, now {new}; "
                f"learning rates {[p[1:] for p in old_plan]}, now {[p[1:] for p in new_plan]})")
        if self.is_chief:
            description = self.run_description()
            history = self._stored_description.get("schedule_changes", [])
            history.append({"at_images": images, "stage_ends_before": old, "stage_ends_after": new})
            description["schedule_changes"] = history
            if "initialised_from" in self._stored_description:
                description["initialised_from"] = self._stored_description["initialised_from"]
            (self.out_dir / TRAIN_DIR / RUN_FILE).write_text(json.dumps(description, indent=2) + "\n")
        log.info("schedule changed at %d images: stage ends %s -> %s", images, old, new)

    def restore(self):
        latest = self.manager.latest_checkpoint
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            if int(self.seed.numpy()) != self.train_config.seed:
                raise TrainError(f"{latest} was trained with seed {int(self.seed.numpy())}, "
                                 f"not {self.train_config.seed}")
            log.info("resumed from %s at step %d", latest, int(self.step.numpy()))
        elif self.init_from is not None:
            self._start_from(self.init_from)
        if self._stored_plan is not None:
            self._accept_schedule_change()
        return latest

    def _start_from(self, source):
        """A new run that begins where another run's checkpoint stood, with this run's settings."""
        import tensorflow as tf

        source = Path(source)
        found = tf.train.latest_checkpoint(str(source)) if source.is_dir() else str(source)
        if found is None and source.is_dir() and (source / TRAIN_DIR).is_dir():
            found = tf.train.latest_checkpoint(str(source / TRAIN_DIR))
        if found is None or not Path(found + ".index").is_file():
            raise TrainError(f"--init-from {source}: no checkpoint there (give a run folder, its "
                             "train/ or train/healthy/ folder, or a checkpoint prefix)")
        try:
            self.checkpoint.restore(found).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            raise TrainError(f"--init-from {found}: it does not fit this model ({error})") from None
        self.seed.assign(self.train_config.seed)  # the new run draws its own noise from here on
        origin = {"checkpoint": str(found), "step": int(self.step.numpy()),
                  "images_seen": int(self.images_seen.numpy())}
        if self.is_chief:
            path = self.out_dir / TRAIN_DIR / RUN_FILE
            description = json.loads(path.read_text())
            description["initialised_from"] = origin
            path.write_text(json.dumps(description, indent=2) + "\n")
        self.manager.save(checkpoint_number=origin["step"])
        log.info("new run started from %s at step %d", found, origin["step"])

    def save(self):
        step = int(self.step.numpy())
        self.manager.save(checkpoint_number=step)
        if self.watch.judged_healthy:
            self.good_manager.save(checkpoint_number=step)
        self.draw_loss_curves()

    def draw_loss_curves(self):
        """Redraw TRAIN_DIR/loss_curves.png from the logs; a failure only warns."""
        if not self.is_chief:
            return None
        from .loss_curves import plot_loss_curves

        try:
            if self._writer is not None:
                self._writer.flush()
            return plot_loss_curves(self.out_dir / LOGS_DIR, self.out_dir / TRAIN_DIR / LOSS_CURVES_FILE,
                                    title=f"{self.out_dir.name}: step {int(self.step.numpy())}")
        except Exception as error:  # a picture is never worth a training run
            log.warning("could not draw the loss curves: %s", error)
            return None

    def _stop_at_last_healthy(self, step, verdict):
        """Go back to the newest healthy checkpoint and make it the run's newest one."""
        healthy = self.good_manager.latest_checkpoint
        if not healthy:
            raise TrainError(f"step {step}: the run diverged ({verdict.describe()}) before any "
                             "healthy checkpoint was saved")
        self.checkpoint.restore(healthy).assert_existing_objects_matched()
        restored = int(self.step.numpy())
        self.diverged = {"detected_at_step": step, "reason": verdict.describe(),
                         "restored_step": restored, "restored_images": int(self.images_seen.numpy())}
        if self.is_chief:
            self.manager.save(checkpoint_number=restored)
            (self.out_dir / TRAIN_DIR / "diverged.json").write_text(json.dumps(self.diverged, indent=2) + "\n")
        log.warning("step %d: the run diverged (%s); stopped and went back to step %d, the last "
                    "healthy checkpoint", step, verdict.describe(), restored)

    # --- one training step -----------------------------------------------------
    def _step_function(self, stage):
        if stage in self._step_functions:
            return self._step_functions[stage]
        import tensorflow as tf

        num_blocks = self.schedule.num_blocks(stage)
        transition = self.schedule.is_transition(stage)
        tc = self.train_config
        c = self.model_config
        generator, discriminator = self.generator, self.discriminator
        g_vars = _generator_stage_variables(generator, num_blocks, transition)
        d_vars = discriminator.block_variables(num_blocks, transition)
        strategy = self.strategy
        replicas = self.num_replicas
        # tfgan penalises the gradient with respect to the full-size image.
        gp_scale = float(c.scale_base ** (c.num_resolutions - num_blocks))
        # ... and of the denormalised spectrogram (Magenta's discriminator
        # normalises its input itself), which scales each channel by its a.
        gp_channel_scale = tf.constant([c.mag_normalizer_a, c.p_normalizer_a], tf.float32)
        if tc.gradient_penalty_space == "stage":
            gp_scale, gp_channel_scale = 1.0, tf.constant([1.0, 1.0], tf.float32)
        zero = tf.UnconnectedGradients.ZERO
        g_rate, d_rate = tc.learning_rates(stage, c.num_resolutions)

        def local(x):
            ctx = tf.distribute.get_replica_context()
            per = tf.shape(x)[0] // replicas
            return x[ctx.replica_id_in_sync_group * per:(ctx.replica_id_in_sync_group + 1) * per]

        projection = tc.pitch_critic == "projection"

        def critic(images, labels, progress):
            """The critic's score (with the label's logit added under projection) and logits."""
            score, logits = discriminator(images, progress, num_blocks, transition)
            if projection:
                score = score + tf.gather(logits, labels, batch_dims=1)
            return score, logits

        def d_replica(reals, labels_real, z, labels_fake, eps, progress):
            reals, labels_real, z, labels_fake, eps = map(local, (reals, labels_real, z, labels_fake, eps))
            if projection:
                # Fakes of the reals' labels, so that the gradient penalty's
                # blend of the two is judged against one label.
                labels_fake = labels_real
            one_hot_fake = tf.one_hot(labels_fake, c.num_pitches)
            fakes = stage_output(generator, z, one_hot_fake, progress, num_blocks, transition)
            with tf.GradientTape() as tape:
                real_score, real_logits = critic(reals, labels_real, progress)
                fake_score, _ = critic(fakes, labels_fake, progress)
                e = eps[:, None, None, None]
                mixed = reals + e * (fakes - reals)
                with tf.GradientTape() as gp_tape:
                    gp_tape.watch(mixed)
                    mixed_score, _ = critic(mixed, labels_real, progress)
                grad = gp_tape.gradient(mixed_score, mixed) * gp_channel_scale
                slopes = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=[1, 2, 3])) / gp_scale
                gp = tf.reduce_mean(tf.square(slopes / tc.gradient_penalty_target - 1.0))
                wasserstein = tf.reduce_mean(fake_score) - tf.reduce_mean(real_score)
                drift = tf.reduce_mean(tf.square(real_score))
                ac_real = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=labels_real, logits=real_logits))
                loss = (wasserstein + tc.gradient_penalty_weight * gp
                        + tc.real_score_penalty_weight * drift
                        + tc.discriminator_ac_loss_weight * ac_real)
                # Inside the tape: the gradients are summed over replicas.
                replica_loss = loss / replicas
            grads = tape.gradient(replica_loss, d_vars, unconnected_gradients=zero)
            return grads, {"d_loss": loss, "wasserstein": wasserstein, "gradient_penalty": gp,
                           "drift": drift, "ac_real": ac_real}

        def g_replica(z, labels, progress):
            z, labels = local(z), local(labels)
            with tf.GradientTape() as tape:
                fakes = stage_output(generator, z, tf.one_hot(labels, c.num_pitches), progress,
                                     num_blocks, transition)
                fake_score, fake_logits = critic(fakes, labels, progress)
                ac_fake = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=labels, logits=fake_logits))
                loss = -tf.reduce_mean(fake_score) + tc.generator_ac_loss_weight * ac_fake
                replica_loss = loss / replicas
            grads = tape.gradient(replica_loss, g_vars, unconnected_gradients=zero)
            return grads, {"g_loss": loss, "ac_fake": ac_fake}

        sum_, mean = tf.distribute.ReduceOp.SUM, tf.distribute.ReduceOp.MEAN

        @tf.function(autograph=False)
        def train_step(reals, labels_real, z_d, labels_d, eps, z_g, labels_g, progress):
            grads, d_stats = strategy.run(d_replica, (reals, labels_real, z_d, labels_d, eps, progress))
            grads = [strategy.reduce(sum_, g, axis=None) for g in grads]
            self.d_opt.apply(grads, d_vars, d_rate)
            grads, g_stats = strategy.run(g_replica, (z_g, labels_g, progress))
            grads = [strategy.reduce(sum_, g, axis=None) for g in grads]
            self.g_opt.apply(grads, g_vars, g_rate)
            decay = tc.ema_decay
            for average, variable in zip(self.ema_vars, self.g_vars):
                average.assign(decay * average + (1.0 - decay) * variable)
            stats = {**d_stats, **g_stats}
            return {k: strategy.reduce(mean, v, axis=None) for k, v in stats.items()}

        self._step_functions = {stage: train_step}  # earlier stages' graphs are not needed again
        return train_step

    def _batch(self, stage, step, images_seen):
        schedule, c = self.schedule, self.model_config
        batch_size = schedule.batch_size(stage)
        num_blocks, transition = schedule.num_blocks(stage), schedule.is_transition(stage)
        progress = schedule.progress(images_seen)
        high, low = self.data.stage_images(num_blocks, transition, c)
        index = self.data.clip_indices(images_seen, batch_size)
        reals = high[index]
        if transition:
            a_high = generator_alpha(num_blocks, progress)
            reals = a_high * reals + (1.0 - a_high) * low[index]
        noise = step_noise(self.train_config.seed, step, batch_size, c.latent_size, self.data.label_probs)
        return batch_size, progress, (reals.astype(np.float32), self.data.labels[index],
                                      noise["z_d"], noise["labels_d"], noise["eps"],
                                      noise["z_g"], noise["labels_g"], np.float32(progress))

    # --- the loop --------------------------------------------------------------
    def train(self, max_steps=None):
        """Train until the schedule's end (or the step counter reaches ``max_steps``); return True when done."""
        import tensorflow as tf

        self.restore()
        if self.good_manager.latest_checkpoint is None and int(self.step.numpy()) == 0:
            self.good_manager.save(checkpoint_number=0)  # the initial weights are healthy
        writer = tf.summary.create_file_writer(str(self.out_dir / LOGS_DIR)) if self.is_chief else None
        self._writer = writer
        metadata = _scalar_metadata()
        schedule = self.schedule
        total = schedule.total_images
        bar = None
        if self.progress_bar and self.is_chief:
            from tqdm import tqdm

            # tqdm's own estimate assumes a constant rate, but an image at
            # full size costs a thousand times one at 2x16: "left" is
            # estimated from the cost of each stage instead (see TimeLeft).
            bar = tqdm(total=total, initial=int(self.images_seen.numpy()), unit="img",
                       dynamic_ncols=True, mininterval=1.0,
                       bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} img [{elapsed}, {rate_fmt}{postfix}]")
        time_left = TimeLeft(schedule, self.model_config)
        last_save = time.monotonic()
        started = time.monotonic()
        first_images = int(self.images_seen.numpy())
        last_tick = started
        steps_this_run = 0
        self.interrupted = None
        with contextlib.ExitStack() as cleanup:
            stop_requested = cleanup.enter_context(_stop_requests())
            if bar is not None:
                cleanup.callback(bar.close)
            if writer is not None:
                cleanup.callback(writer.flush)
            while True:
                images_seen = int(self.images_seen.numpy())
                step = int(self.step.numpy())
                if images_seen >= total or (max_steps is not None and step >= max_steps):
                    break
                self.interrupted = stop_requested()
                if self.interrupted:
                    break
                stage = schedule.stage_of(images_seen)
                if stage != int(self.stage.numpy()):
                    # Magenta started every stage with fresh optimisers.
                    self.g_opt.reset()
                    self.d_opt.reset()
                    self.stage.assign(stage)
                train_step = self._step_function(stage)
                step_started = time.monotonic()
                batch_size, progress, inputs = self._batch(stage, step, images_seen)
                stats = train_step(*[tf.constant(x) for x in inputs])
                stats = {k: float(v) for k, v in stats.items()}
                was_healthy = self.watch.healthy
                verdict = self.watch.observe(stats)
                if not verdict.healthy and self.stop_on_divergence:
                    self._stop_at_last_healthy(step, verdict)
                    break
                if was_healthy and not verdict.healthy:
                    log.warning("step %d: the run is diverging: %s", step, verdict.describe())
                elif verdict.healthy and not was_healthy:
                    log.info("step %d: the run is back in its healthy bands", step)
                if verdict.non_finite:
                    raise TrainError(f"step {step}: the losses are not finite ({stats}); "
                                     "try a lower learning rate (--stop-on-divergence ends such a "
                                     "run at its last healthy checkpoint)")
                self.step.assign_add(1)
                self.images_seen.assign_add(batch_size)
                now = time.monotonic()
                self.train_seconds.assign_add(now - last_tick)
                last_tick = now
                steps_this_run += 1
                self.last_losses = stats
                if writer is not None and (step % self.summary_every == 0):
                    with writer.as_default(step=step):
                        rate = (images_seen + batch_size - first_images) / max(1e-6, time.monotonic() - started)
                        out_of_band = len(verdict.out_of_band) + len(verdict.non_finite)
                        values = dict(stats, progress=progress, stage=stage,
                                      images_seen=images_seen + batch_size, images_per_second=rate,
                                      **{"health/out_of_band": out_of_band})
                        for key, value in values.items():
                            tf.summary.write(key, tf.constant(float(value)), metadata=metadata)
                time_left.observe(stage, now - step_started)
                if bar is not None:
                    bar.update(batch_size)
                    bar.set_postfix_str(
                        f"stage {stage + 1}/{schedule.num_stages} "
                        f"{'transition' if schedule.is_transition(stage) else 'stable'} "
                        f"D {stats['d_loss']:.3f} G {stats['g_loss']:.3f} "
                        f"left {time_left.text(images_seen + batch_size)}"
                        + (f" {verdict.short()}" if not verdict.healthy else ""), refresh=False)
                if time.monotonic() - last_save >= self.save_every:
                    self.save()
                    last_save = time.monotonic()
                next_images = int(self.images_seen.numpy())
                if next_images < total and schedule.stage_of(next_images) != stage:
                    self.save()  # a stage boundary: the natural place to resume from
                    last_save = time.monotonic()
        if steps_this_run and self.diverged is None:
            self.save()
        elif self.diverged is not None:
            self.draw_loss_curves()
        return self.diverged is None and int(self.images_seen.numpy()) >= total

    def export(self, path=None, finished=True):
        """Write the EMA generator as a ganspacesynth model folder (replacing an earlier export)."""
        from .checkpoint import write_project_model
        from .weight_change import kernel_change

        if not self.is_chief:
            return None
        path = Path(path or self.out_dir / MODEL_DIR)
        temporary = path.with_name(path.name + ".partial")
        if temporary.exists():
            shutil.rmtree(temporary)
        info = {
            "training": {
                "finished": finished,
                "step": int(self.step.numpy()),
                "images_seen": int(self.images_seen.numpy()),
                "final_losses": self.last_losses,
                "strategy": self.strategy_name,
                "replicas": self.num_replicas,
                "dataset": {"clips": len(self.data), "pitches": self.data.pitches},
                "settings": self.train_config.to_json(),
            }
        }
        info["training"]["wall_time_seconds"] = round(float(self.train_seconds.numpy()), 1)
        # Which blocks training actually reached (see weight_change.py).
        info["training"]["kernel_change"] = kernel_change(self.ema, self.train_config.seed)
        if self.diverged is not None:
            info["training"]["diverged"] = self.diverged
        if self.command:
            info["training"]["command"] = self.command
        write_project_model(temporary, self.ema, info)
        if path.exists():
            shutil.rmtree(path)
        os.replace(temporary, path)
        return path


def train(dataset_dir, out_dir, *, preset="gansynth", settings=None, overrides=None, steps=None,
          strategy="default", save_every=600.0, summary_every=20, progress_bar=True, command=None,
          stop_on_divergence=False, health_window=DEFAULT_WINDOW, init_from=None):
    """Train (or resume training) a model on a prepared dataset folder; returns the exported model path.

    ``settings`` (a ``--config`` file's dict) and ``overrides`` (flags) take
    keys of ``ModelConfig`` and ``TrainConfig``, flat or under "model" and
    "train". ``steps`` stops the run when the step counter reaches it (the
    checkpoint and the export are written; rerunning without it continues).
    ``stop_on_divergence``: when the watched losses leave their healthy bands
    (see ``health.py``; median over ``health_window`` steps) or stop being
    finite, go back to the newest checkpoint saved while healthy, export it
    and stop (``trainer.diverged`` says where and why). Without it a
    divergence is reported on the progress line, in the log and in
    TensorBoard (``health/out_of_band``), and training goes on.
    ``init_from``: a new ``out_dir`` starts from another run's checkpoint
    (weights, optimiser moments, counters) with these settings, e.g. the
    last healthy checkpoint of a run that diverged, with a lower learning
    rate; ignored once ``out_dir`` has checkpoints of its own.
    """
    model_settings, train_config = make_configs(preset, settings, overrides)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(dataset_dir, out_dir, model_settings, train_config, strategy=strategy,
                      save_every=save_every, summary_every=summary_every, progress_bar=progress_bar,
                      command=command, stop_on_divergence=stop_on_divergence,
                      health_window=health_window, init_from=init_from)
    before = None
    exported = out_dir / MODEL_DIR / "config.json"
    if exported.is_file():
        before = json.loads(exported.read_text()).get("training", {}).get("step")
    trainer.done = trainer.train(max_steps=steps)
    if before == int(trainer.step.numpy()):
        # Nothing trained: keep the export, which knows the run's last losses.
        return out_dir / MODEL_DIR, trainer
    return trainer.export(finished=trainer.done), trainer

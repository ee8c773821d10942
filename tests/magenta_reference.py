"""An independent GANSynth generator in Magenta's own style, for tests only.

Built as Magenta builds it: a TF1 graph (through tf.compat.v1) with the
variable scopes, names and per-layer arithmetic of tfgan's progressive GAN,
saved with a name-based Saver together with ``ExponentialMovingAverage``
copies. It shares no code with the engine. Tests first check it against the
checkpoint Magenta itself made (tests/data/gansynth-reference), then use it
to write model folders Magenta would have written for architectures we have
no Magenta checkpoint of (the full-size released one, a one-pitch custom one)
and compare the engine against it.
"""

import json
import math
from pathlib import Path

import numpy as np
import tensorflow as tf

v1 = tf.compat.v1


def _num_filters(block, experiment):
    return int(min(experiment["fmap_base"] / math.pow(2.0, block * experiment["fmap_decay"]),
                   experiment["fmap_max"]))


def _pixel_norm(x):
    return x * v1.rsqrt(v1.reduce_mean(v1.square(x), axis=3, keepdims=True) + 1e-8)


def _custom_conv2d(x, filters, kernel_size, padding, he_slope, activation, scope):
    with v1.variable_scope(scope):
        kernel_shape = list(kernel_size) + [x.shape.as_list()[3], filters]
        fan_in = np.prod(kernel_shape[:-1])
        he_std = math.sqrt(2.0 / (1.0 + he_slope ** 2)) / math.sqrt(fan_in)
        with v1.variable_scope("conv2d"):
            kernel = v1.get_variable("kernel", kernel_shape, initializer=v1.random_normal_initializer())
        bias = v1.get_variable("bias", [filters], initializer=v1.zeros_initializer())
        y = v1.nn.conv2d(x, kernel, strides=[1, 1, 1, 1], padding=padding) * he_std + bias
        return activation(y) if activation else y


def _upscale(x, n):
    # tfgan upscales by tiling batch and using depth_to_space-like reshapes;
    # nearest neighbour is what it computes.
    return v1.image.resize(x, [x.shape[1] * n, x.shape[2] * n], method="nearest")


def build_generator(z, labels, experiment):
    """Magenta's generator at full progress: returns the denormalised spectrogram tensor."""
    act = lambda t: _pixel_norm(v1.nn.leaky_relu(t, 0.2))
    kh, kw = experiment["start_height"], experiment["start_width"]
    k = experiment["kernel_size"]
    blocks = experiment["num_resolutions"]
    with v1.variable_scope("Generator"), v1.variable_scope("progressive_gan_generator"):
        x = v1.concat([z, labels], axis=1)
        for block in range(1, blocks + 1):
            with v1.variable_scope(f"progressive_gan_block_{block}"):
                filters = _num_filters(block, experiment)
                if block == 1:
                    x = _pixel_norm(x[:, v1.newaxis, v1.newaxis, :])
                    x = v1.pad(x, [[0, 0], [kh - 1, kh - 1], [kw - 1, kw - 1], [0, 0]])
                    x = _custom_conv2d(x, filters, (kh, kw), "VALID", 0.0, act, "conv0")
                else:
                    x = _upscale(x, experiment["scale_base"])
                    x = _custom_conv2d(x, filters, (k, k), "SAME", 0.0, act, "conv0")
                x = _custom_conv2d(x, filters, (k, k), "SAME", 0.0, act, "conv1")
                # Every block has a to_rgb in a real checkpoint; only the last one is used.
                rgb = _custom_conv2d(x, 2, (1, 1), "SAME", 1.0, v1.tanh, "to_rgb")
    a = np.array([experiment["mag_normalizer_a"], experiment["p_normalizer_a"]], np.float32)
    b = np.array([experiment["mag_normalizer_b"], experiment["p_normalizer_b"]], np.float32)
    return (rgb - b) / a


def experiment_json(fmap_base=4096, fmap_max=256):
    """The hyperparameters of the released mel_prog_hires models (their shape-relevant keys)."""
    return {
        "dataset_name": "nsynth_tfrecord", "data_type": "mel", "train_progressive": True,
        "audio_length": 64000, "sample_rate": 16000, "latent_vector_size": 256,
        "kernel_size": 3, "start_height": 2, "start_width": 16, "scale_mode": "ALL",
        "scale_base": 2, "num_resolutions": 7, "simple_arch": False, "to_rgb_activation": "tanh",
        "fmap_base": fmap_base, "fmap_decay": 1.0, "fmap_max": fmap_max,
        "mag_normalizer_a": 0.0661371661726, "mag_normalizer_b": 0.113718730221,
        "p_normalizer_a": 0.8, "p_normalizer_b": 0.0,
        "train_root_dir": "/home/someone/runs/model",
    }


def _graph(experiment, num_pitches):
    graph = tf.Graph()
    with graph.as_default():
        z = v1.placeholder(tf.float32, [None, experiment["latent_vector_size"]])
        labels = v1.placeholder(tf.float32, [None, num_pitches])
        out = build_generator(z, labels, experiment)
    return graph, z, labels, out


def write_model(folder, experiment, num_pitches, seed=0, meta_pitches=None):
    """Write a Magenta-layout model folder with random raw and (different) EMA weights."""
    folder = Path(folder)
    stage = folder / "stage_00012"
    stage.mkdir(parents=True)
    (folder / "experiment.json").write_text(json.dumps(experiment))
    if meta_pitches is not None:
        meta = {f"clip_{i:03d}": {"pitch": int(p)} for i, p in enumerate(meta_pitches)}
        (folder / "meta.json").write_text(json.dumps(meta))
    graph, *_ = _graph(experiment, num_pitches)
    rng = np.random.default_rng(seed)
    with graph.as_default():
        raw = v1.global_variables()
        ema_vars = {}
        for var in raw:
            name = var.op.name + "/ExponentialMovingAverage"
            ema_vars[name] = v1.get_variable(name.replace("/", "__"), var.shape, trainable=False)
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            for var in list(raw) + list(ema_vars.values()):
                session.run(var.assign(rng.standard_normal(var.shape.as_list()).astype(np.float32)
                                       * (0.1 if "bias" in var.op.name else 1.0)))
            names = {var.op.name: var for var in raw}
            names.update(ema_vars)
            v1.train.Saver(var_list=names).save(session, str(stage / "model.ckpt-11000000"),
                                                write_meta_graph=False)
    # As in real runs, the index names a path on the machine that trained the model.
    (stage / "checkpoint").write_text(
        'model_checkpoint_path: "/home/someone/runs/model/stage_00012/model.ckpt-11000000"\n')
    return folder


def generate(folder, z, label_indices):
    """Run the reference graph with the EMA weights of a Magenta-layout folder."""
    folder = Path(folder)
    experiment = json.loads((folder / "experiment.json").read_text())
    prefix = sorted((folder).glob("stage_*/*.index"))[-1].with_suffix("")
    reader = tf.train.load_checkpoint(str(prefix))
    name = "Generator/progressive_gan_generator/progressive_gan_block_1/conv0/conv2d/kernel"
    num_pitches = reader.get_variable_to_shape_map()[name][2] - experiment["latent_vector_size"]
    graph, z_in, labels_in, out = _graph(experiment, num_pitches)
    with graph.as_default(), v1.Session() as session:
        for var in v1.global_variables():
            session.run(var.assign(reader.get_tensor(var.op.name + "/ExponentialMovingAverage")))
        labels = np.eye(num_pitches, dtype=np.float32)[np.asarray(label_indices)]
        return session.run(out, {z_in: z, labels_in: labels})

"""Reading and writing model folders.

Two layouts are read:

* Magenta / SopiMlab GANSynth runs: ``experiment.json``, ``stage_NNNNN/``
  (TF1 name-based checkpoints; the highest stage is the final one) and
  optionally ``meta.json`` (custom datasets: ``{clip: {"pitch": P}}``).
  Generation uses the ``ExponentialMovingAverage`` copies of the weights, as
  Magenta does. The ``checkpoint`` index file usually names an absolute path
  on the machine that trained the model, so the files beside it are used.
* ganspacesynth's own format, written by ``convert`` and ``train``:
  ``config.json`` plus ``weights/`` (a TF2 ``tf.train.Checkpoint``).

Every problem is a ``ModelError`` naming the file and what is wrong with it.
"""

import json
import logging
import re
from pathlib import Path

import numpy as np

from .config import NSYNTH_PITCHES, ModelConfig, load_json
from .errors import ModelError

log = logging.getLogger(__name__)

FORMAT_NAME = "ganspacesynth-model"
FORMAT_VERSION = 1
MAGENTA_SCOPE = "Generator/progressive_gan_generator/progressive_gan_block_{block}/{layer}/{kind}"
EMA_SUFFIX = "/ExponentialMovingAverage"


def is_project_model(path: Path) -> bool:
    return (path / "config.json").is_file()


def is_magenta_model(path: Path) -> bool:
    return (path / "experiment.json").is_file() or any(path.glob("stage_*"))


# --- Magenta ---------------------------------------------------------------

def read_magenta_model(path: Path):
    """Return (ModelConfig, {our weight name: numpy array}) from a Magenta model folder."""
    experiment_path = path / "experiment.json"
    if not experiment_path.is_file():
        raise ModelError(f"{path}: not a GANSynth model folder: there is no experiment.json")
    experiment = _read_json(experiment_path)
    prefix = _checkpoint_prefix(path)
    reader = _open_checkpoint(prefix)
    num_pitches = _checkpoint_num_pitches(reader, prefix, experiment)
    pitches = _pitches(path, experiment, num_pitches)
    try:
        config = ModelConfig.from_experiment(experiment, pitches)
    except (TypeError, ValueError) as error:
        raise ModelError(f"{experiment_path}: {error}") from None
    weights = {}
    shapes = reader.get_variable_to_shape_map()
    use_ema = any(name.endswith(EMA_SUFFIX) for name in shapes)
    if not use_ema:
        log.warning("%s has no ExponentialMovingAverage weights; using the raw ones", prefix)
    expected = expected_shapes(config)
    for ours, shape in expected.items():
        name = _magenta_name(ours) + (EMA_SUFFIX if use_ema else "")
        if name not in shapes:
            raise ModelError(f"{prefix}: the checkpoint has no variable {name}, which a GANSynth "
                             f"model with {config.num_resolutions} resolutions needs")
        if list(shapes[name]) != list(shape):
            raise ModelError(
                f"{prefix}: {name} has shape {shapes[name]} but {experiment_path.name} "
                f"(fmap_base={config.fmap_base}, fmap_max={config.fmap_max}, "
                f"latent_vector_size={config.latent_size}, {num_pitches} pitches) implies {list(shape)}")
        weights[ours] = _read_tensor(reader, name, prefix)
    return config, weights


def _magenta_name(ours: str) -> str:
    block, layer, kind = ours.split("/")
    return MAGENTA_SCOPE.format(block=block[len("block"):], layer=layer,
                                kind="conv2d/kernel" if kind == "kernel" else "bias")


def _read_json(path: Path) -> dict:
    try:
        data = load_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path}: cannot be read as JSON: {error}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _checkpoint_prefix(path: Path) -> Path:
    stages = sorted((p for p in path.glob("stage_*") if p.is_dir() and re.fullmatch(r"stage_\d+", p.name)),
                    key=lambda p: int(p.name[len("stage_"):]))
    if not stages:
        raise ModelError(f"{path}: no stage_* folder: a GANSynth run keeps its checkpoints in stage_NNNNN/")
    stage = stages[-1]
    # The `checkpoint` file names the newest prefix, usually as an absolute
    # path on the training machine: keep only its file name.
    index_file = stage / "checkpoint"
    if index_file.is_file():
        match = re.search(r'model_checkpoint_path:\s*"([^"]+)"', index_file.read_text(errors="replace"))
        if match:
            prefix = stage / Path(match.group(1)).name
            if Path(f"{prefix}.index").is_file():
                return prefix
    candidates = sorted(stage.glob("*.index"), key=lambda p: _step_of(p.name))
    if not candidates:
        raise ModelError(f"{stage}: no checkpoint (*.index) in the final stage folder")
    return stage / candidates[-1].name[:-len(".index")]


def _step_of(filename: str) -> int:
    match = re.search(r"-(\d+)\.index$", filename)
    return int(match.group(1)) if match else -1


def _open_checkpoint(prefix: Path):
    import tensorflow as tf

    try:
        return tf.train.load_checkpoint(str(prefix))
    except Exception as error:  # TF raises several unrelated types for damaged files
        raise ModelError(f"{prefix}: the checkpoint cannot be read ({_first_line(error)})") from None


def _read_tensor(reader, name: str, prefix: Path) -> np.ndarray:
    try:
        return np.asarray(reader.get_tensor(name), dtype=np.float32)
    except Exception as error:
        raise ModelError(f"{prefix}.data-*: variable {name} cannot be read, the file is probably "
                         f"truncated or damaged ({_first_line(error)})") from None


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _checkpoint_num_pitches(reader, prefix: Path, experiment: dict) -> int:
    """The label count is whatever block 1's conv0 was trained with."""
    name = _magenta_name("block1/conv0/kernel")
    shapes = reader.get_variable_to_shape_map()
    shape = shapes.get(name + EMA_SUFFIX, shapes.get(name))
    if shape is None:
        raise ModelError(f"{prefix}: the checkpoint has no variable {name}: is this a GANSynth generator?")
    latent = int(experiment.get("latent_vector_size", 256))
    num_pitches = int(shape[2]) - latent
    if num_pitches < 1:
        raise ModelError(f"{prefix}: {name} has {shape[2]} input channels, fewer than "
                         f"latent_vector_size={latent} in experiment.json plus one pitch")
    return num_pitches


def _pitches(path: Path, experiment: dict, num_pitches: int):
    meta_path = path / "meta.json"
    if meta_path.is_file():
        meta = _read_json(meta_path)
        try:
            pitches = sorted({int(note["pitch"]) for note in meta.values()})
        except (TypeError, KeyError, ValueError):
            raise ModelError(f"{meta_path}: expected {{clip name: {{\"pitch\": MIDI number}}}}") from None
        if len(pitches) != num_pitches:
            raise ModelError(f"{meta_path} lists {len(pitches)} distinct pitches but the checkpoint "
                             f"was trained with {num_pitches} pitch labels")
        return pitches
    if num_pitches == len(NSYNTH_PITCHES):
        return list(NSYNTH_PITCHES)
    low = experiment.get("train_min_pitch")
    high = experiment.get("train_max_pitch")
    if low is not None and high is not None and int(high) - int(low) + 1 == num_pitches:
        return list(range(int(low), int(high) + 1))
    log.warning("%s: no meta.json and %d pitch labels: assuming MIDI pitches %d..%d",
                path, num_pitches, 24, 24 + num_pitches - 1)
    return list(range(24, 24 + num_pitches))


def expected_shapes(config: ModelConfig) -> dict:
    """Our weight names and the shapes the config implies, for the final stage."""
    shapes = {}
    for block in range(1, config.num_blocks + 1):
        for layer, kernel in config.kernel_shapes(block).items():
            shapes[f"block{block}/{layer}/kernel"] = kernel
            shapes[f"block{block}/{layer}/bias"] = kernel[-1:]
    return shapes


# --- ganspacesynth's own format -------------------------------------------

def read_project_config(path: Path) -> ModelConfig:
    data = _read_json(path / "config.json")
    if data.get("format") != FORMAT_NAME:
        raise ModelError(f"{path / 'config.json'}: not a ganspacesynth model (format is {data.get('format')!r})")
    if data.get("version", 0) > FORMAT_VERSION:
        raise ModelError(f"{path / 'config.json'}: written by a newer ganspacesynth (format version "
                         f"{data['version']}); this one reads version {FORMAT_VERSION}")
    try:
        return ModelConfig.from_json(data["model"])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"{path / 'config.json'}: bad model settings: {error}") from None


def restore_project_weights(path: Path, generator) -> None:
    import tensorflow as tf

    prefix = path / "weights" / "generator"
    if not Path(f"{prefix}.index").is_file():
        raise ModelError(f"{path}: no weights/generator.index: the model folder is incomplete")
    try:
        status = tf.train.Checkpoint(generator=generator).read(str(prefix))
        status.assert_existing_objects_matched()
    except Exception as error:
        raise ModelError(f"{prefix}: the weights cannot be loaded ({_first_line(error)})") from None


def write_project_model(path: Path, generator, extra: dict = None) -> None:
    import tensorflow as tf

    path = Path(path)
    if path.exists() and any(path.iterdir()):
        raise ModelError(f"{path}: the folder exists and is not empty; choose a new one")
    path.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "model": generator.config.to_json()}
    data.update(extra or {})
    (path / "config.json").write_text(json.dumps(data, indent=2) + "\n")
    tf.train.Checkpoint(generator=generator).write(str(path / "weights" / "generator"))

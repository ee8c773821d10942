"""The PCA object and its file: directions in one generator layer, the arithmetic of the synthesis
formula on them, and reading and writing them.

A ``PCA`` holds unit-norm ``components`` in the layer's shape, the standard
deviation of the activations along each (``stdev``), the share of the layer's
variance each explains, the ``mean`` activation, optionally the latent
directions ``latent`` space plays, and optionally a name per component
(named directions, see ``directions.py``). The synthesis formula is
documented once, in ``synthesis.py``; how directions are found, in
``pca.py``, ``estimators.py`` and ``directions.py``.

File format
-----------
A ``.npz`` archive read with ``allow_pickle=False``: float32 arrays
``components`` (n, *layer shape), ``stdev`` (n,), ``explained_variance_ratio``
(n,), ``mean`` (layer shape), optionally ``latent_directions`` (n, latent
size) and ``latent_stdev`` (n,), and ``metadata``: a 0-d string array holding
JSON with ``format`` ("ganspacesynth-pca"), ``version``, ``layer``,
``layer_shape``, ``estimator``, ``n_samples``, ``model_id``, ``pitch``,
``seed``, ``latent_size``, ``latent_samples`` and, for named directions,
``names`` (one string per component; files without it load with ``names``
None).

Version 2 adds directions per pitch (named directions fitted pitch by pitch,
``directions.py``): ``pitch_sets`` in the metadata lists P MIDI pitches and
the arrays ``pitch_components`` (P, n, *layer shape), ``pitch_stdev``,
``pitch_explained_variance_ratio`` (P, n) and optionally
``pitch_latent_directions`` (P, n, latent size) and ``pitch_latent_stdev``
(P, n) hold each pitch's set; the plain arrays hold the set pooled over the
pitches, which ``layer`` space plays (it has no pitch). A file without pitch
sets is written as version 1, which every version reads. ``load_pca`` also reads the
original GANSpaceSynth pickles, through an unpickler that can build nothing
but plain float arrays (see ``_SafeUnpickler``).
"""

import copy
import io
import json
import math
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np

from .errors import PCAError

FORMAT_NAME = "ganspacesynth-pca"
FORMAT_VERSION = 2
# Files without directions per pitch are written as version 1, so that older versions read them.
PLAIN_VERSION = 1


class PCA:
    """Directions in one generator layer, and the statistics the synthesis formula needs.

    Attributes: ``layer``, ``layer_shape``, ``components`` (n, *layer_shape),
    ``stdev`` (n,), ``explained_variance_ratio`` (n,), ``mean`` (layer_shape),
    ``n_components``, ``estimator``, ``n_samples``, ``model_id`` (the
    identifier of the model it was computed on; None for original
    GANSpaceSynth files), ``latent_directions`` (n, latent size) and
    ``latent_stdev`` (n,) or None, ``pitch`` (the sampling pitch(es), None for
    all of the model's), ``seed``, ``latent_samples``, ``source`` (the file),
    ``names`` (one distinct non-empty string per component, or None),
    ``pitch_sets`` (None, or {MIDI pitch: PCA} with the directions played at
    that pitch in ``z`` and ``latent`` space; see ``at_pitch``).
    """

    def __init__(self, layer, components, stdev, explained_variance_ratio, mean, *, estimator,
                 n_samples=None, model_id=None, latent_directions=None, latent_stdev=None,
                 pitch=None, seed=None, latent_samples=None, source=None, names=None, pitch_sets=None):
        self.layer = str(layer)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.layer_shape = tuple(int(s) for s in self.mean.shape)
        self.components = np.asarray(components, dtype=np.float32)
        self.stdev = np.asarray(stdev, dtype=np.float32)
        self.explained_variance_ratio = np.asarray(explained_variance_ratio, dtype=np.float32)
        n = self.components.shape[0] if self.components.ndim else 0
        if self.components.shape != (n, *self.layer_shape) or n == 0:
            raise PCAError(f"components of shape {self.components.shape} do not fit a mean of shape "
                           f"{self.layer_shape}")
        for name in ("stdev", "explained_variance_ratio"):
            if getattr(self, name).shape != (n,):
                raise PCAError(f"{name} has shape {getattr(self, name).shape}, expected ({n},)")
        self.latent_directions = latent_directions
        self.latent_stdev = latent_stdev
        if (latent_directions is None) != (latent_stdev is None):
            raise PCAError("latent_directions and latent_stdev go together")
        if latent_directions is not None:
            self.latent_directions = np.asarray(latent_directions, dtype=np.float32)
            self.latent_stdev = np.asarray(latent_stdev, dtype=np.float32)
            if self.latent_directions.ndim != 2 or self.latent_directions.shape[0] != n:
                raise PCAError(f"latent_directions has shape {self.latent_directions.shape}, "
                               f"expected ({n}, latent size)")
            if self.latent_stdev.shape != (n,):
                raise PCAError(f"latent_stdev has shape {self.latent_stdev.shape}, expected ({n},)")
        for name in ("components", "stdev", "explained_variance_ratio", "mean", "latent_directions",
                     "latent_stdev"):
            value = getattr(self, name)
            if value is not None and not np.all(np.isfinite(value)):
                raise PCAError(f"{name} contains NaN or infinite values")
        self.estimator = str(estimator)
        self.n_samples = None if n_samples is None else int(n_samples)
        self.model_id = None if model_id is None else str(model_id)
        self.pitch = pitch
        self.seed = seed
        self.latent_samples = latent_samples
        self.source = source
        self.names = _check_names(names, n)
        self._basis_pinv = None
        self.pitch_sets = None if pitch_sets is None else self._check_pitch_sets(pitch_sets)

    def _check_pitch_sets(self, pitch_sets):
        if not isinstance(pitch_sets, dict) or not pitch_sets:
            raise PCAError("pitch_sets must be a non-empty dict from MIDI pitch to directions")
        checked = {}
        for pitch, directions in pitch_sets.items():
            if isinstance(pitch, bool) or not isinstance(pitch, (int, np.integer)):
                raise PCAError(f"pitch_sets: {pitch!r} is not a MIDI pitch")
            if not isinstance(directions, PCA) or directions.pitch_sets is not None:
                raise PCAError(f"pitch_sets: the directions at pitch {pitch} are not a plain PCA")
            if (directions.layer, directions.layer_shape) != (self.layer, self.layer_shape):
                raise PCAError(f"pitch_sets: the directions at pitch {pitch} are of {directions.layer} "
                               f"{directions.layer_shape}, not of {self.layer} {self.layer_shape}")
            if directions.n_components != self.n_components or directions.names != self.names:
                raise PCAError(f"pitch_sets: the directions at pitch {pitch} are not the same "
                               f"{self.n_components} components" + (f" ({', '.join(self.names)})"
                                                                    if self.names else ""))
            if directions.latent_size not in (None, self.latent_size) or (
                    directions.latent_directions is not None and self.latent_directions is None):
                raise PCAError(f"pitch_sets: the directions at pitch {pitch} have latent directions of "
                               f"another size than the pooled ones")
            checked[int(pitch)] = directions
        return dict(sorted(checked.items()))

    def with_pitch_sets(self, pitch_sets):
        """A copy of these directions that plays ``pitch_sets`` ({MIDI pitch: PCA with the same
        layer, components and names}) at their pitches in ``z`` and ``latent`` space; None: a
        copy that plays the pooled set at every pitch."""
        played = copy.copy(self)
        played.pitch_sets = None if pitch_sets is None else self._check_pitch_sets(pitch_sets)
        return played

    def at_pitch(self, pitch):
        """The directions played at MIDI ``pitch`` in ``z`` and ``latent`` space: that pitch's
        own set when there is one (``pitch_sets``), else these (pooled over the pitches)."""
        if self.pitch_sets is None or pitch is None:
            return self
        return self.pitch_sets.get(int(pitch), self)
    def index(self, name) -> int:
        """The index of the component called ``name`` (PCAError naming the names there are)."""
        if self.names is None:
            raise PCAError(f"{self._name()} has no named components; give component numbers instead")
        try:
            return self.names.index(str(name))
        except ValueError:
            raise PCAError(f"{self._name()} has no component named {name!r}; its names are "
                           f"{', '.join(self.names)}") from None

    def named_coefficients(self, values, base=None):
        """A coefficient vector (n_components,) with ``values`` ({name: coefficient}) set on
        ``base`` (default zeros): what a knob labelled by name turns."""
        coefficients = (np.zeros(self.n_components) if base is None
                        else _coefficient_rows(base, self.n_components)[0][0].copy())
        for name, value in dict(values).items():
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"the coefficient for {name!r} is NaN or infinite")
            coefficients[self.index(name)] = value
        return coefficients

    def label(self, i) -> str:
        """Component ``i``'s name, or ``component i`` when it has none."""
        return self.names[i] if self.names is not None else f"component {i}"

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    @property
    def latent_size(self):
        return None if self.latent_directions is None else int(self.latent_directions.shape[1])

    def __repr__(self):
        origin = f" from {self.n_samples} samples" if self.n_samples else ""
        return (f"<PCA {self.n_components} components of {self.layer} {self.layer_shape}, "
                f"{self.estimator}{origin}, model {self.model_id or 'unknown'}>")

    def summary(self) -> str:
        """A few lines a person can read: what this is and how much each component explains."""
        ratio = self.explained_variance_ratio.astype(np.float64)
        lines = [
            f"layer       {self.layer} {self.layer_shape}",
            f"estimator   {self.estimator}" + (f", {self.n_samples} samples" if self.n_samples else ""),
            f"model       {self.model_id or 'unknown (original GANSpaceSynth file)'}",
            f"pitch       {self._pitch_text()}",
            f"components  {self.n_components}, {100 * ratio.sum():.1f}% of the variance",
            "first       " + ", ".join(f"{i}: {100 * r:.1f}%" for i, r in enumerate(ratio[:8])),
            "latent      " + ("no latent directions" if self.latent_directions is None
                              else f"directions from {self.latent_samples} samples" if self.latent_samples
                              else "directions in closed form"),
            *([] if self.names is None else ["names       " + ", ".join(self.names)]),
            *([] if self.pitch_sets is None else [
                f"per pitch   own directions at {len(self.pitch_sets)} pitches "
                f"({', '.join(str(p) for p in self.pitch_sets)}) in z and latent space; "
                "layer space plays the pooled ones"]),
        ]
        return "\n".join(lines)

    def _pitch_text(self):
        if self.estimator == "sefa":
            return "all (from the weights, no sampling)"
        if self.n_samples is None:
            return "unknown"
        return "all of the model's" if self.pitch is None else str(self.pitch)

    # --- the formula ------------------------------------------------------
    def _coefficients(self, coefficients):
        return _coefficient_rows(coefficients, self.n_components)

    def edit(self, coefficients, pitches=None):
        """``sum_i c_i * stdev_i * component_i`` in the layer's shape: (*shape) for a vector of
        coefficients, (n, *shape) for an (n, k) array. ``pitches`` (one per row, or one for
        all): each row along the directions of its pitch (``at_pitch``)."""
        rows, single = self._coefficients(coefficients)
        offset = self._by_pitch(rows, pitches, lambda directions, part: (
            part * directions.stdev.astype(np.float64)) @ directions.components.reshape(
                directions.n_components, -1).astype(np.float64))
        offset = offset.reshape(len(rows), *self.layer_shape).astype(np.float32)
        return offset[0] if single else offset

    def _edit_basis(self):
        return (self.components.reshape(self.n_components, -1).astype(np.float64)
                * self.stdev.astype(np.float64)[:, np.newaxis])

    def _by_pitch(self, rows, pitches, along):
        """``along(directions, rows)`` with each row's directions those of its pitch."""
        if self.pitch_sets is None or pitches is None:
            return along(self, rows)
        pitches = np.broadcast_to(np.asarray(pitches), (len(rows),))
        out = None
        for pitch in np.unique(pitches):
            chosen = pitches == pitch
            part = along(self.at_pitch(pitch), rows[chosen])
            if out is None:
                out = np.empty((len(rows), part.shape[1]))
            out[chosen] = part
        return out

    def layer_values(self, coefficients):
        """``mean + edit(coefficients)``: the activation that ``layer`` space synthesises from
        (pooled directions: that space has no pitch)."""
        return self.mean + self.edit(coefficients)

    def latent_offset(self, coefficients, pitches=None):
        """``sum_i c_i * s_i * u_i`` in z: (latent size,) or (n, latent size). ``pitches``: as
        for ``edit`` (a pitch's set without latent directions plays the pooled ones)."""
        if self.latent_directions is None:
            raise PCAError(f"{self._name()} has no latent directions (an original GANSpaceSynth file, "
                           "or computed without them): compute one with `ganspacesynth pca`")
        rows, single = self._coefficients(coefficients)

        def along(directions, part):
            if directions.latent_directions is None:
                directions = self
            return (part * directions.latent_stdev.astype(np.float64)) @ directions.latent_directions.astype(
                np.float64)

        offset = self._by_pitch(rows, pitches, along).astype(np.float32)
        return offset[0] if single else offset

    def coordinates(self, values, pitch=None):
        """The coefficients whose ``layer_values`` come closest to ``values`` (least squares);
        at ``pitch``, along that pitch's directions (``at_pitch``).

        The inverse of the formula: for PCA components (orthonormal) it is the
        projection onto each component divided by its stdev.
        """
        if self.at_pitch(pitch) is not self:
            return self.at_pitch(pitch).coordinates(values)
        values = np.asarray(values, dtype=np.float64)
        single = values.shape == self.layer_shape
        flat = values.reshape(-1, self.mean.size) - self.mean.reshape(1, -1)
        if self._basis_pinv is None:
            self._basis_pinv = np.linalg.pinv(self._edit_basis())
        coords = flat @ self._basis_pinv
        return coords[0] if single else coords

    # --- fitting a model ---------------------------------------------------
    def _name(self):
        return str(self.source) if self.source else "this PCA"

    def check_model(self, model):
        """Refuse (PCAError) a model this PCA was not computed on, or whose layer differs."""
        if self.model_id is not None and self.model_id != model.identifier:
            raise PCAError(f"{self._name()} was computed on model {self.model_id}, not on this model "
                           f"({model.identifier}); compute one for it with `ganspacesynth pca`")
        if self.layer not in model.layer_names:
            raise PCAError(f"{self._name()} is for layer {self.layer!r}, which this model does not have "
                           f"(layers: {', '.join(model.layer_names)})")
        shape = tuple(model.layer_shape(self.layer))
        if shape != self.layer_shape:
            raise PCAError(f"{self._name()} is for layer {self.layer} of shape {self.layer_shape}, but this "
                           f"model's {self.layer} has shape {shape}")
        if self.latent_directions is not None and self.latent_size != model.latent_size:
            raise PCAError(f"{self._name()} has latent directions of size {self.latent_size}, but this "
                           f"model's z has {model.latent_size} values")

    # --- files -------------------------------------------------------------
    def metadata(self) -> dict:
        return {
            "format": FORMAT_NAME, "version": FORMAT_VERSION, "layer": self.layer,
            "layer_shape": list(self.layer_shape), "estimator": self.estimator,
            "n_samples": self.n_samples, "n_components": self.n_components, "model_id": self.model_id,
            "pitch": self.pitch, "seed": self.seed, "latent_size": self.latent_size,
            "latent_samples": self.latent_samples,
            **({} if self.names is None else {"names": list(self.names)}),
            **({"version": PLAIN_VERSION} if self.pitch_sets is None else {"pitch_sets": list(self.pitch_sets)}),
        }

    def save(self, path):
        """Write the ``.npz`` format (loadable without pickle); returns the path.

        Written to a temporary file first, so an interrupted save never leaves
        half a file under ``path``.
        """
        path = Path(path)
        arrays = {"components": self.components, "stdev": self.stdev,
                  "explained_variance_ratio": self.explained_variance_ratio, "mean": self.mean,
                  "metadata": np.array(json.dumps(self.metadata()))}
        if self.latent_directions is not None:
            arrays["latent_directions"] = self.latent_directions
            arrays["latent_stdev"] = self.latent_stdev
        if self.pitch_sets is not None:
            sets = list(self.pitch_sets.values())
            for name in _ARRAYS[:3]:
                arrays["pitch_" + name] = np.stack([getattr(directions, name) for directions in sets])
            if all(directions.latent_directions is not None for directions in sets):
                for name in _LATENT_ARRAYS:
                    arrays["pitch_" + name] = np.stack([getattr(directions, name) for directions in sets])
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".part")
        with open(temporary, "wb") as f:
            np.savez(f, **arrays)
        os.replace(temporary, path)
        return path


def _check_names(names, n):
    """None, or a list of n distinct non-empty strings without spaces (each a Pd symbol)."""
    if names is None:
        return None
    if isinstance(names, str) or not all(isinstance(name, str) for name in names):
        raise PCAError("names must be a list of strings, one per component")
    names = list(names)
    if len(names) != n:
        raise PCAError(f"{len(names)} names for {n} components")
    bad = [name for name in names if not name or any(c.isspace() for c in name)]
    if bad:
        raise PCAError(f"component names must be non-empty and without spaces, got {bad[0]!r}")
    if len(set(names)) != n:
        raise PCAError("component names must be distinct")
    return names


def _coefficient_rows(coefficients, k):
    """(rows (n, k) float64 padded with zeros, whether the input was one vector)."""
    try:
        c = np.asarray(coefficients, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("coefficients must be numbers: one vector, or an (n, k) array") from None
    if c.ndim not in (1, 2):
        raise ValueError(f"coefficients must be one vector or an (n, k) array, got shape {c.shape}")
    single = c.ndim == 1
    rows = c[np.newaxis] if single else c
    if rows.shape[1] > k:
        raise ValueError(f"{rows.shape[1]} coefficients given, but the PCA has only {k} components")
    if not np.all(np.isfinite(rows)):
        raise ValueError("coefficients contain NaN or infinite values")
    if rows.shape[1] < k:
        rows = np.concatenate([rows, np.zeros((len(rows), k - rows.shape[1]))], axis=1)
    return rows, single



# --- reading files ------------------------------------------------------------------

DEFAULT_PCA = "default"
DEFAULT_PCA_FILE = "pca.npz"
_ORIGINAL_KEYS = {"layer", "estimator", "comp", "stdev", "var_ratio", "global_mean"}
_ARRAYS = ("components", "stdev", "explained_variance_ratio", "mean")
_LATENT_ARRAYS = ("latent_directions", "latent_stdev")
_PITCH_ARRAYS = tuple("pitch_" + name for name in (*_ARRAYS[:3], *_LATENT_ARRAYS))


def load_pca(path, model=None):
    """Read a PCA: our ``.npz`` format, or an original GANSpaceSynth pickle (read safely).

    ``"default"`` names the PCA shipped beside the default model
    (``models/default/pca.npz`` in the package).

    With ``model``, also refuse (PCAError) a PCA computed on another model
    or for a layer of another shape; ``synthesize`` checks that anyway.
    Original pickles carry no model identifier: they are accepted for any
    model whose layer has their shape. With ``model``, a bare name that is
    not a file here (``named``) is also looked for in the model's folder
    (``named.npz``): the default model ships its named directions so.
    """
    if str(path) == DEFAULT_PCA:
        from .paths import models_dir

        path = models_dir() / "default" / DEFAULT_PCA_FILE
        if not path.is_file():
            raise PCAError("the default PCA is not installed with this copy of ganspacesynth "
                           f"(looked for {path})")
    path = Path(path).expanduser()
    if not path.is_file():
        beside = _beside_model(path, model)
        if beside is None or not beside.is_file():
            raise PCAError(f"{path}: no such PCA file" + (f" (nor {beside})" if beside else ""))
        path = beside
    if zipfile.is_zipfile(path):
        pca = _load_npz(path)
    else:
        pca = _load_original_pickle(path)
    if model is not None:
        pca.check_model(model)
    return pca


def _beside_model(path, model):
    """Where a bare name (no folder, no extension) would be in ``model``'s folder, or None."""
    folder = getattr(model, "source", None)
    if folder is None or path.parent != Path(".") or path.suffix or not path.name:
        return None
    return Path(folder) / f"{path.name}.npz"


def _load_npz(path):
    try:
        with np.load(path, allow_pickle=False) as data:
            files = set(data.files)
            unknown = files - {"metadata", *_ARRAYS, *_LATENT_ARRAYS, *_PITCH_ARRAYS}
            missing = {"metadata", *_ARRAYS} - files
            if unknown or missing:
                raise PCAError(f"{path}: not a ganspacesynth PCA file (" + "; ".join(
                    part for part in (f"missing {', '.join(sorted(missing))}" if missing else "",
                                      f"unexpected {', '.join(sorted(unknown))}" if unknown else "") if part)
                    + ")")
            meta = data["metadata"]
            arrays = {name: data[name] for name in files - {"metadata"}}
    except PCAError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise PCAError(f"{path}: cannot read this PCA file ({error})") from None
    if meta.dtype.kind != "U" or meta.ndim != 0:
        raise PCAError(f"{path}: the metadata is not a JSON string")
    try:
        meta = json.loads(str(meta))
    except json.JSONDecodeError as error:
        raise PCAError(f"{path}: the metadata is not valid JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise PCAError(f"{path}: not a ganspacesynth PCA file (format {meta.get('format')!r})"
                       if isinstance(meta, dict) else f"{path}: the metadata is not a JSON object")
    version = meta.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise PCAError(f"{path}: PCA format version {version!r}; this ganspacesynth reads up to "
                       f"{FORMAT_VERSION} (upgrade ganspacesynth)")
    for name, value in arrays.items():
        if value.dtype.kind != "f":
            raise PCAError(f"{path}: {name} must be a float array, found {value.dtype}")
    try:
        pca = PCA(meta["layer"], arrays["components"], arrays["stdev"], arrays["explained_variance_ratio"],
                  arrays["mean"], estimator=meta["estimator"], n_samples=meta.get("n_samples"),
                  model_id=meta.get("model_id"), latent_directions=arrays.get("latent_directions"),
                  latent_stdev=arrays.get("latent_stdev"), pitch=meta.get("pitch"), seed=meta.get("seed"),
                  latent_samples=meta.get("latent_samples"), source=path,
                  names=meta.get("names"), pitch_sets=_pitch_sets(meta, arrays))
    except KeyError as error:
        raise PCAError(f"{path}: the metadata has no {error.args[0]!r}") from None
    except PCAError as error:
        raise PCAError(f"{path}: {error}") from None
    if list(pca.layer_shape) != list(meta.get("layer_shape", pca.layer_shape)):
        raise PCAError(f"{path}: the metadata says layer shape {meta['layer_shape']}, the arrays "
                       f"{list(pca.layer_shape)}")
    return pca


def _pitch_sets(meta, arrays):
    """The {pitch: PCA} of a version 2 file's per-pitch arrays, or None."""
    pitches = meta.get("pitch_sets")
    present = [name for name in _PITCH_ARRAYS if name in arrays]
    if pitches is None:
        if present:
            raise PCAError(f"it has {', '.join(present)} but no pitch_sets in its metadata")
        return None
    if (not isinstance(pitches, list) or not pitches
            or not all(isinstance(p, int) and not isinstance(p, bool) for p in pitches)):
        raise PCAError("pitch_sets in the metadata must be a list of MIDI pitches")
    missing = [name for name in _PITCH_ARRAYS[:3] if name not in arrays]
    if missing:
        raise PCAError(f"it lists pitch_sets but has no {', '.join(missing)}")
    if ("pitch_latent_directions" in arrays) != ("pitch_latent_stdev" in arrays):
        raise PCAError("pitch_latent_directions and pitch_latent_stdev go together")
    for name in present:
        if len(arrays[name]) != len(pitches):
            raise PCAError(f"{name} holds {len(arrays[name])} sets for {len(pitches)} pitch_sets")
    if len(set(pitches)) != len(pitches):
        raise PCAError("pitch_sets lists a pitch twice")
    latent = "pitch_latent_directions" in arrays
    return {pitch: PCA(meta["layer"], arrays["pitch_components"][i], arrays["pitch_stdev"][i],
                       arrays["pitch_explained_variance_ratio"][i], arrays["mean"], estimator=meta["estimator"],
                       model_id=meta.get("model_id"), pitch=pitch, seed=meta.get("seed"),
                       latent_directions=arrays["pitch_latent_directions"][i] if latent else None,
                       latent_stdev=arrays["pitch_latent_stdev"][i] if latent else None,
                       names=meta.get("names"))
            for i, pitch in enumerate(pitches)}


# What an original pickle may contain: a dict of strings and plain float
# arrays. The unpickler below maps the few globals numpy's array pickles name
# to stand-ins of our own, which check their arguments and build arrays with
# np.frombuffer; no other global can be named, so no code from the file runs
# and no numpy constructor ever sees state from the file.
_FLOAT_DTYPES = {"f2", "f4", "f8"}
_MAX_PICKLE_BYTES = 1 << 31


class _DtypeStandIn:
    """Takes the place of ``numpy.dtype('f4', align, copy)`` and its pickled state."""

    def __init__(self, spec, align=False, copy=False):
        if not isinstance(spec, str) or spec not in _FLOAT_DTYPES:
            raise pickle.UnpicklingError(f"arrays of dtype {spec!r} (only float arrays are accepted)")
        self.spec, self.byteorder = spec, "="

    def __setstate__(self, state):
        # numpy's dtype state: (version, byteorder, subarray, names, fields, elsize, alignment, flags[, meta])
        if (not isinstance(state, tuple) or len(state) not in (8, 9) or state[1] not in ("<", ">", "=", "|")
                or state[2:5] != (None, None, None)):
            raise pickle.UnpicklingError("a dtype other than a plain float")
        self.byteorder = "=" if state[1] == "|" else state[1]

    def dtype(self):
        return np.dtype(self.byteorder + self.spec)


_NDARRAY = object()  # what "numpy.ndarray" resolves to: only a marker for _reconstruct


class _ArrayStandIn:
    """Takes the place of ``numpy._core.multiarray._reconstruct(ndarray, (0,), b'b')`` and its state."""

    def __init__(self, subtype, shape, typecode):
        if subtype is not _NDARRAY:
            raise pickle.UnpicklingError("an array subclass")
        self.array = None

    def __setstate__(self, state):
        # numpy's ndarray state: ([version,] shape, dtype, is_fortran, raw bytes)
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4:
            raise pickle.UnpicklingError("an array state numpy does not write")
        shape, dtype, fortran, raw = state
        self.array = _array_from_bytes(raw, dtype, shape, "F" if fortran is True else "C")


def _array_from_bytes(raw, dtype, shape, order):
    if not isinstance(dtype, _DtypeStandIn):
        raise pickle.UnpicklingError("an array without a float dtype")
    if isinstance(raw, pickle.PickleBuffer):
        raw = bytes(raw.raw())
    if not isinstance(raw, (bytes, bytearray)):
        raise pickle.UnpicklingError("array data that is not raw bytes (an object array?)")
    if (not isinstance(shape, tuple) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                for s in shape) or order not in ("C", "F")):
        raise pickle.UnpicklingError("an invalid array shape")
    dt = dtype.dtype()
    if len(raw) != math.prod(shape) * dt.itemsize:
        raise pickle.UnpicklingError("array data of the wrong length")
    return np.frombuffer(raw, dtype=dt).reshape(shape, order=order).astype(dt.newbyteorder("="))


def _frombuffer(buffer, dtype, shape, order):
    """Stands in for ``numpy._core.numeric._frombuffer`` (arrays pickled with protocol 5)."""
    return _array_from_bytes(buffer, dtype, shape, order)


def _latin1_encode(text, encoding="latin1"):
    """Stands in for ``_codecs.encode``, which protocol-2 pickles use for bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode used for something other than bytes")
    return text.encode("latin1")


_ALLOWED_GLOBALS = {
    ("numpy._core.multiarray", "_reconstruct"): _ArrayStandIn,
    ("numpy.core.multiarray", "_reconstruct"): _ArrayStandIn,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DtypeStandIn,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _latin1_encode,
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a PCA file has no use for"
                                         ) from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("it refers to persistent objects")


def _load_original_pickle(path):
    if path.stat().st_size > _MAX_PICKLE_BYTES:
        raise PCAError(f"{path}: too large for a PCA file")
    data = path.read_bytes()
    try:
        obj = _SafeUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as error:
        raise PCAError(f"{path}: refused: not a plain GANSpaceSynth PCA pickle: {error}") from None
    except Exception as error:  # a malformed pickle fails in many ways; none of them runs code
        raise PCAError(f"{path}: not a ganspacesynth PCA (.npz) or GANSpaceSynth pickle "
                       f"({type(error).__name__}: {error})") from None
    return _from_original(path, obj)


def _from_original(path, obj):
    def refuse(why):
        return PCAError(f"{path}: refused: not a plain GANSpaceSynth PCA pickle: {why}")

    if not isinstance(obj, dict):
        raise refuse(f"it holds a {type(obj).__name__}, not a dict")
    if not all(isinstance(key, str) for key in obj):
        raise refuse("it has keys that are not strings")
    if set(obj) != _ORIGINAL_KEYS:
        extra, missing = sorted(set(obj) - _ORIGINAL_KEYS), sorted(_ORIGINAL_KEYS - set(obj))
        raise refuse("; ".join(part for part in (f"unexpected keys {', '.join(extra)}" if extra else "",
                                                 f"missing keys {', '.join(missing)}" if missing else "")
                               if part))
    values = {}
    for key, value in obj.items():
        if key in ("layer", "estimator"):
            if not isinstance(value, str):
                raise refuse(f"{key} is a {type(value).__name__}, not a string")
        else:
            if isinstance(value, _ArrayStandIn):
                value = value.array
            if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
                raise refuse(f"{key} is not a float array")
        values[key] = value
    comp, mean = values["comp"], values["global_mean"]
    # GANSpace kept the batch axis of its one-sample probe in some versions.
    if mean.ndim >= 2 and mean.shape[0] == 1 and comp.ndim == mean.ndim + 1 and comp.shape[1] == 1:
        mean, comp = mean[0], comp[:, 0]
    try:
        return PCA(values["layer"], comp, values["stdev"].reshape(-1), values["var_ratio"].reshape(-1), mean,
                   estimator=values["estimator"], source=path)
    except PCAError as error:
        raise PCAError(f"{path}: {error}") from None

"""One loaded copy of a model for every player in the process that names it.

A patch with eight ``[ganspacesynth~]`` voices on one model should cost the
memory and load time of one: the generator's weights and its compiled graphs
are read-only once loaded, so players share them and keep only their own
coefficients, z, pitch and playback. ``shared_model`` hands out that copy.

The copy lives as long as some player holds it (a weak reference here), so
unloading the last voice gives its memory back. A model folder whose files
changed on disk since (a retrained or replaced model) is loaded afresh, not
served from memory. Players on different threads may ask at once: the first
loads, the others wait for it rather than loading their own copy.
"""

import threading
import weakref

from .model import load_model, resolve_model_path
from .threads import configure_threads

_lock = threading.Lock()
_loading = {}                        # key -> lock held while that key loads
_models = weakref.WeakValueDictionary()   # key -> Model


def _files_signature(folder):
    """What identifies the folder's contents cheaply: each file's path, size and mtime."""
    return tuple(sorted((str(path.relative_to(folder)), stat.st_size, stat.st_mtime_ns)
                        for path in folder.rglob("*") if path.is_file()
                        for stat in [path.stat()]))


def shared_model(path, threads=None):
    """The model at ``path`` (a folder or ``default``), loaded once per process.

    Errors are ``load_model``'s. ``threads`` is checked as ``load_model``
    checks it even when the model is already loaded (TensorFlow's thread
    count is process-wide: a different count after the first is an error).
    """
    configure_threads(threads)
    folder = resolve_model_path(path)
    if not folder.is_dir():
        return load_model(path, threads=threads)   # its error says what is wrong
    key = (str(folder.resolve()), _files_signature(folder))
    with _lock:
        model = _models.get(key)
        if model is not None:
            return model
        key_lock = _loading.setdefault(key, threading.Lock())
    with key_lock:
        with _lock:
            model = _models.get(key)
        if model is None:
            try:
                model = load_model(path, threads=threads)
                with _lock:
                    _models[key] = model
            finally:
                with _lock:   # those still waiting hold key_lock and find the model
                    _loading.pop(key, None)
    return model

"""Keep TensorFlow's start-up chatter off the terminal and Pd's console.

TensorFlow 2.16+ logs its informational start-up lines (oneDNN custom
operations, CPU features) through absl from inside its shared libraries, while
``import tensorflow`` loads them. ``TF_CPP_MIN_LOG_LEVEL`` hides some of them
but not the oneDNN lines, which absl writes before TensorFlow reads that
variable. So the first ``import tensorflow`` runs with the process's standard
error (file descriptor 2) passed through a filter that drops exactly those
lines and forwards everything else, in order, as it comes.

``install()`` (run when the package is imported) arranges this for the first
import of TensorFlow, whichever engine module does it, unless the user chose
a TensorFlow log level of their own (``TF_CPP_MIN_LOG_LEVEL``) or asked for
everything (``GANSPACESYNTH_VERBOSE=1``, which the CLI's ``--verbose`` sets).

``hide_retracing_warning()`` drops TensorFlow's warning that a function
"triggered tf.function retracing", for the engine's graphs that are many by
design (one per training stage, per part length, per step of a checked clip).
"""

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import threading

# absl's and TensorFlow's informational lines: "I0000 00:00:1796156085.684301    9568 port.cc:153] ..."
# and the notice absl prints before the first one; the cpu_feature_guard's
# message continues on a second line.
_CHATTER = re.compile(
    rb"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.]+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|To enable the following instructions: .* in other operations, rebuild TensorFlow)")


def is_chatter(line):
    """Whether one line of standard error (bytes) is TensorFlow's informational chatter."""
    return bool(_CHATTER.match(line))


def wanted():
    """Whether the filter should run: the user asked for neither a log level nor verbosity."""
    from . import _TF_LOG_LEVEL_FROM_USER

    return not _TF_LOG_LEVEL_FROM_USER and os.environ.get("GANSPACESYNTH_VERBOSE", "") in ("", "0")


@contextlib.contextmanager
def filtered_stderr(fd=2):
    """Within the block, lines written to ``fd`` (by any thread, C or Python) pass
    through ``is_chatter``: chatter is dropped, the rest reaches the original."""
    if os.name != "posix":
        yield
        return
    try:
        saved = os.dup(fd)
    except OSError:  # no standard error at all: nothing to protect
        yield
        return
    read_end, write_end = os.pipe()

    def forward():
        pending = b""
        with open(read_end, "rb", buffering=0) as pipe:
            while True:
                chunk = pipe.read(65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                out = b"".join(line + b"\n" for line in lines if not is_chatter(line))
                if out:
                    os.write(saved, out)
        if pending and not is_chatter(pending):
            os.write(saved, pending)

    forwarder = threading.Thread(target=forward, name="ganspacesynth-stderr-filter", daemon=True)
    forwarder.start()
    sys.stderr.flush()
    os.dup2(write_end, fd)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, fd)  # closes the pipe's last write end: the forwarder drains and ends
        forwarder.join()
        os.close(saved)


class _QuietLoader(importlib.abc.Loader):
    """The real loader of the ``tensorflow`` package, run inside ``filtered_stderr``."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with filtered_stderr():
            self._loader.exec_module(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _QuietFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        uninstall()  # once: and find_spec below must not come back here
        if not wanted():
            return None
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


_FINDER = _QuietFinder()


def install():
    """Filter the first ``import tensorflow`` (if TensorFlow is not imported yet)."""
    if "tensorflow" not in sys.modules and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall():
    with contextlib.suppress(ValueError):
        sys.meta_path.remove(_FINDER)


class _NoRetracingWarning(logging.Filter):
    # TensorFlow counts the traces of every graph made from one Python function
    # together and warns after five: the engine makes its graphs from one
    # function on purpose, each traced once (the shapes differ).
    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


def hide_retracing_warning():
    """Drop TensorFlow's retracing warning from its logger (once; later calls do nothing)."""
    import tensorflow as tf

    logger = tf.get_logger()
    if not any(isinstance(f, _NoRetracingWarning) for f in logger.filters):
        logger.addFilter(_NoRetracingWarning())

"""How many threads TensorFlow computes with, so that the audio keeps a core.

A generation takes every core TensorFlow is given; on a 2-core laptop that
leaves Pd's audio thread nothing. The engine therefore defaults to one
compute thread fewer than the machine has cores (at least one). The count
comes from, in order: an explicit ``threads`` (``load_model(threads=)``,
``Instrument(threads=)``, Pd's ``threads N`` message), the environment
variable ``GANSPACESYNTH_THREADS``, the default.

The count sizes TensorFlow's intra-op pool (the threads one operation's
arithmetic is split across); the inter-op pool (operations run side by
side) gets one thread, as the generator is a chain of operations, so at most
``threads`` cores compute at once.

TensorFlow reads these sizes once per process, when it starts its first
operation. Before that a count takes effect; afterwards asking for a
different one raises a ``GanspacesynthError`` that says so (the same count is
fine), and a count that only comes from the default or the environment is
left as it is. Nor does a default or environment count replace one already
given to TensorFlow in this process by other code.
"""

import os

from .errors import GanspacesynthError

THREADS_ENV = "GANSPACESYNTH_THREADS"
MAX_THREADS = 1024


def default_threads():
    """One fewer than the machine's cores, at least one."""
    return max(1, (os.cpu_count() or 1) - 1)


def check_threads(value, what="threads"):
    """``value`` as a count of threads, or a ``GanspacesynthError`` that says what is wrong."""
    if isinstance(value, bool):
        raise GanspacesynthError(f"{what}: expected a whole number of threads from 1, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise GanspacesynthError(f"{what}: expected a whole number of threads from 1, got {value!r}") from None
    if not (number == number and number == int(number) and 1 <= number <= MAX_THREADS):
        raise GanspacesynthError(f"{what}: expected a whole number of threads from 1 to {MAX_THREADS}, "
                                 f"got {value!r}")
    return int(number)


def requested_threads(threads=None):
    """(count, explicit): the count to use and whether a caller asked for it by name."""
    if threads is not None:
        return check_threads(threads), True
    text = os.environ.get(THREADS_ENV, "").strip()
    if text:
        return check_threads(text, THREADS_ENV), False
    return default_threads(), False


def current_threads():
    """The intra-op thread count TensorFlow was given in this process (0: TensorFlow's own choice)."""
    import tensorflow as tf

    return tf.config.threading.get_intra_op_parallelism_threads()


def configure_threads(threads=None):
    """Give TensorFlow its thread count if it has not started yet; return the count in effect.

    An explicit ``threads`` that TensorFlow can no longer take raises a
    ``GanspacesynthError``; a default or environment count is then ignored.
    """
    import tensorflow as tf

    count, explicit = requested_threads(threads)
    if not explicit and current_threads():
        return current_threads()  # someone in this process chose already (e.g. training's --threads)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(count)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        running = current_threads()
        if explicit and running != count:
            raise GanspacesynthError(
                f"threads: TensorFlow already computes with {running or 'its own number of'} "
                f"thread(s) in this process and cannot change; {count} takes effect when the "
                f"process starts again (send 'threads' before the first load, or set "
                f"{THREADS_ENV})") from None
    return current_threads() or count


def use_every_core():
    """For work that runs offline (the command line's generate, pca, directions, ...): give
    TensorFlow every core, unless ``GANSPACESYNTH_THREADS`` says otherwise or a count was
    already chosen in this process. The one-fewer default is for playing live. Returns the
    count in effect."""
    if os.environ.get(THREADS_ENV, "").strip() or current_threads():
        return configure_threads()
    try:
        return configure_threads(os.cpu_count() or 1)
    except GanspacesynthError:  # TensorFlow started already, with its own count: keep it
        return configure_threads()


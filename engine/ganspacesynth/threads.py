"""How many threads TensorFlow computes with, without taking the audio its core.

A generation takes every core TensorFlow is given; on a 2-core laptop that
can leave Pd's audio thread nothing. What keeps the audio out of harm's way
is its priority, not the count: the engine's threads run nicer than Pd's
(the Pd objects' workers lower their own priority), and a Pd with
real-time priority (``pd -rt``, Linux's default for a Pd that may have it)
preempts them the moment its audio wakes. So the default count is every core when this process's main thread
(Pd's) runs at real-time priority, and one fewer than the cores (at least
one) otherwise. Measured under JACK with a full-size model on 2 cores
(``benchmarks/RESULTS.md``): with ``-rt``, two compute threads counted no
more xruns of Pd than one (0 with generation on, at 64- and 256-frame
periods) and cut knob-to-sound time by a third; without real-time priority
the count did not decide either (at 64 frames 576 xruns with two, 759 with
one), and there one fewer stays, as the safer guess.

The count comes from, in order: an explicit ``threads``
(``load_model(threads=)``, ``Instrument(threads=)``, Pd's ``threads N``
message), the environment variable ``GANSPACESYNTH_THREADS``, the default.

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


def main_thread_is_realtime():
    """Whether this process's main thread runs at real-time priority (SCHED_FIFO or
    SCHED_RR): in Pd, whether Pd's own thread does. False where that cannot be asked
    (macOS has no ``sched_getscheduler``)."""
    try:
        # a process id names its main thread: Pd's, not the worker asking
        return os.sched_getscheduler(os.getpid()) in (os.SCHED_FIFO, os.SCHED_RR)
    except (AttributeError, OSError):
        return False


def default_threads():
    """Every core when the main thread (Pd's) runs at real-time priority, else one fewer
    than the cores, at least one."""
    cores = os.cpu_count() or 1
    return cores if main_thread_is_realtime() else max(1, cores - 1)


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


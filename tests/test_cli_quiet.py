"""Quiet by default: TensorFlow's start-up chatter (oneDNN, CPU features, the
absl notice before them) reaches neither the CLI's terminal nor, through the
same package import, Pd's console, unless the user asks for it with
``--verbose`` or a TF_CPP_MIN_LOG_LEVEL of their own."""

import os
import platform
import re
import subprocess
import sys
import textwrap

import pytest

from ganspacesynth.quiet import is_chatter

TF_LINE = re.compile(r"oneDNN|cpu_feature_guard|absl::InitializeLog|tensorflow|^[IWE]\d{4} ", re.M | re.I)


def _environment(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "GANSPACESYNTH_VERBOSE")}
    env.update(extra)
    return env


def _cli(*args, **env):
    return subprocess.run([sys.executable, "-m", "ganspacesynth", *args], capture_output=True, text=True,
                          env=_environment(**env), timeout=600)


@pytest.mark.slow
def test_info_default_prints_no_tensorflow_lines():
    result = _cli("info", "default")
    assert result.returncode == 0, result.stderr
    assert "latent" in result.stdout
    assert not TF_LINE.search(result.stdout), result.stdout
    assert not TF_LINE.search(result.stderr), result.stderr


@pytest.mark.slow
@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="TensorFlow prints its start-up lines (oneDNN, CPU features) only on x86-64")
def test_verbose_shows_them():
    result = _cli("info", "default", "--verbose")
    assert result.returncode == 0, result.stderr
    assert TF_LINE.search(result.stderr), result.stderr


@pytest.mark.slow
@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="TensorFlow prints its start-up lines (oneDNN, CPU features) only on x86-64")
def test_a_level_of_the_users_own_is_left_to_tensorflow():
    result = _cli("info", "default", TF_CPP_MIN_LOG_LEVEL="0")
    assert result.returncode == 0, result.stderr
    assert TF_LINE.search(result.stderr), result.stderr


def test_the_filter_drops_chatter_only():
    assert is_chatter(b"I0000 00:00:1796156085.684301    9568 port.cc:153] oneDNN custom operations are on.")
    assert is_chatter(b"W0000 00:00:1796156085.684301    9568 cpu_feature_guard.cc:227] This TensorFlow")
    assert is_chatter(b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert not is_chatter(b"E0000 00:00:1796156085.684301    9568 meta_optimizer.cc:966] model pruner failed")
    assert not is_chatter(b"Traceback (most recent call last):")
    assert not is_chatter(b"print: I0000 looks like a log line but is a Pd message")


def test_filtered_stderr_keeps_everything_else_in_order():
    """C-level writes to file descriptor 2, from the main thread and another one,
    while the filter runs: chatter goes, the rest arrives whole and in order."""
    script = textwrap.dedent("""
        import os, sys, threading
        from ganspacesynth.quiet import filtered_stderr
        with filtered_stderr():
            os.write(2, b"before\\n")
            os.write(2, b"I0000 00:00:1796156085.684301    9568 port.cc:153] oneDNN custom operations\\n")
            t = threading.Thread(target=lambda: os.write(2, b"from a thread\\n"))
            t.start(); t.join()
            print("python's own stderr", file=sys.stderr)
            os.write(2, b"E0000 00:00:1.2 1 x.cc:1] a real error\\nno newline at the end")
        os.write(2, b"\\nafter\\n")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=_environment(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "before", "from a thread", "python's own stderr", "E0000 00:00:1.2 1 x.cc:1] a real error",
        "no newline at the end", "after"]

"""[hallu] as a newcomer meets it, in real Pd: 'load default' then
'generate' composes with no other step (the default model brings its own
PCA), 'mode' and 'pitch' reach the engine, and Hallu's errors reach Pd's console
in full (the panel's 'last error' line is fed from the same place).

Patches chain on replies and quit themselves, with Pd's real-time scheduler,
as in test_hallu_pd.py.
"""

import pytest

from pd_helpers import REPO, printed, run_pd
from test_hallu_pd import hallu_harness, pd_dir  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.pd, pytest.mark.slow]

HALLU = REPO / "hallu"


def run(patch, pd_dir, *sends):
    extra = ["-path", str(HALLU)]
    for message in sends:
        extra += ["-send", message]
    return run_pd(patch, pd_dir, extra=extra, batch=False)


def test_load_default_then_generate(pd_dir, tmp_path):  # noqa: F811
    patch = hallu_harness(tmp_path / "plays.pd", [("loaded", "generate"), ("generated", None)])
    code, stderr = run(patch, pd_dir, "hallu-test load default")
    events = printed(stderr, "hallu")
    assert code == 0, stderr
    assert [e for e in events if e.startswith("error")] == [], stderr
    loaded = [e for e in events if e.startswith("loaded ")]
    assert loaded and int(loaded[0].split()[1]) > 0, events   # the model's own PCA came with it
    assert any(e.startswith("generated ") for e in events), events


def test_mode_and_pitch_reach_the_engine(pd_dir, tmp_path):  # noqa: F811
    # 'mode' and 'pitch' answer nothing themselves: a preview after them, with no error, shows
    # the engine took them (a wrong one is an error: the next test).
    patch = hallu_harness(tmp_path / "modes.pd", [("loaded", "preview"), ("ready", None)])
    code, stderr = run(patch, pd_dir, "hallu-test load default", "hallu-test mode latent",
                       "hallu-test pitch 60")
    events = printed(stderr, "hallu")
    assert code == 0, stderr
    assert [e for e in events if e.startswith("error")] == [], stderr


def test_errors_in_full_on_the_console(pd_dir, tmp_path):  # noqa: F811
    patch = hallu_harness(tmp_path / "errors.pd", [])   # quits on the first error
    code, stderr = run(patch, pd_dir, "hallu-test save-wav x.wav")
    assert code == 0, stderr
    assert printed(stderr, "hallu-error") == [
        "save-wav: nothing generated yet (send 'generate' and wait for 'generated')"], stderr

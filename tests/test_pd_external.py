"""The Pd external [ganspacesynth~] in real Pd, without GUI or audio device.

Each test writes a patch into tmp_path and runs it; the patch chains on the
object's replies and quits itself. Pd runs in batch mode (``pd -batch``)
where a test needs its racing clock, else with its real-time scheduler, which
leaves the engine the CPU (see pd_helpers.py). The external comes from
GANSPACESYNTH_PD_PATH, the installed package, or a CMake build made once per
session (see pd_helpers.py).
"""

import os
import random
import re

import numpy as np
import pytest

from pd_helpers import Patch, REPO, cmake_build, locate_external, printed, run_pd
from pd_patch import parse_stats

pytestmark = [pytest.mark.pd, pytest.mark.slow]

FIXTURE = REPO / "tests" / "data" / "gansynth-reference"
FIXTURE_PCA = FIXTURE / "pca_conv0.pickle"
PD_RATE = 44100  # -noaudio without -r
# The clip travels engine -> bridge -> clip buffer -> Pd array -> 32-bit
# float WAV: nothing on the way rounds, so only TensorFlow's run-to-run
# differences (thread scheduling in oneDNN) remain.
TOLERANCE = 1e-4


@pytest.fixture(scope="session")
def pd_dir():
    return locate_external(REPO / "build" / "pd-tests")


def engine_clip(audio, model):
    import soxr

    return soxr.resample(np.asarray(audio, np.float32), model.sample_rate, PD_RATE, quality="HQ")


def relative_error(out, ref):
    assert out.shape == ref.shape, f"clip of {out.shape} samples, the engine made {ref.shape}"
    return float(np.abs(out - ref).max() / np.abs(ref).max())


def read_wav(path):
    import soundfile

    audio, rate = soundfile.read(str(path), dtype="float32")
    assert rate == PD_RATE
    return audio


def generating_object(patch, setup, wav, done):
    """[ganspacesynth~] that receives `setup` at load, writes its first clip to
    `wav` through an array, then bangs `done`; an error bangs `done` too."""
    name = f"clip{len(patch.lines)}"
    load = patch.obj("loadbang")
    messages = patch.msg(setup)
    gss = patch.obj("ganspacesynth~")
    route = patch.obj("route ready written error")
    write = patch.msg(f"write {name}")
    save = patch.msg(f"write -wave -bytes 4 {wav} {name}")
    soundfiler = patch.obj("soundfiler")
    patch.obj(f"table {name}")
    show = patch.obj("print reply")
    patch.chain(load, messages, gss)
    patch.connect(gss, 1, show)     # first: `pd quit` exits at once
    patch.connect(gss, 1, route)
    patch.connect(route, 0, write)
    patch.connect(write, 0, gss)
    patch.connect(route, 1, save)
    patch.chain(save, soundfiler, done)
    patch.connect(route, 2, done)


def quit_after(patch, n):
    """An object to send anything n times before Pd quits."""
    entry = patch.obj("t b")
    count = patch.obj("f")
    patch.connect(entry, 0, count)
    plus = patch.obj("+ 1")
    select = patch.obj(f"sel {n}")
    quit_ = patch.msg("; pd quit")
    patch.connect(count, 0, plus)
    patch.connect(plus, 0, count, 1)
    patch.connect(plus, 0, select)
    patch.connect(select, 0, quit_)
    return entry


def pca_support():
    try:
        from ganspacesynth.pca import load_pca, synthesize  # noqa: F401
    except ImportError:
        return False
    return True


def test_generated_clip_matches_the_engine(pd_dir, tmp_path, reference_model):
    """z and pitch (mode z, no PCA) and, with the PCA, coefficients in layer space:
    the clip Pd writes is the engine's clip resampled to Pd's rate."""
    with_pca = pca_support()
    patch = Patch()
    done = quit_after(patch, 2 if with_pca else 1)
    generating_object(patch, f"load {FIXTURE}, mode z, z-random 3, pitch 60, generate",
                      tmp_path / "z.wav", done)
    if with_pca:
        generating_object(patch, f"load {FIXTURE} {FIXTURE_PCA}, coeffs 1.5 -0.5 0.25, generate",
                          tmp_path / "pca.wav", done)
    code, stderr = run_pd(patch.write(tmp_path / "generate.pd"), pd_dir, batch=False)
    replies = printed(stderr, "reply")
    assert code == 0, stderr[-3000:]
    assert not [r for r in replies if r.startswith("error")], replies

    model = reference_model
    expected = engine_clip(model.generate(model.random_z(1, seed=3), 60)[0], model)
    error = relative_error(read_wav(tmp_path / "z.wav"), expected)
    print(f"z mode: max |Pd - engine| / peak = {error:.2e}")
    assert error <= TOLERANCE

    if not with_pca:
        pytest.skip("the engine cannot load PCAs yet: only z generation was compared")
    from ganspacesynth.pca import load_pca, synthesize

    pca = load_pca(FIXTURE_PCA)
    coefficients = np.zeros(pca.n_components, np.float32)
    coefficients[:3] = [1.5, -0.5, 0.25]
    expected = engine_clip(synthesize(model, pca, coefficients, space="layer"), model)
    error = relative_error(read_wav(tmp_path / "pca.wav"), expected)
    print(f"layer mode with PCA: max |Pd - engine| / peak = {error:.2e}")
    assert error <= TOLERANCE
    assert f"loaded {pca.n_components} 16000 64000" in replies


def test_paths_and_bad_input(pd_dir, tmp_path):
    """Model and PCA paths are found relative to the patch, then along Pd's
    search path; each mistake gets its own `error` reply that says what is
    wrong."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine").symlink_to(FIXTURE)
    searched = tmp_path / "elsewhere"
    searched.mkdir()
    (searched / "theirs").symlink_to(FIXTURE)
    (searched / "directions.pickle").symlink_to(FIXTURE_PCA)
    bad = [
        ("load models/mine", None),                   # beside the patch
        ("load theirs directions.pickle", None),      # on the search path
        ("unload", None),
        # (no `generate` here: the one below would replace it while it waits)
        ("pitch 60", "no model loaded"),
        ("load /nonexistent/model", "no such model folder"),
        ("frobnicate 1 2", "unknown message 'frobnicate'"),
        ("pitch sixty", "pitch: expected one number"),
        ("coeffs 1 two", "coeffs: expected numbers only"),
        ("write nowhere", "write: no clip yet"),
        ("xfade -5", "xfade: -5 ms is outside"),
        ("z-random 1.5", "z-random: seed 1.5"),
        (f"load {FIXTURE}", None),
        ("pitch 200", "pitch: 200 is not a pitch this model was trained on (valid: 24..84)"),
        ("mode sideways", "mode: unknown mode 'sideways'"),
        ("coeffs 1 1e+39", "coeffs: value 1 is inf"),
        ("mode layer", None),
        ("generate", "no PCA loaded"),
        ("z-array nosuch", "z-array: no array named 'nosuch'"),
        ("coeffs-array coeffs", None),     # a 3-value array of zeros: accepted
        ("hallucinate nosuch", "hallucinate: no array named 'nosuch'"),
        ("pca /nonexistent/pca.pickle", "pca:"),
    ]
    patch = Patch()
    patch.obj("table coeffs 3")
    load = patch.obj("loadbang")
    messages = patch.msg(", ".join(message for message, _ in bad))
    gss = patch.obj("ganspacesynth~")
    show = patch.obj("print reply")
    quit_ = patch.msg("; pd quit")
    patch.chain(load, messages, gss)
    patch.connect(gss, 1, show)
    # The worker answers in queue order: the last job's error ends the test.
    last = patch.obj("route error")
    select = patch.obj("route pca:")
    patch.connect(gss, 1, last)
    patch.connect(last, 0, select)
    patch.connect(select, 0, quit_)
    code, stderr = run_pd(patch.write(tmp_path / "errors.pd"), pd_dir, extra=["-path", str(searched)],
                          batch=False)
    assert code == 0, stderr[-3000:]
    replies = printed(stderr, "reply")
    loaded = [r for r in replies if r.startswith("loaded")]
    assert loaded[:2] == ["loaded 0 16000 64000", "loaded 32 16000 64000"], replies
    errors = [r[len("error "):] for r in replies if r.startswith("error")]
    expected = [text for _, text in bad if text]
    assert len(errors) == len(expected), "\n".join(errors)
    # Mistakes found on Pd's thread are answered at once, the engine's later:
    # match them regardless of order.
    unmatched = list(errors)
    for want in expected:
        found = [got for got in unmatched if want in got]
        assert found, f"no error reply says {want!r}; replies: {errors}"
        unmatched.remove(found[0])
    # Pd's own console line accompanies each reply, and nothing else complains.
    console = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(console) == len(expected), "\n".join(console)


def counter(patch, source, outlet, *values):
    """[sel values...] fed by a count of the messages out of source's outlet."""
    as_bang = patch.obj("t b")  # a message like `ready MS` would set the count to MS
    count = patch.obj("f")
    plus = patch.obj("+ 1")
    select = patch.obj("sel " + " ".join(map(str, values)))
    patch.connect(source, outlet, as_bang)
    patch.chain(as_bang, count, plus, select)
    patch.connect(plus, 0, count, 1)
    return select


def test_pd_never_waits_for_the_engine(pd_dir, tmp_path):
    """With every generation slowed by 1 s, Pd's scheduler and DSP keep running:
    logical time and the object's perform calls advance while the worker
    works; `stats` gives the perform routine's worst and mean time."""
    patch = Patch()
    load = patch.obj("loadbang")
    setup = patch.msg(f"; pd dsp 1; gss load {FIXTURE}, mode z")
    receive = patch.obj("r gss")
    gss = patch.obj("ganspacesynth~")
    out = patch.obj("dac~")
    show = patch.obj("print reply")
    route = patch.obj("route loaded ready stats")
    patch.chain(load, setup)
    patch.chain(receive, gss, out)
    patch.connect(gss, 1, show)     # first: `pd quit` exits at once
    patch.connect(gss, 1, route)
    logical = patch.obj("timer")
    wall = patch.obj("realtime")
    patch.connect(logical, 0, patch.obj("print logical-ms"))
    patch.connect(wall, 0, patch.obj("print wall-ms"))
    # 1. `loaded`: start the clocks; `play` before any clip exists, so that
    # the perform routine counts the blocks it runs until the first clip.
    start = patch.obj("t b b b")
    first = patch.msg("stats reset, play, loop 1, generate")
    patch.connect(route, 0, start)
    patch.connect(start, 2, logical)
    patch.connect(start, 1, wall)
    patch.chain(start, first, gss)
    # 2. first `ready`: stop the clocks, report, and generate again while the
    # first clip loops: the new one swaps in with a crossfade.
    readies = counter(patch, route, 1, 1, 2)
    finish = patch.obj("t b b b")
    second = patch.msg("stats, stats reset, generate")
    patch.connect(readies, 0, finish)
    patch.connect(finish, 2, logical, 1)
    patch.connect(finish, 1, wall, 1)
    patch.chain(finish, second, gss)
    # 3. second `ready`: report again; the second report quits
    last = patch.msg("stats")
    patch.connect(readies, 1, last)
    patch.connect(last, 0, gss)
    patch.connect(counter(patch, route, 2, 2), 0, patch.msg("; pd quit"))

    code, stderr = run_pd(patch.write(tmp_path / "nonblocking.pd"), pd_dir,
                          env={"GANSPACESYNTH_TEST_DELAY": "1"})
    assert code == 0, stderr[-3000:]
    wall_ms = float(printed(stderr, "wall-ms")[0])
    logical_ms = float(printed(stderr, "logical-ms")[0])
    first, second = [parse_stats(r) for r in printed(stderr, "reply") if r.startswith("stats")]
    print(f"\nfirst generation (TensorFlow tracing + 1 s test delay): {wall_ms:.0f} ms of wall clock; "
          f"meanwhile Pd's logical time advanced {logical_ms:.0f} ms and the perform routine ran "
          f"{first['silent_blocks']:.3g} blocks waiting for the clip; worst block {first['max_us']:.1f} us "
          f"({first['cpu_max_us']:.1f} us of CPU), mean {first['mean_us']:.3f} us")
    print(f"second generation, playing the first clip in a loop until the new one swapped in: "
          f"perform routine worst {second['max_us']:.1f} us ({second['cpu_max_us']:.1f} us of CPU), "
          f"mean {second['mean_us']:.3f} us per 64-sample block")
    assert wall_ms >= 1000, "the test delay did not apply"
    # A blocked scheduler would neither move logical time nor call perform
    # while the worker sleeps: batch mode runs far ahead of the wall clock.
    assert logical_ms > wall_ms
    assert first["silent_blocks"] > 1000
    assert first["swaps"] == 1 and second["swaps"] == 1 and second["silent_blocks"] == 0
    for report in (first, second):
        assert report["mean_us"] < 20
        # the thread's own CPU time is part of the wall time it took
        assert 0 <= report["cpu_max_us"] <= report["max_us"] + 1
        # a block over 50 us of CPU only when the worst was
        assert 0 <= report["slow_blocks"] <= report["blocks"]
        assert (report["slow_blocks"] > 0) == (report["cpu_max_us"] > 50)
        # The worst block includes the OS preempting Pd's thread (2 cores shared
        # with TensorFlow's threads): a sanity bound, not a real-time guarantee.
        assert report["max_us"] < 100_000
    assert 0 < first["cpu_mean_us"] <= first["mean_us"] + 1
    # every block counted since the reset (the first report's include the silent ones)
    assert first["blocks"] >= first["silent_blocks"] and second["blocks"] > 0


def test_a_newer_generate_stops_a_long_whole_clip(pd_dir, tmp_path):
    """A knob turned while the last turn's whole clip is computed (0.3 s on the full-size
    architecture) need not wait for it: the engine asks between the clip's steps of a few
    layers, and the object stops it there. Here each step is slowed to 0.5 s (about 3 s a
    whole clip): the second `generate` comes 1 s into the first's whole clip, and only its
    own clip is ever `ready`; a first clip finished anyway would be `ready` too."""
    patch = Patch()
    load = patch.obj("loadbang")
    gss = patch.obj("ganspacesynth~")
    patch.chain(load, patch.msg(f"load {FIXTURE} {FIXTURE_PCA}"), gss)
    patch.connect(gss, 1, patch.obj("print reply"))
    route = patch.obj("route loaded ready")
    patch.connect(gss, 1, route)
    first = patch.msg("coeff 0 1.5, generate")
    patch.chain(route, first, gss)
    later = patch.obj("delay 1000")
    patch.connect(route, 0, later)
    patch.chain(later, patch.msg("coeff 0 -1.5, generate"), gss)
    # after the first `ready`, time enough for another whole clip before quitting
    patch.chain(counter(patch, route, 1, 1), patch.obj("delay 4000"), patch.msg("; pd quit"))
    code, stderr = run_pd(patch.write(tmp_path / "newer.pd"), pd_dir, batch=False,
                          env={"GANSPACESYNTH_TEST_CHECK_DELAY": "0.5"})
    assert code == 0, stderr[-3000:]
    replies = printed(stderr, "reply")
    assert not [r for r in replies if r.startswith("error")], replies
    ready = [r for r in replies if r.startswith("ready")]
    assert len(ready) == 1, replies


def test_hallucinate_matches_the_engine(pd_dir, tmp_path, reference_model):
    """`hallucinate ARRAY` renders the steps with the Hallu settings into the
    array, with `progress` on the way, as ganspacesynth.hallucinate does."""
    if not pca_support():
        pytest.fail("the engine cannot load PCAs, so Hallu cannot run", pytrace=False)
    steps = [[2.0, 0.0, -1.0], [-1.0, 1.5], [0.5, -2.0, 0.0, 1.0]]
    settings = {"interp": 2, "spacing": 0.15, "trim": 0.1, "attack": 0.2, "sustain": 0.3, "release": 0.4}
    patch = Patch()
    load = patch.obj("loadbang")
    messages = patch.msg(", ".join([f"load {FIXTURE} {FIXTURE_PCA}", "steps-clear"]
                                   + [f"step {' '.join(map(str, s))}" for s in steps]
                                   + [f"{k} {v}" for k, v in settings.items()]
                                   + ["hallucinate composition"]))
    gss = patch.obj("ganspacesynth~")
    patch.obj("table composition")
    show = patch.obj("print reply")
    route = patch.obj("route written error")
    save = patch.msg(f"write -wave -bytes 4 {tmp_path / 'hallu.wav'} composition")
    soundfiler = patch.obj("soundfiler")
    quit_ = patch.msg("; pd quit")
    patch.chain(load, messages, gss)
    patch.connect(gss, 1, show)
    patch.connect(gss, 1, route)
    patch.connect(route, 0, save)
    patch.chain(save, soundfiler, quit_)
    patch.connect(route, 1, quit_)
    code, stderr = run_pd(patch.write(tmp_path / "hallu.pd"), pd_dir, batch=False)
    replies = printed(stderr, "reply")
    assert code == 0, stderr[-3000:]
    assert not [r for r in replies if r.startswith("error")], replies
    progress = [float(r.split()[1]) for r in replies if r.startswith("progress")]
    assert progress and progress[-1] == 1.0 and progress == sorted(progress)

    from ganspacesynth import hallucinate
    from ganspacesynth.pca import load_pca

    pca = load_pca(FIXTURE_PCA)
    padded = np.zeros((len(steps), pca.n_components), np.float32)
    for row, step in zip(padded, steps):
        row[:len(step)] = step
    audio, _ = hallucinate(reference_model, pca, padded, interp_steps=2, spacing=0.15, start_trim=0.1,
                           attack=0.2, sustain=0.3, release=0.4)
    expected = engine_clip(audio, reference_model)
    written = read_wav(tmp_path / "hallu.wav")
    assert f"written composition {len(expected)}" in replies
    error = relative_error(written, expected)
    print(f"Hallu: max |Pd - engine| / peak = {error:.2e}")
    assert error <= TOLERANCE


def test_load_default_brings_its_pca(pd_dir, tmp_path):
    """'load default' loads the default model's own PCA: 'generate' plays (layer
    mode) with no other message; 'load default none' loads no PCA."""
    from ganspacesynth.pca import load_pca

    own = load_pca("default").n_components
    patch = Patch()
    done = quit_after(patch, 2)
    generating_object(patch, "load default, generate", tmp_path / "own.wav", done)
    # without the PCA, layer mode has nothing to play: an error, then done
    generating_object(patch, "load default none, generate", tmp_path / "none.wav", done)
    code, stderr = run_pd(patch.write(tmp_path / "own-pca.pd"), pd_dir, batch=False)
    replies = printed(stderr, "reply")
    assert code == 0, stderr[-3000:]
    assert f"loaded {own} 16000 64000" in replies, replies
    assert "loaded 0 16000 64000" in replies, replies
    assert (tmp_path / "own.wav").is_file(), replies
    assert len(read_wav(tmp_path / "own.wav")) == 4 * PD_RATE
    errors = [r for r in replies if r.startswith("error")]
    assert len(errors) == 1 and "generate: no PCA loaded" in errors[0], replies


def error_counter(patch, gss, n, done):
    """Bang `done` after the n-th `error` reply of gss."""
    errors = patch.obj("route error")
    patch.connect(gss, 1, errors)
    patch.connect(counter(patch, errors, 0, n), 0, done)


def test_knob_names_and_find(pd_dir, tmp_path):
    """Named directions and 'find this sound' in Pd, on the default model: `loaded` is
    followed by `names ...` when the PCA's components have names; `knob NAME V` is
    `coeff I V` for the component called NAME; `find FILE STEPS LAYER_STEPS` answers
    `progress F` and `found DISTANCE PITCH C0 ...` and leaves the object playing the found
    point; each mistake is an error that changes nothing. Pd runs at the model's rate, so
    that the clips it writes are the engine's own, unresampled."""
    import soundfile

    from ganspacesynth import load_model
    from ganspacesynth.invert import audio_distance
    from ganspacesynth.pca import load_pca
    from named_pca import NAMES, write_named_pca

    model = load_model("default")
    named = write_named_pca(tmp_path / "named.npz", "default")
    pitch = model.pitches[len(model.pitches) // 2]
    target = model.generate(model.random_z(1, seed=11), pitch)[0]
    soundfile.write(tmp_path / "target.wav", target, model.sample_rate)
    patch = Patch()
    done = quit_after(patch, 4)
    generating_object(patch, f"load default {named}, knob brightness 1.5, generate",
                      tmp_path / "knob.wav", done)
    # a file with a set of its own at this pitch: z mode plays that set there
    per_pitch = write_named_pca(tmp_path / "per-pitch.npz", "default", pitches=[pitch])
    generating_object(patch, f"load default {per_pitch}, mode z, z-random 5, pitch {pitch}, knob brightness 1.5, "
                             "generate", tmp_path / "knob-at-pitch.wav", done)
    # z mode, no layer steps: z and pitch alone are the found point (the quickest search)
    generating_object(patch, f"load default {named}, mode z, find target.wav 2 0, generate",
                      tmp_path / "found.wav", done)
    mistakes = [
        ("load default none", None),
        ("knob loudness 1", "knob: no PCA loaded"),
        ("pca default", None),
        ("knob loudness 1", "knob: the PCA's components have no names"),
        (f"pca {named}", None),
        ("pca named", None),  # the default model's own named directions, found in its folder
        ("knob colour 1", "knob: no component is called 'colour'; the names are " + " ".join(NAMES)),
        ("knob 3 1", "knob: expected a component's name and a value"),
        ("find", "find: expected an audio file"),
        ("find target.wav -1", "find: the steps must be a whole number from 0 to"),
        ("find nothing.wav", "find: "),
    ]
    load = patch.obj("loadbang")
    messages = patch.msg(", ".join(message for message, _ in mistakes))
    gss = patch.obj("ganspacesynth~")
    patch.connect(gss, 1, patch.obj("print mistakes"))
    patch.chain(load, messages, gss)
    expected = [text for _, text in mistakes if text]
    error_counter(patch, gss, len(expected), done)
    code, stderr = run_pd(patch.write(tmp_path / "named.pd"), pd_dir, timeout=1800,
                          extra=["-r", str(model.sample_rate)], batch=False)
    assert code == 0, stderr[-3000:]
    replies = printed(stderr, "reply")
    assert not [r for r in replies if r.startswith("error")], replies
    assert replies.count("loaded 4 16000 64000") == 3 and replies.count("names " + " ".join(NAMES)) == 3, replies

    def clip(name):
        audio, rate = soundfile.read(str(tmp_path / name), dtype="float32")
        assert rate == model.sample_rate
        return audio

    # knob brightness 1.5 is coeff 0 1.5
    expected_clip = model.synthesize(load_pca(named), [1.5], space="layer")
    assert relative_error(clip("knob.wav"), expected_clip) <= TOLERANCE
    z = model.random_z(1, seed=5)[0]
    at_pitch = model.synthesize(load_pca(per_pitch).pitch_sets[pitch], [1.5], z=z, pitch=pitch, space="z")
    assert relative_error(clip("knob-at-pitch.wav"), at_pitch) <= TOLERANCE
    pooled = model.synthesize(load_pca(named), [1.5], z=z, pitch=pitch, space="z")
    assert relative_error(pooled, at_pitch) > 100 * TOLERANCE

    progress = [float(r.split()[1]) for r in replies if r.startswith("progress")]
    assert progress and progress[-1] == 1.0 and progress == sorted(progress), replies
    found = [r.split()[1:] for r in replies if r.startswith("found")]
    assert len(found) == 1 and len(found[0]) == 2 + len(NAMES), replies
    distance, found_pitch = float(found[0][0]), int(found[0][1])
    assert found_pitch in model.pitches and np.abs(np.array(found[0][2:], float)).max() < 1e-3
    # what the object now plays is the found point: its distance to the target is the reply's,
    # and nearer than the clip it played before (z of seed 0 at the default pitch)
    played = clip("found.wav")
    before = model.generate(model.random_z(1, seed=0), model.default_pitch)[0]
    print(f"find: distance {distance:.3f} at pitch {found_pitch} (the target's pitch {pitch}; the clip "
          f"before: {audio_distance(before, target):.3f})")
    # (the reply has Pd's 6 digits, and TensorFlow differs a little from run to run)
    assert audio_distance(played, target) == pytest.approx(distance, rel=5e-3)
    assert distance < audio_distance(before, target)

    # `pca FILE` and `pca named` each loaded named directions
    assert printed(stderr, "mistakes").count("names " + " ".join(NAMES)) == 2, printed(stderr, "mistakes")
    errors = [r[len("error "):] for r in printed(stderr, "mistakes") if r.startswith("error")]
    assert len(errors) == len(expected), errors
    for want in expected:
        assert [got for got in errors if got.startswith(want)], f"no error reply says {want!r}: {errors}"
    assert "cannot read" in errors[-1] and "nothing.wav" in errors[-1]


def test_every_message_is_in_the_help_reference_and_the_readme():
    """Each message the external takes (its class_addmethod names, bang aside) is named in
    its help patch's [pd reference] and in the README's table of messages, so that a
    message added to the C cannot go undocumented (`threads` once was, in the help)."""
    source = (REPO / "pd_external" / "ganspacesynth~.c").read_text()
    names = set(re.findall(r'class_addmethod\([^;]*?gensym\("([^"]+)"\)', source)) - {"dsp"}
    settings = re.search(r"hallu_settings\[\] = \{([^}]*)\}", source).group(1)
    names |= set(re.findall(r'"([^"]+)"', settings))
    assert {"load", "threads", "stats", "interp", "release"} <= names, names  # the patterns still match

    help_patch = (REPO / "pd_external" / "ganspacesynth~-help.pd").read_text()
    reference = help_patch[help_patch.index("reference 0;"):help_patch.index("pd reference;")]
    reference_words = set(re.findall(r"[\w-]+", " ".join(
        line.split(" ", 4)[4] for line in reference.split(";\n") if line.startswith("#X text"))))
    readme = (REPO / "README.md").read_text()
    table = [line for line in readme.splitlines() if line.startswith("| `")]
    readme_words = set(re.findall(r"`([\w-]+)", "\n".join(table)))
    assert names - reference_words == set(), "not in the help patch's [pd reference]"
    assert names - readme_words == set(), "not in the README's table of messages"

"""Voices on one model share one loaded copy, each with its own state."""

import gc
import shutil
import threading
import weakref

import numpy as np
import pytest

from ganspacesynth import model as model_module
from ganspacesynth.instrument import Instrument
from ganspacesynth.model import resolve_model_path


@pytest.fixture
def model_folder(tmp_path):
    folder = tmp_path / "voice-model"
    shutil.copytree(resolve_model_path("default"), folder)
    return folder


def test_instruments_on_one_model_share_it_and_keep_their_own_state(model_folder):
    a, b = Instrument(), Instrument()
    a.load(model_folder)
    b.load(str(model_folder) + "/")          # the same folder spelled differently
    assert a.model is b.model
    a.set_mode("z")
    b.set_mode("z")
    a.set_pitch(a.model.pitches[0])
    b.random_z(7)
    assert a.pitch != b.pitch and not np.array_equal(a.z, b.z)
    alone = Instrument()
    alone.load(model_folder)
    alone.set_mode("z")
    alone.set_pitch(a.pitch)
    np.testing.assert_array_equal(a.generate(), alone.generate())


def test_simultaneous_loads_read_the_model_once(model_folder, monkeypatch):
    loads = []
    real_load = model_module.load_model

    def counting_load(*args, **kwargs):
        loads.append(args[0])
        return real_load(*args, **kwargs)

    monkeypatch.setattr("ganspacesynth.shared_models.load_model", counting_load)
    voices = [Instrument() for _ in range(8)]
    errors = []

    def load(voice):
        try:
            voice.load(model_folder)
        except Exception as error:   # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=load, args=(voice,)) for voice in voices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(loads) == 1
    assert all(voice.model is voices[0].model for voice in voices)


def test_a_changed_folder_is_loaded_afresh(model_folder):
    first = Instrument()
    first.load(model_folder)
    config = model_folder / "config.json"
    config.write_text(config.read_text() + "\n")   # same model, but the file changed
    second = Instrument()
    second.load(model_folder)
    assert second.model is not first.model


def test_the_last_unload_frees_the_shared_copy(model_folder):
    a, b = Instrument(), Instrument()
    a.load(model_folder)
    b.load(model_folder)
    copy = weakref.ref(a.model)
    a.unload()
    gc.collect()
    assert copy() is not None
    b.unload()
    gc.collect()
    assert copy() is None

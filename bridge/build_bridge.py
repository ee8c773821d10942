"""Generate the C source of the engine bridge (cffi embedding).

CMake runs this script and compiles its output into libganspacesynth_bridge;
see ganspacesynth_bridge.h for the ABI. Two things are decided at build time
and baked in:

* the interpreter's home (``sys.base_prefix`` of the Python running this
  script), set as PYTHONHOME before the embedded Python starts unless the
  environment already sets it: a host such as Pd is not a Python program,
  and without it Python may guess a standard library from whatever
  ``python3`` is on PATH. ``base_prefix`` rather than ``prefix`` because
  ``pip install`` builds in a throw-away virtual environment;
* optionally (``--source-path``) the source tree's engine folder, for
  bridges built in a CMake build folder, which sit inside no package.

At run time the embedded Python searches GANSPACESYNTH_PYTHONPATH, then the
site-packages that holds the bridge (installed as
``site-packages/ganspacesynth/pd/``; links to that folder, such as the one
``ganspacesynth pd-install`` makes, are followed), then the baked source folder.
"""

import argparse
import re
import sys
from pathlib import Path

import cffi

HERE = Path(__file__).resolve().parent
HEADER = HERE / "ganspacesynth_bridge.h"
MODULE = "_ganspacesynth_bridge"

C_PRELUDE = r"""
#include <stdlib.h>
#ifndef _WIN32
#include <dlfcn.h>
#endif

static const char gss_python_home[] = %(python_home)s;

/* Runs when the host dlopens the bridge, before any call can start Python. */
__attribute__((constructor)) static void gss_set_python_home(void)
{
#ifndef _WIN32
    if (!Py_IsInitialized() && !getenv("PYTHONHOME") && gss_python_home[0])
        setenv("PYTHONHOME", gss_python_home, 0);
#endif
}

static const char *gss_bridge_location(void)
{
#ifndef _WIN32
    Dl_info info;
    if (dladdr((void *)&gss_bridge_location, &info) && info.dli_fname)
        return info.dli_fname;
#endif
    return "";
}
"""

# Runs once, inside the host, on the first call into the bridge.
INIT_CODE = r'''
import gc
import itertools
import os
import sys
import traceback

from _ganspacesynth_bridge import ffi, lib

_SOURCE_PATH = %(source_path)r


def _search_path():
    folders = [p for p in os.environ.get("GANSPACESYNTH_PYTHONPATH", "").split(os.pathsep) if p]
    bridge = ffi.string(lib.gss_bridge_location()).decode("utf-8", "replace")
    if bridge:
        package = os.path.dirname(os.path.dirname(os.path.realpath(bridge)))
        if os.path.isfile(os.path.join(package, "__init__.py")):
            folders.append(os.path.dirname(package))
    if _SOURCE_PATH:
        folders.append(_SOURCE_PATH)
    return folders


def _start():
    import site

    folders = _search_path()
    # In front of the interpreter's own site-packages, so that the
    # environment ganspacesynth was installed into wins; addsitedir for
    # the .pth files that editable installs rely on.
    sys.path[:0] = [f for f in folders if f not in sys.path]
    for folder in folders:
        site.addsitedir(folder)
    from ganspacesynth.errors import GanspacesynthError
    from ganspacesynth.instrument import Instrument

    return GanspacesynthError, Instrument


try:
    GanspacesynthError, Instrument = _start()
    _START_ERROR = None
except BaseException as error:
    traceback.print_exc()
    _START_ERROR = (f"the ganspacesynth engine could not start ({type(error).__name__}: {error}); "
                    f"Python searched {sys.path}; set GANSPACESYNTH_PYTHONPATH to the site-packages "
                    "folder ganspacesynth is installed in")
    GanspacesynthError, Instrument = Exception, None

OK, ERROR, CANCELLED = 0, -1, -2
_ids = itertools.count(1)
_instruments = {}
_results = {}
_errors = {}


class _Cancelled(Exception):
    pass


def _text(s):
    return ffi.string(s).decode("utf-8", "replace") if s != ffi.NULL else ""


def _floats(values, count):
    return [values[i] for i in range(count)] if values != ffi.NULL and count > 0 else []


def _call(engine, work):
    """Run work(instrument); turn every exception into an error message."""
    try:
        instrument = _instruments.get(engine)
        if instrument is None:
            raise GanspacesynthError(f"no engine with handle {engine}")
        result = work(instrument)
        return result if type(result) is int else OK
    except _Cancelled:
        _errors[engine] = "cancelled"
        return CANCELLED
    except GanspacesynthError as error:
        _errors[engine] = str(error)
    except MemoryError:
        _errors[engine] = "out of memory"
    except BaseException as error:
        traceback.print_exc()
        _errors[engine] = f"internal error ({type(error).__name__}: {error}); details on stderr"
    return ERROR


def _store(engine, clip):
    _results[engine] = clip
    return int(clip.size)


@ffi.def_extern()
def gss_create():
    if _START_ERROR is not None:
        _errors[0] = _START_ERROR
        return 0
    engine = next(_ids)
    _instruments[engine] = Instrument()
    return engine


@ffi.def_extern()
def gss_destroy(engine):
    _instruments.pop(engine, None)
    _results.pop(engine, None)
    _errors.pop(engine, None)
    # TensorFlow objects sit in reference cycles: give the memory back now.
    gc.collect()


@ffi.def_extern()
def gss_load(engine, model, pca):
    return _call(engine, lambda i: i.load(_text(model), _text(pca) or None))


@ffi.def_extern()
def gss_load_pca(engine, path):
    return _call(engine, lambda i: i.load_pca(_text(path)))


def _unload(instrument):
    instrument.unload()
    gc.collect()


@ffi.def_extern()
def gss_unload(engine):
    _results.pop(engine, None)
    return _call(engine, _unload)


@ffi.def_extern()
def gss_info(engine, n_components, sample_rate, length):
    def work(instrument):
        n_components[0], sample_rate[0], length[0] = instrument.info()
    return _call(engine, work)


@ffi.def_extern()
def gss_set_threads(engine, threads):
    return _call(engine, lambda i: int(i.set_threads(threads if threads > 0 else None)))


@ffi.def_extern()
def gss_set_coeffs(engine, values, count):
    return _call(engine, lambda i: i.set_coefficients(_floats(values, count)))


@ffi.def_extern()
def gss_set_coeff(engine, index, value):
    return _call(engine, lambda i: i.set_coefficient(index, value))


@ffi.def_extern()
def gss_set_knob(engine, name, value):
    return _call(engine, lambda i: i.set_knob(_text(name), value))


def _copy_text(text, buffer, size):
    data = text.encode("utf-8", "replace")
    if buffer != ffi.NULL and size > 0:
        n = min(len(data), size - 1)
        ffi.memmove(buffer, data[:n], n)
        buffer[n] = b"\0"
    return len(data)


@ffi.def_extern()
def gss_component_names(engine, buffer, size):
    return _call(engine, lambda i: _copy_text(" ".join(i.component_names()), buffer, size))


@ffi.def_extern()
def gss_set_z(engine, values, count):
    return _call(engine, lambda i: i.set_z(_floats(values, count)))


@ffi.def_extern()
def gss_random_z(engine, seed):
    return _call(engine, lambda i: i.random_z(None if seed < 0 else seed))


@ffi.def_extern()
def gss_set_pitch(engine, pitch):
    return _call(engine, lambda i: i.set_pitch(pitch))


@ffi.def_extern()
def gss_set_mode(engine, mode):
    return _call(engine, lambda i: i.set_mode(_text(mode)))


@ffi.def_extern()
def gss_clear_steps(engine):
    return _call(engine, lambda i: i.clear_steps())


@ffi.def_extern()
def gss_add_step(engine, values, count):
    return _call(engine, lambda i: i.add_step(_floats(values, count)))


@ffi.def_extern()
def gss_set_hallu(engine, name, value):
    return _call(engine, lambda i: i.set_hallu(_text(name), value))


@ffi.def_extern()
def gss_generate(engine, sample_rate):
    _results.pop(engine, None)
    return _call(engine, lambda i: _store(engine, i.generate(sample_rate)))


@ffi.def_extern()
def gss_generate_parts(engine, sample_rate, part, userdata):
    def on_part(samples):
        if part != ffi.NULL and part(userdata, ffi.from_buffer("float[]", samples), int(samples.size)):
            raise _Cancelled()

    def check():
        if part != ffi.NULL and part(userdata, ffi.NULL, 0):
            raise _Cancelled()

    _results.pop(engine, None)
    return _call(engine, lambda i: _store(engine, i.generate_parts(sample_rate, on_part, check)))


@ffi.def_extern()
def gss_hallucinate(engine, sample_rate, progress, userdata):
    def report(fraction):
        if progress != ffi.NULL and progress(userdata, float(fraction)):
            raise _Cancelled()

    _results.pop(engine, None)
    return _call(engine, lambda i: _store(engine, i.hallucinate(sample_rate, report)))


@ffi.def_extern()
def gss_find(engine, path, steps, layer_steps, progress, userdata):
    import numpy as np

    def report(fraction):
        if progress != ffi.NULL and progress(userdata, float(fraction)):
            raise _Cancelled()

    def work(instrument):
        distance, pitch, coefficients = instrument.find(_text(path), None if steps < 0 else steps,
                                                        None if layer_steps < 0 else layer_steps, report)
        values = np.concatenate([[distance, pitch], coefficients]).astype(np.float32)
        return _store(engine, values)

    _results.pop(engine, None)
    return _call(engine, work)


@ffi.def_extern()
def gss_read(engine, out, count):
    clip = _results.get(engine)
    if clip is None or out == ffi.NULL or count <= 0:
        return 0
    n = min(int(count), int(clip.size))
    ffi.memmove(out, clip[:n], n * 4)
    return n


@ffi.def_extern()
def gss_last_error(engine, buffer, size):
    return _copy_text(_errors.get(engine, ""), buffer, size)
'''


def api_declarations():
    """The declarations between the gss-api markers of the header."""
    text = HEADER.read_text()
    match = re.search(r"/\* gss-api-begin \*/(.*?)/\* gss-api-end \*/", text, re.S)
    if not match:
        raise SystemExit(f"{HEADER}: the gss-api-begin/end markers are missing")
    return match.group(1)


def c_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def builder(python_home, source_path=None):
    ffibuilder = cffi.FFI()
    ffibuilder.embedding_api(api_declarations())
    ffibuilder.cdef("const char *gss_bridge_location(void);")
    ffibuilder.set_source(MODULE, C_PRELUDE % {"python_home": c_string(python_home)})
    ffibuilder.embedding_init_code(INIT_CODE % {"source_path": source_path or ""})
    return ffibuilder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="C file to write")
    parser.add_argument("--python-home", default=sys.base_prefix,
                        help="PYTHONHOME for the embedded interpreter (default: this interpreter's "
                             "base prefix, %(default)s)")
    parser.add_argument("--source-path", default=None,
                        help="a folder holding the ganspacesynth package, searched last")
    args = parser.parse_args(argv)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    builder(args.python_home, args.source_path).emit_c_code(str(output))


if __name__ == "__main__":
    main()

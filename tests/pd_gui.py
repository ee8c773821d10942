"""Pd with its real Tk GUI on a virtual X display (Xvfb), and pictures of its
windows: what a patch looks like to someone who opens it.

``screenshots(patch, out_dir, pd_dir)`` starts Xvfb (1024x768, a small
laptop's screen), opens the patch in Pd, opens the subpatches named in
``subpatches`` through their ``pd-NAME`` receivers, waits until every window
has been mapped and drawn, and saves one PNG per window (ImageMagick's
``import``) and one of the whole screen. Nothing here measures time: the
waits poll for windows and for pictures that stop changing, with generous
limits that only end a run that went wrong.

Needs the Debian packages puredata-gui, xvfb, x11-utils and imagemagick
(``missing_tools`` names the absent ones).
"""

import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

TOOLS = {"Xvfb": "xvfb", "xwininfo": "x11-utils", "import": "imagemagick", "identify": "imagemagick",
         "pd": "puredata-core"}
SCREEN = "1024x768x24"


def missing_tools():
    missing = [package for tool, package in TOOLS.items() if not shutil.which(tool)]
    if not Path("/usr/lib/puredata/tcl/pd-gui.tcl").is_file() and not Path(
            "/usr/share/puredata/tcl/pd-gui.tcl").is_file() and not shutil.which("pd-gui"):
        missing.append("puredata-gui")
    return missing


def _nice(command):
    return ["nice", "-n", "19", *command] if shutil.which("nice") else command


class Display:
    """An Xvfb server on a free display number, for the `with` block."""

    def __init__(self):
        self.process = None
        self.name = None

    def __enter__(self):
        for number in range(90, 140):
            if Path(f"/tmp/.X{number}-lock").exists() or Path(f"/tmp/.X11-unix/X{number}").exists():
                continue
            process = subprocess.Popen(_nice(["Xvfb", f":{number}", "-screen", "0", SCREEN, "-nolisten", "tcp"]),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if _poll(lambda: Path(f"/tmp/.X11-unix/X{number}").exists() or process.poll() is not None, 30) \
                    and process.poll() is None:
                self.process, self.name = process, f":{number}"
                return self
            process.kill()
            process.wait()
        raise RuntimeError("no Xvfb display could be started")

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _poll(condition, limit, interval=0.2):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def windows(display):
    """{title: window id} of the top-level windows that have a title."""
    out = subprocess.run(["xwininfo", "-root", "-tree", "-display", display], capture_output=True,
                         text=True).stdout
    found = {}
    for match in re.finditer(r'^\s+(0x[0-9a-f]+) "([^"]*)":', out, re.MULTILINE):
        found.setdefault(match.group(2), match.group(1))
    return found


def grab(display, window, path):
    subprocess.run(_nice(["import", "-display", display, "-window", window, str(path)]),
                   check=True, capture_output=True)
    return path


def _digest(path):
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def _steady_grab(display, window, path, limit=60):
    """Grab until two pictures in a row are the same (the window is fully drawn)."""
    previous = None
    end = time.monotonic() + limit
    while True:
        grab(display, window, path)
        digest = _digest(path)
        if digest == previous or time.monotonic() > end:
            return path
        previous = digest
        time.sleep(0.5)


def screenshots(patch, out_dir, pd_dir=None, subpatches=(), extra_path=(), limit=90):
    """Open `patch` in Pd's GUI on a virtual display and save a PNG of its window;
    then, one Pd at a time (so no window hides another), of each subpatch
    window named in `subpatches`. Returns ({name: PNG path}, Pd's console output)."""
    patch, out_dir = Path(patch).resolve(), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shots, outputs = {}, []
    with Display() as display:
        for name in [None, *subpatches]:
            stem = patch.stem if name is None else f"{patch.stem}--{name}"
            output = _one_window(display.name, patch, name, out_dir / f"{stem}.png", pd_dir, extra_path, limit)
            shots[name or patch.name] = out_dir / f"{stem}.png"
            outputs.append(output)
    return shots, "\n".join(outputs)


def _one_window(display, patch, subpatch, png, pd_dir, extra_path, limit):
    command = ["pd", "-nrt", "-noprefs", "-noaudio", "-nomidi", "-stderr"]
    for folder in ([pd_dir] if pd_dir else []) + list(extra_path):
        command += ["-path", str(folder)]
    command += ["-open", str(patch)]
    if subpatch:
        command += ["-send", f"pd-{subpatch} vis 1"]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", DISPLAY=display)
    pd = subprocess.Popen(_nice(command), env=environment, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, cwd=str(patch.parent))
    wanted = subpatch or patch.name
    found = {}

    def mapped():
        for title, window in windows(display).items():
            if title == wanted or title.startswith(wanted + " "):
                found["window"] = window
                return True
        return False

    try:
        if not _poll(mapped, limit, 0.5):
            raise RuntimeError(f"Pd showed no window '{wanted}' (it has {sorted(windows(display))})")
        _steady_grab(display, found["window"], png)
    finally:
        pd.terminate()
        try:
            output, _ = pd.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            pd.kill()
            output, _ = pd.communicate()
    return output


def is_blank(path):
    """True when the picture has (almost) one colour: nothing was drawn."""
    out = subprocess.run(["identify", "-format", "%[fx:standard_deviation]", str(path)],
                         capture_output=True, text=True, check=True).stdout.strip()
    return float(out) < 0.01

"""The Pd folder as pip installs it: external, bridge, help patch and Hallu
abstractions inside the package, and a plain `pd` started elsewhere loads the
engine from there with no environment variables; `ganspacesynth pd-install`
puts it where a plain `pd`, with no -path, finds [ganspacesynth~] and [hallu]
(tested with a temporary HOME), and `pd-uninstall` takes it away.

Against the installed package when there is one (CI installs it), otherwise
against a wheel built here from the source tree (scikit-build-core, no build
isolation) and unpacked into a temporary site-packages.
"""

import os
import plistlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pd_helpers import EXTERNAL, REPO, Patch, pd_binary, printed, run_pd

pytestmark = [pytest.mark.pd, pytest.mark.slow]

FIXTURE = REPO / "tests" / "data" / "gansynth-reference"
BRIDGE = "libganspacesynth_bridge.dylib" if sys.platform == "darwin" else "libganspacesynth_bridge.so"


@pytest.fixture(scope="module")
def installed_pd_folder(tmp_path_factory):
    import ganspacesynth

    # The package's own folder: an editable install's copy in site-packages
    # (which pd_path() finds too) was built when it was installed, not now.
    folder = Path(ganspacesynth.__file__).resolve().parent / "pd"
    if (folder / EXTERNAL).is_file():
        return folder
    try:
        import scikit_build_core  # noqa: F401
    except ImportError:
        if (ganspacesynth.pd_path() / EXTERNAL).is_file():
            return ganspacesynth.pd_path()  # what an editable install built
        pytest.fail("ganspacesynth is not installed with its Pd folder, and scikit-build-core is missing "
                    "to build a wheel here: pip install scikit-build-core, or pip install .", pytrace=False)
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                             "--quiet", "-w", str(out), str(REPO)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    wheel = next(out.glob("ganspacesynth-*.whl"))
    site = out / "site-packages"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site / "ganspacesynth" / "pd"


def test_the_package_holds_the_pd_folder(installed_pd_folder):
    folder = installed_pd_folder
    for name in (EXTERNAL, BRIDGE, "ganspacesynth~-help.pd", "ganspacesynth_pyext.py"):
        assert (folder / name).is_file(), f"{name} missing from {folder}"
    if (REPO / "hallu").is_dir():
        shipped = sorted(p.name for p in (REPO / "hallu").glob("*.pd"))
        assert sorted(p.name for p in (folder / "hallu").glob("*.pd")) == shipped
    # An installed bridge finds its package around itself: the source tree
    # it was built from must not be baked in.
    assert str(REPO / "engine").encode() not in (folder / BRIDGE).read_bytes()


def test_plain_pd_loads_the_installed_engine(installed_pd_folder, tmp_path):
    patch = Patch()
    load = patch.obj("loadbang")
    messages = patch.msg(f"load {FIXTURE}")
    gss = patch.obj("ganspacesynth~")
    show = patch.obj("print reply")
    route = patch.obj("route loaded error")
    quit_ = patch.msg("; pd quit")
    patch.chain(load, messages, gss)
    patch.connect(gss, 1, show)
    patch.connect(gss, 1, route)
    patch.connect(route, 0, quit_)
    patch.connect(route, 1, quit_)
    path = patch.write(tmp_path / "installed.pd")
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("PYTHON", "GANSPACESYNTH_", "VIRTUAL_ENV"))}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    code, stderr = run_pd(path, installed_pd_folder, env=env, clean_env=True, batch=False)
    assert code == 0, stderr[-3000:]
    assert "loaded 0 16000 64000" in printed(stderr, "reply"), stderr[-3000:]


def test_cli_pd_path():
    """`ganspacesynth pd-path` prints the package's Pd folder; it fails (status 1)
    when the package was installed without the external, so that scripts stop."""
    import ganspacesynth

    result = subprocess.run([sys.executable, "-m", "ganspacesynth", "pd-path"], capture_output=True,
                            text=True)
    assert result.stdout.strip() == str(ganspacesynth.pd_path())
    assert result.returncode == (0 if ganspacesynth.pd_path().is_dir() else 1), result.stderr


# ---------------------------------------------------------------- pd-install


def _plain_pd(patch, home, timeout=300, env=None):
    """`pd PATCH` as a user starts it: no -path, no -noprefs, HOME as given, no variables
    of ours or TensorFlow's but those in env. Pd's real-time scheduler without GUI or
    audio device (batch mode's never-sleeping thread would starve the engine's worker on a
    busy machine; see pd_helpers.py), and -stderr to read what it prints."""
    extra = env or {}
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("PYTHON", "GANSPACESYNTH_", "VIRTUAL_ENV", "TF_"))}
    env.update(extra, HOME=str(home))
    try:
        result = subprocess.run([pd_binary(), "-nrt", "-noaudio", "-nomidi", "-nogui", "-stderr",
                                 str(patch)], capture_output=True, text=True, timeout=timeout, env=env,
                                cwd=str(Path(patch).parent))
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"Pd did not quit within {timeout} s: {(expired.stderr or b'')[-3000:]!r}", pytrace=False)
    return result.returncode, result.stderr


def _both_objects_patch(path, play=True):
    """[ganspacesynth~] and [hallu]; with play, [ganspacesynth~] loads the default model and
    Pd quits on its reply, otherwise Pd quits at once."""
    patch = Patch()
    if not play:
        patch.obj("ganspacesynth~")
        patch.obj("hallu")
        patch.chain(patch.obj("loadbang"), patch.msg("; pd quit"))
        return patch.write(path)
    load = patch.obj("loadbang")
    message = patch.msg("load default")
    gss = patch.obj("ganspacesynth~")
    show = patch.obj("print reply")
    route = patch.obj("route loaded error")
    quit_ = patch.msg("; pd quit")
    patch.obj("hallu")
    patch.chain(load, message, gss)
    patch.connect(gss, 1, show)
    patch.connect(gss, 1, route)
    patch.connect(route, 0, quit_)
    patch.connect(route, 1, quit_)
    return patch.write(path)


def _cli(*args, home):
    env = dict(os.environ, HOME=str(home))
    return subprocess.run([sys.executable, "-m", "ganspacesynth", *args], capture_output=True, text=True,
                          env=env)


def test_plain_pd_finds_both_objects_after_pd_install(tmp_path):
    """The user's way: `ganspacesynth pd-install`, then `pd` with no flags creates
    [ganspacesynth~] (which plays the default model) and [hallu], and prints no
    TensorFlow start-up lines; after `pd-uninstall` it creates neither."""
    import ganspacesynth

    if not (ganspacesynth.pd_path() / EXTERNAL).is_file():
        pytest.skip(f"the installed package has no {EXTERNAL} (installed without Pd's headers)")
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "patch").mkdir()
    patch = _both_objects_patch(tmp_path / "patch" / "both.pd")
    create_only = _both_objects_patch(tmp_path / "patch" / "create.pd", play=False)

    code, stderr = _plain_pd(create_only, home)
    assert stderr.count("couldn't create") == 2, "a plain pd found the objects before pd-install: " + stderr

    result = _cli("pd-install", home=home)
    assert result.returncode == 0, result.stderr
    link = home / "Documents" / "Pd" / "externals" / "ganspacesynth"
    assert link.is_symlink() and link.resolve() == ganspacesynth.pd_path().resolve()
    assert f"path1: {link}" in (home / ".pdsettings").read_text()

    code, stderr = _plain_pd(patch, home)
    assert code == 0, stderr[-3000:]
    assert "couldn't create" not in stderr, stderr[-3000:]
    assert printed(stderr, "reply")[-1] == "loaded 16 16000 64000", stderr[-3000:]
    for chatter in ("oneDNN", "cpu_feature_guard", "absl::InitializeLog"):
        assert chatter not in stderr, stderr[-3000:]

    result = _cli("pd-uninstall", home=home)
    assert result.returncode == 0, result.stderr
    assert not link.exists() and not link.is_symlink()
    assert not (home / ".pdsettings").exists()  # it held only what pd-install wrote
    code, stderr = _plain_pd(create_only, home)
    assert stderr.count("couldn't create") == 2, stderr[-3000:]  # neither object any more


def _pd_folder(tmp_path):
    """A stand-in for the package's Pd folder, for the tests of the link and the preferences."""
    folder = tmp_path / "site-packages" / "ganspacesynth" / "pd"
    (folder / "hallu").mkdir(parents=True, exist_ok=True)
    (folder / EXTERNAL).write_bytes(b"")
    (folder / "hallu" / "hallu.pd").write_text("#N canvas 0 0 100 100 12;\n")
    return folder


def test_pd_install_keeps_the_users_preferences(tmp_path):
    from ganspacesynth.pd_install import install, read_search_path, uninstall

    home = tmp_path / "home"
    prefs = home / ".pdsettings"
    home.mkdir()
    prefs.write_text("audioapi: 1\nnpath: 2\npath1: /opt/pd/mine\npath2: ~/Documents/Pd/externals\n"
                     "standardpath: 1\nverbose: 0\n")
    source = _pd_folder(tmp_path)
    report = install(source=source, home=home, platform="linux")
    folder = home / "Documents" / "Pd" / "externals" / "ganspacesynth"
    assert report.folder == folder and os.readlink(folder) == str(source.resolve())
    assert read_search_path(prefs) == ["/opt/pd/mine", "~/Documents/Pd/externals", str(folder)]
    assert prefs.read_text() == ("audioapi: 1\nnpath: 3\npath1: /opt/pd/mine\npath2: ~/Documents/Pd/externals\n"
                                 f"path3: {folder}\nstandardpath: 1\nverbose: 0\n")
    again = install(source=source, home=home, platform="linux")  # a second install changes nothing
    assert "already" in str(again) and read_search_path(prefs)[-1] == str(folder)
    assert len(read_search_path(prefs)) == 3

    uninstall(home=home, platform="linux")
    assert not folder.is_symlink()
    assert prefs.read_text() == ("audioapi: 1\nnpath: 2\npath1: /opt/pd/mine\npath2: ~/Documents/Pd/externals\n"
                                 "standardpath: 1\nverbose: 0\n")


def test_pd_install_rewrites_a_linked_preferences_file_in_place(tmp_path):
    """A ~/.pdsettings that links into a dotfiles folder stays a link."""
    from ganspacesynth.pd_install import install, read_search_path, uninstall

    home = tmp_path / "home"
    dotfiles = tmp_path / "dotfiles"
    home.mkdir()
    dotfiles.mkdir()
    (dotfiles / "pdsettings").write_text("verbose: 0\n")
    (home / ".pdsettings").symlink_to(dotfiles / "pdsettings")
    install(source=_pd_folder(tmp_path), home=home, platform="linux")
    assert (home / ".pdsettings").is_symlink()
    assert read_search_path(dotfiles / "pdsettings") == [str(home / "Documents" / "Pd" / "externals" / "ganspacesynth")]
    uninstall(home=home, platform="linux")
    assert (home / ".pdsettings").is_symlink() and read_search_path(home / ".pdsettings") == []


def test_pd_install_on_macos_writes_pds_plist(tmp_path):
    from ganspacesynth.pd_install import install, uninstall

    home = tmp_path / "home"
    plist = home / "Library" / "Preferences" / "org.puredata.pd.plist"
    plist.parent.mkdir(parents=True)
    plist.write_bytes(plistlib.dumps({"audioapi": "5", "npath": "1", "path1": "/Users/me/pd"},
                                     fmt=plistlib.FMT_BINARY))
    install(source=_pd_folder(tmp_path), home=home, platform="darwin")
    folder = home / "Documents" / "Pd" / "externals" / "ganspacesynth"
    assert plistlib.loads(plist.read_bytes()) == {"audioapi": "5", "npath": "2", "path1": "/Users/me/pd",
                                                  "path2": str(folder)}
    assert plist.read_bytes().startswith(b"bplist")
    uninstall(home=home, platform="darwin")
    assert plistlib.loads(plist.read_bytes()) == {"audioapi": "5", "npath": "1", "path1": "/Users/me/pd"}


def test_pd_install_with_a_prefix_and_without_the_search_path(tmp_path):
    from ganspacesynth.pd_install import install, uninstall

    home, prefix = tmp_path / "home", tmp_path / "my externals"
    home.mkdir()
    report = install(prefix=prefix, search_path=False, source=_pd_folder(tmp_path), home=home, platform="linux")
    assert (prefix / "ganspacesynth" / "hallu" / "hallu.pd").is_file()
    assert "left alone" in str(report) and not (home / ".pdsettings").exists()
    assert "removed" in str(uninstall(prefix=prefix, home=home, platform="linux"))
    assert list(prefix.iterdir()) == []


def test_pd_install_and_uninstall_leave_what_they_did_not_make(tmp_path):
    from ganspacesynth.pd_install import PdInstallError, install, uninstall

    home = tmp_path / "home"
    externals = home / "Documents" / "Pd" / "externals"
    deken = externals / "ganspacesynth"
    deken.mkdir(parents=True)
    (deken / "README.txt").write_text("installed by deken")
    with pytest.raises(PdInstallError, match="pd-install did not put it there"):
        install(source=_pd_folder(tmp_path), home=home, platform="linux")
    with pytest.raises(PdInstallError, match="left alone"):
        uninstall(home=home, platform="linux")
    assert (deken / "README.txt").read_text() == "installed by deken"
    assert not (home / ".pdsettings").exists()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = tmp_path / "home2" / "Documents" / "Pd" / "externals" / "ganspacesynth"
    other.parent.mkdir(parents=True)
    other.symlink_to(elsewhere)
    with pytest.raises(PdInstallError, match="did not"):
        install(source=_pd_folder(tmp_path), home=tmp_path / "home2", platform="linux")
    with pytest.raises(PdInstallError, match="left alone"):
        uninstall(home=tmp_path / "home2", platform="linux")
    assert other.is_symlink()


def test_pd_install_errors_are_one_line_and_status_2(tmp_path):
    home = tmp_path / "home"
    (home / "Documents" / "Pd" / "externals" / "ganspacesynth").mkdir(parents=True)
    result = _cli("pd-install", home=home)
    import ganspacesynth

    if not ganspacesynth.pd_path().is_dir():
        assert result.returncode == 2 and "without its Pd folder" in result.stderr
        return
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("ganspacesynth pd-install: error: ")
    assert len(result.stderr.strip().splitlines()) == 1

"""A plain (non-editable) install keeps its compiled kernels out of site-packages.

Each test copies the sources to a temporary folder, installs them into a fresh virtual
environment (system packages visible, so torch and numba are not installed again), renders
a short mix there with the installed ``vocalmix`` and inspects the files left behind.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from vocalmix.demo import demo_backing, demo_vocal
from vocalmix.jit_cache import NOTE_PREFIX

ROOT = Path(__file__).resolve().parents[1]
SR = 44100


def _install(tmp_path: Path) -> tuple[Path, Path]:
    """A venv at ``tmp_path/venv`` holding a wheel-style install of the sources; (python, site-packages)."""
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in ("vocalmix", "dsp", "training"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet", str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    assert (site / "vocalmix" / "__init__.py").is_file()
    return python, site


def _inputs(folder: Path) -> tuple[Path, Path]:
    seconds = 4.0
    vocal, backing = folder / "vocal.wav", folder / "backing.wav"
    sf.write(vocal, demo_vocal(SR, seconds).T, SR)
    sf.write(backing, demo_backing(SR, seconds).T, SR)
    return vocal, backing


def _clean_env(**extra: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("NUMBA_") and k not in ("XDG_CACHE_HOME", "PYTHONDONTWRITEBYTECODE", "VOCALMIX_DEBUG")
    }
    env.update(extra)
    return env


def _render(python: Path, folder: Path, env: dict, prefix: list[str] = ()) -> subprocess.CompletedProcess:
    vocal, backing = _inputs(folder)
    return subprocess.run(
        [
            *prefix,
            str(python),
            "-m",
            "vocalmix",
            "render",
            str(vocal),
            str(backing),
            "-o",
            str(folder / "mix.wav"),
            "-q",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=600,
    )


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_install_render_uninstall_leaves_nothing_in_site_packages(tmp_path):
    python, site = _install(tmp_path)
    installed = _tree(site / "vocalmix")
    cache_home = tmp_path / "xdg-cache"
    work = tmp_path / "work"
    work.mkdir()
    result = _render(python, work, _clean_env(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(cache_home)))
    assert result.returncode == 0, result.stderr
    assert (work / "mix.wav").is_file()

    # The kernels were compiled and cached, in the user's cache folder ...
    cached = list((cache_home / "vocalmix" / "numba").rglob("*.nbi"))
    assert cached, "no compiled kernel was cached in $XDG_CACHE_HOME/vocalmix/numba"
    # ... and nothing was added to the installed package.
    added = _tree(site / "vocalmix") - installed
    assert not added, f"files written into the installed package: {sorted(added)[:5]}"

    subprocess.run(
        [str(python), "-m", "pip", "uninstall", "-y", "--quiet", "vocalmix"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    left = [p.name for p in site.iterdir() if p.name.lower().startswith("vocalmix")]
    assert left == [], f"left in site-packages after uninstall: {left}"


def _read_only(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o555)


def _writable(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)


def _unprivileged_prefix() -> list[str]:
    """A command prefix that runs as a user who cannot write read-only folders."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv is not available to drop privileges")
    # Root without any capability obeys file modes like any user (no CAP_DAC_OVERRIDE). A real
    # uid switch (nobody) is not used: the interpreter often lives under a private /root.
    prefix = [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--"]
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot drop privileges with setpriv: {probe.stderr.decode().strip()}")
    return prefix


def test_render_without_writable_home_or_cache_as_unprivileged_user(tmp_path):
    python, site = _install(tmp_path)
    prefix = _unprivileged_prefix()
    home = tmp_path / "home"
    home.mkdir()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    vocal, backing = _inputs(work)
    # A system-wide install the user cannot write, a home folder the user cannot write.
    _read_only(site / "vocalmix")
    home.chmod(0o555)
    try:
        env = _clean_env(HOME=str(home), TMPDIR=str(scratch))
        result = _render(python, work, env, prefix)
    finally:
        _writable(site / "vocalmix")
        home.chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert (work / "mix.wav").is_file()
    notes = [line for line in result.stderr.splitlines() if line.startswith(NOTE_PREFIX)]
    assert len(notes) == 1 and str(home) in notes[0] and "not writable" in notes[0], result.stderr
    assert "Traceback" not in result.stderr
    # The throw-away kernel folder is gone, and nothing was cached anywhere.
    assert list(scratch.iterdir()) == []
    assert list(home.rglob("*")) == []
    assert not list((site / "vocalmix").rglob("*.nbi"))

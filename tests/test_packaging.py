"""The package installs as one top-level name, and the set-up commands stay true."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_plain_install_has_only_vocalmix_top_level(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--target",
            str(target),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    top_level = {p.name for p in target.iterdir() if not p.name.endswith((".dist-info", ".egg-info"))}
    assert top_level - {"bin"} == {"vocalmix"}
    # Every module of the source folders is installed (a subpackage missing from pyproject's list is not).
    for folder, installed in (("vocalmix", "vocalmix"), ("dsp", "vocalmix/dsp"), ("training", "vocalmix/training")):
        for source in (ROOT / folder).rglob("*.py"):
            assert (target / installed / source.relative_to(ROOT / folder)).is_file(), source
    # `--method cnn` works offline from a plain install: the default checkpoints ship with it.
    for task in ("level", "compression", "eq", "reverb"):
        assert (target / "vocalmix" / "models" / "cnn" / f"{task}.pt").is_file()
    code = "import vocalmix.dsp.biquads, vocalmix.training, vocalmix.dsp; print(vocalmix.dsp.__file__)"
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert str(target) in out.stdout


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"^    (pip install .*)$", text, flags=re.M)


def test_readme_opens_with_demo_and_test_commands():
    commands = _readme_commands()
    assert len(commands) >= 2
    assert "vocalmix demo" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert _readme_commands()[1] in ci

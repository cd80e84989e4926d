"""The module graph and the one-place rules (issue 15 items 2 and 5).

- Rendering runs no training code: a fresh interpreter renders a short mix through the CLI
  with every method (rules, cnn, cnn-e2e, waveunet) and is inspected for ``vocalmix.training``
  modules; ``vocalmix --help`` lists the training commands without loading them.
- ``vocalmix/``, ``dsp/`` (``vocalmix.dsp``) and ``training/`` (``vocalmix.training``) import
  each other without cycles, not even through imports inside functions (a static scan);
  dsp imports nothing above it and the runtime nothing from training.
- Option ranges the CLI checks are the settings schema's, not restated.
"""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from vocalmix import methods
from vocalmix.cli import LAZY_COMMANDS, load_lazy_command
from vocalmix.errors import InputError
from vocalmix.render import RenderRequest, _check_options
from vocalmix.settings import OutputSettings, spec_of

ROOT = Path(__file__).resolve().parents[1]
#: Source folder -> the import name it is installed as (pyproject.toml's package-dir).
PACKAGES = {"vocalmix": "vocalmix", "dsp": "vocalmix.dsp", "training": "vocalmix.training"}
RENDER_METHODS = ("rules", "cnn", "cnn-e2e", "waveunet")

_RUN_COMMANDS = """
import contextlib, io, json, sys
from vocalmix.cli import main
report, folder = sys.argv[1], sys.argv[2]
loaded = {}
def vocalmix_modules():
    return sorted(m for m in sys.modules if m.startswith("vocalmix"))
help_text = io.StringIO()
with contextlib.redirect_stdout(help_text):
    code = main(["--help"])
loaded["--help"] = {"code": code, "modules": vocalmix_modules(), "out": help_text.getvalue()}
for method in sys.argv[3:]:
    code = main(["render", f"{folder}/vocal.wav", f"{folder}/backing.wav", "-o", f"{folder}/mix-{method}.wav",
                 "--method", method, "-q"])
    loaded[method] = {"code": code, "modules": vocalmix_modules(), "out": ""}
with open(report, "w") as f:
    json.dump(loaded, f)
"""


@pytest.fixture(scope="module")
def loaded_modules(tmp_path_factory) -> dict[str, dict]:
    """In one fresh interpreter: ``vocalmix --help``, then a render with each method in turn; after each,
    the vocalmix modules loaded so far (a module loaded by one render stays loaded for the next ones)."""
    from vocalmix.demo import demo_backing, demo_vocal

    folder = tmp_path_factory.mktemp("renders")
    rate, seconds = 44100, 6.0
    sf.write(folder / "vocal.wav", demo_vocal(rate, seconds).T, rate)
    sf.write(folder / "backing.wav", demo_backing(rate, seconds).T, rate)
    report = folder / "modules.json"
    args = [sys.executable, "-c", _RUN_COMMANDS, str(report), str(folder), *RENDER_METHODS]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=folder)
    assert done.returncode == 0, done.stderr
    result = json.loads(report.read_text())
    for method in RENDER_METHODS:
        assert result[method]["code"] == 0, (method, done.stderr)
        assert (folder / f"mix-{method}.wav").is_file()
    return result


def _training_modules(modules: list[str]) -> list[str]:
    return [m for m in modules if m == "vocalmix.training" or m.startswith("vocalmix.training.")]


def test_rules_render_loads_no_training_module(loaded_modules):
    assert "vocalmix.rules.method" in loaded_modules["rules"]["modules"], "the render did not run the rules"
    assert _training_modules(loaded_modules["rules"]["modules"]) == []


@pytest.mark.parametrize(
    "method, module",
    [
        ("cnn", "vocalmix.methods.cnn"),
        ("cnn-e2e", "vocalmix.methods.cnn_e2e"),
        ("waveunet", "vocalmix.methods.waveunet"),
    ],
)
def test_learned_method_render_loads_no_training_module(loaded_modules, method, module):
    assert module in loaded_modules[method]["modules"], f"the render did not run {method}"
    assert _training_modules(loaded_modules[method]["modules"]) == []


def test_help_lists_the_training_commands_without_loading_them(loaded_modules):
    shown = loaded_modules["--help"]
    assert shown["code"] == 0
    assert _training_modules(shown["modules"]) == []
    rows = {line.split()[0]: line for line in shown["out"].splitlines() if line.startswith("  ") and line.split()}
    for name, command in LAZY_COMMANDS.items():
        assert name in rows, f"vocalmix --help does not list {name}"
        assert command.help.split()[0] in rows[name]


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_lazy_command_help_is_the_commands_own(name):
    """The help `vocalmix --help` shows for a command it has not loaded is the one the command gives itself."""
    command = load_lazy_command(name)
    assert command.name == name
    own = " ".join((command.help or "").split("\n\n")[0].split())
    assert LAZY_COMMANDS[name].help == own
    assert _training_modules([LAZY_COMMANDS[name].target]) != []


def test_lazy_command_runs(capsys):
    from vocalmix.cli import main

    assert main(["train", "--help"]) == 0
    assert "cnn-e2e" in capsys.readouterr().out
    assert main(["dataset", "info", "--help"]) == 0


def test_method_registry_points_at_runtime_modules():
    for name in methods.available():
        target = methods._REGISTRY[name].split(":")[0]
        assert target.startswith("vocalmix.") and not _training_modules([target]), (name, target)
        assert (ROOT / "vocalmix" / Path(*target.split(".")[1:])).with_suffix(".py").is_file() or (
            ROOT / "vocalmix" / Path(*target.split(".")[1:]) / "__init__.py"
        ).is_file(), target


# -- the static import graph of vocalmix/, dsp/ and training/ ------------------------------------
def _module_name(path: Path) -> str:
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    parts = [PACKAGES[folder], *rest]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _load_time_imports(path: Path, in_functions: bool = False) -> set[str]:
    """vocalmix modules (and names) ``path`` imports when it is loaded: statements at module level (also
    inside module-level ``if``/``try``), not those under ``if TYPE_CHECKING``; with ``in_functions`` also
    the imports inside functions (run when the function is called)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                found.add(origin)
                found.update(f"{origin}.{alias.name}" for alias in node.names)  # `from . import x`
            elif isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    tree = ast.parse(path.read_text(encoding="utf-8"))
    visit(tree.body)
    if in_functions:
        for function in ast.walk(tree):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit([node for node in ast.walk(function) if isinstance(node, (ast.Import, ast.ImportFrom))])
    # A module imported as `a.b.c` loads `a.b` first.
    closed = {".".join(m.split(".")[:i]) for m in found for i in range(2, m.count(".") + 2)}
    return {m for m in closed if m.startswith("vocalmix.")} - {name}


@functools.cache
def _package_imports(in_functions: bool = False) -> dict[str, set[str]]:
    """Every module under vocalmix/, dsp/ and training/ -> the vocalmix names it imports (when loaded, or at all)."""
    return {
        _module_name(p): _load_time_imports(p, in_functions)
        for folder in PACKAGES
        for p in (ROOT / folder).rglob("*.py")
    }


def _package_graph(in_functions: bool = False) -> dict[str, set[str]]:
    """The import graph among the modules of the three folders."""
    imports = _package_imports(in_functions)
    return {name: deps & set(imports) for name, deps in imports.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_cycle_finder_finds_a_known_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_import_scan_reads_relative_and_absolute_imports():
    graph = _package_graph()
    assert "vocalmix.plugins" in graph["vocalmix.render"]  # from .plugins import ...
    assert "vocalmix.settings" in graph["vocalmix.rules.eq"]  # from ..settings import ...
    assert "vocalmix.preset_import" not in graph["vocalmix.plugins"]
    assert "vocalmix.dsp.eq" in graph["vocalmix.dsp.chain"]  # dsp/chain.py: from .eq import ...
    assert "vocalmix.nets.checkpoints" in graph["vocalmix.training.train"]  # absolute, from training/
    assert "vocalmix.training.e2e_params" in graph["vocalmix.training.e2e"]  # training/e2e.py: from . import ...
    deferred = _package_graph(in_functions=True)
    assert "vocalmix.render" not in graph["vocalmix.cli"] and "vocalmix.render" in deferred["vocalmix.cli"]


def test_modules_import_each_other_without_cycles():
    assert _cycles(_package_graph()) == []
    # Not even through imports deferred into functions (which would only hide a cycle).
    assert _cycles(_package_graph(in_functions=True)) == []


def test_runtime_modules_never_import_training():
    """Nothing outside training/ imports it, not even inside a function; the CLI names its commands as strings."""
    imports = _package_imports(in_functions=True)
    offenders = {
        name: sorted(_training_modules(sorted(deps))) for name, deps in imports.items() if not _training_modules([name])
    }
    assert {name: deps for name, deps in offenders.items() if deps} == {}


def test_dsp_imports_nothing_above_it():
    imports = _package_imports(in_functions=True)
    offenders = {
        name: sorted(m for m in deps if not (m == "vocalmix.dsp" or m.startswith("vocalmix.dsp.")))
        for name, deps in imports.items()
        if name.startswith("vocalmix.dsp")
    }
    assert {name: deps for name, deps in offenders.items() if deps} == {}


# -- one range, one place ------------------------------------------------------------------------
@pytest.mark.parametrize("option, setting", [("loudness", "target_loudness_lufs"), ("ceiling", "ceiling_dbtp")])
def test_render_option_ranges_are_the_settings_ranges(tmp_path, option, setting):
    spec = spec_of(OutputSettings, setting)
    request = dict(vocal_path=tmp_path / "v.wav", backing_path=tmp_path / "b.wav", output=tmp_path / "m.wav")
    for value in (spec.minimum, spec.maximum):
        _check_options(RenderRequest(**request, **{option: value}))
    for value in (spec.minimum - 0.1, spec.maximum + 0.1):
        with pytest.raises(InputError, match=rf"--{option} .* is outside \[{spec.minimum:g}, {spec.maximum:g}\]"):
            _check_options(RenderRequest(**request, **{option: value}))


# -- one atomic-write helper ---------------------------------------------------------------------
#: Calls that publish or make a temporary file; only vocalmix/files.py may use them.
_ATOMIC_WRITE_CALLS = {("os", "replace"), ("os", "rename"), ("os", "link"), ("tempfile", "mkstemp")}
_ATOMIC_WRITE_CALLS |= {("tempfile", "NamedTemporaryFile"), ("shutil", "move")}
#: path -> calls allowed there, with the reason.
_ATOMIC_WRITE_ALLOWED = {
    "vocalmix/files.py": "the helper itself",
    "vocalmix/render.py:tempfile.mkstemp": "probes that an output folder is writable (the file is removed at once)",
}


def _hand_written_atomic_writes(source: str) -> list[str]:
    """Calls in ``source`` that make a temporary file or rename one over a destination."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner, name = node.func.value, node.func.attr
        if isinstance(owner, ast.Name) and (owner.id, name) in _ATOMIC_WRITE_CALLS:
            found.append(f"{owner.id}.{name}")
        # Path.replace/rename(target): one argument (str.replace takes two; dataclasses.replace keywords).
        elif name in ("replace", "rename") and len(node.args) == 1 and not node.keywords:
            if not (isinstance(owner, ast.Name) and owner.id == "dataclasses"):
                found.append(f"<path>.{name}")
    return found


def test_atomic_write_scan_finds_hand_written_writes():
    written = """
fd, tmp = tempfile.mkstemp(dir=folder)
os.replace(tmp, path)
Path(tmp).replace(path)
tmp.rename(path)
"""
    assert _hand_written_atomic_writes(written) == ["tempfile.mkstemp", "os.replace", "<path>.replace", "<path>.rename"]
    harmless = "name.replace('a', 'b')\ndataclasses.replace(settings, x=1)\nreplace(settings, x=1)\n"
    assert _hand_written_atomic_writes(harmless) == []


def test_every_atomic_write_goes_through_the_one_helper():
    offenders = {}
    for folder in (*PACKAGES, "scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in _ATOMIC_WRITE_ALLOWED:
                continue
            calls = [
                c for c in _hand_written_atomic_writes(path.read_text()) if f"{rel}:{c}" not in _ATOMIC_WRITE_ALLOWED
            ]
            if calls:
                offenders[rel] = calls
    assert offenders == {}, "write through vocalmix.files.write_atomic"


def test_dsp_room_size_range_is_the_settings_range():
    """dsp cannot import the settings (it imports nothing above it), so its delay-length check restates
    Room Size's range; this ties the two: every whole number in the settings range is taken, the next
    ones out are not."""
    from vocalmix.dsp.reverb import fdn_delay_lengths
    from vocalmix.settings import ReverbSettings

    spec = spec_of(ReverbSettings, "room_size")
    low, high = int(spec.minimum), int(spec.maximum)
    assert (low, high) == (spec.minimum, spec.maximum) and spec.integer
    for room in range(low, high + 1):
        assert len(fdn_delay_lengths(room, 64, 44100.0)) == 64
    for room in (low - 1, high + 1):
        with pytest.raises(ValueError, match="room_size"):
            fdn_delay_lengths(room, 64, 44100.0)


def test_training_target_ranges_are_the_runtime_ones():
    """The CNN targets' ranges (vocalmix.nets.cnn_targets, which checkpoints record) and the dataset's
    outlier limits (training/targets.py) and EQ degradation range (training/synthesis.py) are one fact each."""
    from vocalmix.nets.cnn_targets import LEVEL_RANGE_LU, LRA_RANGE_LU, TARGET_RANGES, TASKS
    from vocalmix.training import synthesis, targets

    assert targets.LEVEL_RANGE_LU == LEVEL_RANGE_LU and targets.LRA_RANGE_LU == LRA_RANGE_LU
    for name in TASKS["eq"]:
        assert TARGET_RANGES[name] == (-synthesis.EQ_GAIN_RANGE_DB, synthesis.EQ_GAIN_RANGE_DB, "linear"), name

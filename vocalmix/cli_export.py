"""The ``vocalmix export`` and ``vocalmix import`` commands (registered by :mod:`vocalmix.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import InputError
from .export import export_settings, write_file
from .preset_import import expand_import_paths, import_settings
from .settings import MixSettings


def export_command(
    settings_json: Annotated[
        Path,
        typer.Argument(
            metavar="SETTINGS_JSON",
            help="Settings JSON written by 'vocalmix render' or 'vocalmix import'.",
            show_default=False,
        ),
    ],
    to: Annotated[
        Path, typer.Option("--to", help="Folder to write the exports into (created if missing).", show_default=False)
    ],
    format: Annotated[
        Optional[list[str]],
        typer.Option(
            "--format",
            "-f",
            metavar="FORMAT",
            help="What to write: iem (plug-in states .xml/.bin), vstpreset, pedalboard (script + JSON), "
            "sheet (Markdown), or all. Repeat or separate with commas.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that already exist.")] = False,
    fill_defaults: Annotated[
        bool,
        typer.Option(
            "--fill-defaults",
            help="Take settings the file leaves out from the defaults (named in a warning) instead of refusing it.",
        ),
    ] = False,
) -> None:
    """Export settings as IEM plug-in presets, a pedalboard script and a mix sheet."""
    settings = _load_settings_json(settings_json, fill_defaults)
    written = export_settings(settings, to, formats=format or ["all"], force=force)
    for path in written:
        typer.echo(str(path))


def import_command(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH",
            help="Plug-in states (.xml, .bin, .vstpreset), vocal_chain.json, or an export folder.",
            show_default=False,
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Settings JSON to write.", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Overwrite the output if it exists.")] = False,
) -> None:
    """Read IEM plug-in states back into a settings JSON that 'vocalmix render --settings' uses."""
    if output.exists() and output.is_dir():
        raise InputError(f"{output}: is a folder; give a file name for the settings JSON")
    sources = expand_import_paths(paths)
    if any(output.resolve() == p.resolve() for p in sources):
        raise InputError(f"{output}: output path is one of the inputs; choose another name")
    if output.exists() and not force:
        raise InputError(f"{output}: already exists (use --force to overwrite)")
    if not output.parent.exists():
        raise InputError(f"{output}: folder {output.parent} does not exist")
    defaulted: list[str] = []
    settings = import_settings(sources, defaulted=defaulted)
    text = settings.to_json(
        method="import", report={"imported_from": [str(p) for p in sources], "taken_from_defaults": defaulted}
    )
    write_file(output, (text + "\n").encode("utf-8"))
    typer.echo(str(output))


def _load_settings_json(path: Path, fill_defaults: bool = False) -> MixSettings:
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a settings JSON file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    return MixSettings.from_json(text, source=str(path), fill_defaults=fill_defaults)

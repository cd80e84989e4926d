"""``vocalmix listening-test build|serve|analyse``."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Optional

import typer

listening_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Build, serve and analyse a listening test of the mixes from 'vocalmix compare'.",
)


def _progress(quiet: bool):
    from ..progress import Progress

    return Progress(quiet)


@listening_app.command("build")
def build_command(
    compare_dir: Path = typer.Argument(..., metavar="COMPARE_DIR", help="A folder written by 'vocalmix compare'."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder for the test page, excerpts and key."),
    seconds: float = typer.Option(15.0, "--seconds", help="Excerpt length: the loudest passage of each song."),
    loudness: float = typer.Option(-14.0, "--loudness", help="Every excerpt is normalised to this loudness (LUFS)."),
    reference: bool = typer.Option(
        True, "--reference/--no-reference", help="Hide the reference mix among the mixes (where the song has one)."
    ),
    anchor: bool = typer.Option(False, "--anchor", help="Add a low anchor: the reference low-passed at 3.5 kHz."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for the hidden file names (default: random)."),
    force: bool = typer.Option(False, "--force", "-f", help="Rebuild into a non-empty folder (responses/ is kept)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
):
    """Write a self-contained test page with loudness-normalised excerpts of every mix."""
    from .build import BuildRequest, build_test

    test = build_test(
        BuildRequest(compare_dir, out_dir, seconds, loudness, reference, anchor, seed, force), progress=_progress(quiet)
    )
    stimuli = sum(len(s["stimuli"]) for s in test["songs"])
    typer.echo(
        f"{out_dir}: {len(test['songs'])} songs, {stimuli} excerpts; "
        f"serve it with: vocalmix listening-test serve {out_dir}"
    )


@listening_app.command("serve")
def serve_command(
    test_dir: Path = typer.Argument(..., metavar="TEST_DIR", help="A folder written by 'listening-test build'."),
    port: int = typer.Option(8000, "--port", "-p", help="TCP port (0: any free port)."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (loopback by default; 0.0.0.0 exposes it to the network)."
    ),
    verbose: bool = typer.Option(False, "--log", help="Log every request."),
):
    """Serve the test page and store each submission in TEST_DIR/responses/ (Ctrl-C stops)."""
    from .server import ListeningServer

    server = ListeningServer(test_dir, host, port, verbose)

    def stop(signum, frame):  # SIGTERM stops as Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    typer.echo(f"listening test at {server.url} (answers go to {test_dir / 'responses'}; Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        typer.echo("stopped")
    finally:
        server.server_close()


@listening_app.command("analyse")
def analyse_command(
    test_dir: Path = typer.Argument(..., metavar="TEST_DIR", help="A listening-test folder with responses."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
):
    """Means and 95 % CIs per method and category; Friedman + Wilcoxon (Holm), ANOVA + Tukey; CSV, plot, report."""
    from .analyse import analyse, format_summary

    result = analyse(test_dir, progress=_progress(quiet))
    typer.echo(format_summary(result["summary"]))
    for path in result["written"]:
        typer.echo(str(path))

"""`azjobs export`: a weights version of the run as a self-contained agent file (azjobs.players.export)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from azjobs.cli.context import Session, pass_session, say
from azjobs.cli.options import run_dir_option, unused_redis_url_option


@click.command("export")
@unused_redis_url_option
@run_dir_option(required=True)
@click.option(
    "--version", "version", type=click.IntRange(min=1), default=None, help="Weights version (default: the newest)."
)
@click.option(
    "--best", is_flag=True, help="The best version instead (net:best: the most accurate, else the best rated)."
)
@click.option(
    "--format",
    "format",
    type=click.Choice(["onnx", "torchscript"]),
    default=None,
    help="File format (default: torchscript for FILE.pt, else onnx).",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The agent file to write.")
@click.option("--fp16", is_flag=True, help="The network in half precision (outputs stay float32).")
@pass_session
def export_cmd(session: Session, version: int | None, best: bool, format: str | None, out: Path, fp16: bool) -> None:
    """Write a weights version of the run as one agent file: the network with its card (game, encoding of
    positions, actions, version, rating and accuracy), the card also beside it as FILE.json.

    Reads the storage root only. ONNX runs under onnxruntime alone (docs/using-the-agent.md); any file
    plays as the player agent:FILE. The last line is the card as JSON.
    """
    from azjobs.errors import AzjobsError
    from azjobs.players.export import export_agent
    from azjobs.players.exported import format_for

    if best and version is not None:
        raise AzjobsError("give --version or --best, not both")
    done = export_agent(session.root, out, version=version, best=best, format=format or format_for(out), fp16=fp16)
    card = done.card
    say(f"wrote {done.path} ({card['game']}, weights version {card['weights_version']}, {card['chosen']})")
    say(f"its card, also inside it: {done.sidecar}")
    click.echo(json.dumps(card))


COMMANDS = [export_cmd]

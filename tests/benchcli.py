"""Running `azjobs bench ...` in-process for the benchmarks' tests: its last line parsed as JSON."""

from __future__ import annotations

import json

from click.testing import CliRunner

from azjobs.cli import main


def bench(*args: str) -> dict:
    result = CliRunner().invoke(main, ["bench", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def positive(figures: dict, *names: str) -> None:
    for name in names:
        assert isinstance(figures[name], (int, float)) and figures[name] > 0, (name, figures[name])

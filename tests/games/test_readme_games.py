"""The README's table of games says what each game's module says."""

from __future__ import annotations

from pathlib import Path

from azjobs.games import load_games

README = Path(__file__).resolve().parents[2] / "README.md"


def _table() -> dict[str, list[str]]:
    """The rows of the README's table of games, by game name."""
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| game | board |"))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows[cells[0].split("`")[1]] = cells
    return rows


def test_every_shipped_game_is_in_the_readme_with_its_settings() -> None:
    rows = _table()
    shipped = {name: game for name, game in load_games().items() if type(game).__module__.startswith("azjobs.")}
    assert set(rows) == set(shipped)
    for name, game in shipped.items():
        _, _, actions, _, settings = rows[name]
        assert int(actions) == game.num_actions, name
        written = dict(pair.split("=") for pair in settings.split())
        assert written == {key: str(value) for key, value in game.default_settings.items()}, name

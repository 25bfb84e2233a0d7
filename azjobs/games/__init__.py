"""The game registry: a game is a module implementing `Game` that calls `register`, found by one line.

That line is, for a game shipped with azjobs, its module's name in `BUILTIN_MODULES`; for a game
of one's own (the way pytest finds plugins), an entry point in the group `azjobs.games` of the
package that holds it, or its module's name in the `AZJOBS_GAMES` environment variable.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import EntryPoint, entry_points

from azjobs.errors import AzjobsError
from azjobs.games.base import Game

# The games shipped with azjobs: one module each, imported on first use.
BUILTIN_MODULES = (
    "azjobs.games.connect4",
    "azjobs.games.tictactoe",
    "azjobs.games.othello",
    "azjobs.games.gomoku",
)
ENTRY_POINT_GROUP = "azjobs.games"  # [project.entry-points."azjobs.games"] name = "module" (or "module:GAME")
MODULES_ENV = "AZJOBS_GAMES"  # comma-separated module names, e.g. AZJOBS_GAMES=mygames.nim,mygames.hex

GAMES: dict[str, Game] = {}
_loaded: set[str] = set()  # modules and entry points imported so far


class UnknownGame(AzjobsError, ValueError):
    """No registered game has that name (a ValueError too, for callers that check input)."""


def register(game: Game) -> Game:
    """Make `game` known under `game.name`; called once by the module that defines it."""
    found = GAMES.get(game.name)
    if found is not None and type(found) is not type(game):
        raise AzjobsError(
            f"two games are called {game.name!r} ({type(found).__module__}.{type(found).__name__} "
            f"and {type(game).__module__}.{type(game).__name__}): rename one"
        )
    GAMES[game.name] = game
    return game


def load_games() -> dict[str, Game]:
    """Every game: the built-in ones, those of installed entry points, and those named in AZJOBS_GAMES."""
    for module in BUILTIN_MODULES:
        _import(module, "azjobs")
    if ENTRY_POINT_GROUP not in _loaded:
        _loaded.add(ENTRY_POINT_GROUP)
        for point in entry_points(group=ENTRY_POINT_GROUP):
            _load_entry_point(point)
    for module in os.environ.get(MODULES_ENV, "").split(","):
        if module.strip():
            _import(module.strip(), MODULES_ENV)
    return GAMES


def get_game(name: str) -> Game:
    """The registered game called `name`; UnknownGame naming the known ones otherwise."""
    games = load_games()
    try:
        return games[name]
    except KeyError:
        known = ", ".join(sorted(games))
        raise UnknownGame(
            f"unknown game {name!r}; choose one of: {known} (a game of your own: see docs/your-own-game.md)"
        ) from None


def _import(module: str, source: str) -> None:
    if module in _loaded:
        return
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or not (module == e.name or module.startswith(e.name + ".")):
            raise  # the module itself imports something missing: its own traceback says what
        raise AzjobsError(
            f"cannot import game module {module!r} named in {source}: no module {e.name!r} "
            f"(install its package, or add its folder to PYTHONPATH)"
        ) from None
    _loaded.add(module)


def _load_entry_point(point: EntryPoint) -> None:
    try:
        found = point.load()
    except ModuleNotFoundError as e:
        raise AzjobsError(
            f"cannot load game entry point {point.name} = {point.value!r} of group "
            f"{ENTRY_POINT_GROUP}: no module {e.name!r} (reinstall or uninstall its package)"
        ) from None
    if isinstance(found, Game):  # "module:GAME" names the game itself
        register(found)


__all__ = [
    "BUILTIN_MODULES",
    "ENTRY_POINT_GROUP",
    "GAMES",
    "MODULES_ENV",
    "Game",
    "UnknownGame",
    "get_game",
    "load_games",
    "register",
]

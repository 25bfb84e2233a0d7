"""The game registry: a game is a module implementing `Game` plus one line here."""

from __future__ import annotations

from azjobs.games.base import Game

GAMES: dict[str, Game] = {}


def register(game: Game) -> Game:
    GAMES[game.name] = game
    return game


def get_game(name: str) -> Game:
    """The registered game called `name`; ValueError naming the known ones otherwise."""
    _load_builtin()
    try:
        return GAMES[name]
    except KeyError:
        known = ", ".join(sorted(GAMES))
        raise ValueError(f"unknown game {name!r}; choose one of: {known}") from None


def _load_builtin() -> None:
    # Imported lazily so that `azjobs.games.base` stays importable on its own.
    from azjobs.games import connect4, tictactoe  # noqa: F401


__all__ = ["GAMES", "Game", "get_game", "register"]

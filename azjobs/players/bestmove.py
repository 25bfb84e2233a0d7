"""`azjobs bestmove`: positions in, chosen moves out, by the run's newest weights or any player."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from azjobs.games import Game
from azjobs.players import Player, load_player
from azjobs.players.network import NetPlayer
from azjobs.run import read_file
from azjobs.settings import Settings

if TYPE_CHECKING:
    from azjobs.inference.local import LocalEvaluator

CHUNK = 1024  # positions searched together when input arrives faster than one line at a time


@dataclass(frozen=True)
class Agent:
    """A run's network player (`load_player`'s `net[:VERSION]`) with the run's settings."""

    game: Game
    settings: Settings
    player: NetPlayer

    @property
    def version(self) -> int:
        return self.player.version

    @property
    def evaluator(self) -> LocalEvaluator:
        """The network the player searches with (`make_player` hands the player its bound `evaluate`)."""
        from azjobs.inference.local import LocalEvaluator

        evaluator = getattr(self.player.evaluate, "__self__", None)
        assert isinstance(evaluator, LocalEvaluator)  # load_player's network players evaluate locally
        return evaluator

    def with_sims(self, sims: int) -> NetPlayer:
        """The same player searching with `sims` simulations (0: the policy's top move)."""
        return dataclasses.replace(self.player, sims=sims)


def load_agent(run_dir: Path, device: str = "cpu", version: int | None = None) -> Agent:
    """The run's game, settings and newest weights (or weights `version`), read from the storage root alone."""
    game, player = load_player("net" if version is None else f"net:{version}", run_dir=run_dir, device=device)
    settings = read_file(run_dir)
    assert isinstance(player, NetPlayer) and settings is not None  # load_player has read both
    return Agent(game, settings, player)


def parse_position(game: Game, line: str) -> np.ndarray:
    """The state after the moves on `line`; ValueError naming what is wrong."""
    state = game.state_after(game.parse_moves(line))
    if game.is_terminal(state):
        raise ValueError("the game is already over")
    return state


def answer(agent: Agent, lines: Iterable[str], sims: int, *, chunk: int = CHUNK) -> Iterator[str]:
    """One output line per input line, in order: a move, or `error: line N: ...`."""
    return answer_with(agent.game, agent.with_sims(sims), lines, chunk=chunk)


def answer_with(
    game: Game, player: Player, lines: Iterable[str], *, chunk: int = CHUNK, seed: int = 0
) -> Iterator[str]:
    """`answer` for any player (see `azjobs.players`)."""
    rng = np.random.default_rng(seed)
    batch: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        batch.append((number, line.strip()))
        if len(batch) >= chunk:
            yield from _answer_chunk(game, player, batch, rng)
            batch = []
    yield from _answer_chunk(game, player, batch, rng)


def _answer_chunk(game: Game, player: Player, batch: list[tuple[int, str]], rng: np.random.Generator) -> Iterator[str]:
    out: dict[int, str] = {}
    states, numbers = [], []
    for number, line in batch:
        try:
            states.append(parse_position(game, line))
            numbers.append(number)
        except ValueError as e:
            out[number] = f"error: line {number}: {line!r}: {e}"
    if states:
        actions = player.choose(np.stack(states), rng)
        out.update(zip(numbers, (game.action_to_str(int(a)) for a in actions)))
    for number, _ in batch:
        yield out[number]

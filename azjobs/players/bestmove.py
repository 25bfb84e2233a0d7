"""`azjobs bestmove`: positions in, chosen moves out, by the run's newest weights or any player."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from azjobs import settings as run_settings
from azjobs.errors import AzjobsError
from azjobs.games import Game, get_game
from azjobs.inference.local import LocalEvaluator
from azjobs.players import NetPlayer, Player
from azjobs.players.network import weights_from_run_dir
from azjobs.search.mcts import SearchConfig, best_actions
from azjobs.settings import Settings

CHUNK = 1024  # positions searched together when input arrives faster than one line at a time


@dataclass
class Agent:
    game: Game
    settings: Settings
    evaluator: LocalEvaluator
    version: int


def load_agent(run_dir: Path, device: str = "cpu", version: int | None = None) -> Agent:
    """The run's game, settings and newest weights (or weights `version`), read from the storage root alone."""
    settings = run_settings.read_file(run_dir)
    if settings is None:
        raise AzjobsError(f"no run at {run_dir} (no settings.toml): pass the --run-dir of a run that has trained")
    version, data = weights_from_run_dir(run_dir)(version)
    try:
        game = get_game(settings.game)
    except ValueError as e:  # settings.toml edited by hand, or a game this install lacks
        raise AzjobsError(f"run {run_dir}: {e}") from None
    return Agent(game, settings, LocalEvaluator.from_bytes(game, data, device=device), version)


def parse_position(game: Game, line: str) -> np.ndarray:
    """The state after the moves on `line`; ValueError naming what is wrong."""
    state = game.state_after(game.parse_moves(line))
    if game.is_terminal(state):
        raise ValueError("the game is already over")
    return state


def choose(agent: Agent, states: list[np.ndarray], sims: int, seed: int = 0) -> list[str]:
    config = SearchConfig.from_settings(agent.settings)
    actions = best_actions(
        agent.game, np.stack(states), agent.evaluator.evaluate, sims, config=config, rng=np.random.default_rng(seed)
    )
    return [agent.game.action_to_str(int(a)) for a in actions]


def answer(agent: Agent, lines: Iterable[str], sims: int, *, chunk: int = CHUNK) -> Iterator[str]:
    """One output line per input line, in order: a move, or `error: line N: ...`."""
    player = NetPlayer(agent.game, agent.evaluator.evaluate, agent.version, sims, SearchConfig.from_settings(agent.settings))
    return answer_with(agent.game, player, lines, chunk=chunk)


def answer_with(game: Game, player: Player, lines: Iterable[str], *, chunk: int = CHUNK,
                seed: int = 0) -> Iterator[str]:
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

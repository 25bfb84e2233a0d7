"""Exact game values by memoized negamax: the oracle for small games (tic-tac-toe)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from azjobs.games.base import Game


class Solver:
    """Perfect play for a game small enough to search completely."""

    def __init__(self, game: Game) -> None:
        self.game = game
        self._values: dict[bytes, int] = {}

    def value(self, state: np.ndarray) -> int:
        """+1, 0 or -1: the result for the player to move with perfect play from `state`."""
        key = state.tobytes()
        found = self._values.get(key)
        if found is not None:
            return found
        terminal = self.game.terminal_value(state[None])[0]
        if not np.isnan(terminal):
            result = int(terminal)
        else:
            children = self._children(state)
            result = max(-self.value(child) for child in children.values())
        self._values[key] = result
        return result

    def action_values(self, state: np.ndarray) -> dict[int, int]:
        """The value of each legal action for the player to move."""
        return {a: -self.value(child) for a, child in self._children(state).items()}

    def optimal_actions(self, state: np.ndarray) -> set[int]:
        values = self.action_values(state)
        best = max(values.values())
        return {a for a, v in values.items() if v == best}

    def reachable_states(self) -> list[np.ndarray]:
        """Every non-terminal state reachable from the start, each once."""
        seen: dict[bytes, np.ndarray] = {}
        stack = [self.game.initial_state()]
        while stack:
            state = stack.pop()
            key = state.tobytes()
            if key in seen or self.game.is_terminal(state):
                continue
            seen[key] = state
            stack.extend(self._children(state).values())
        return list(seen.values())

    def _children(self, state: np.ndarray) -> dict[int, np.ndarray]:
        actions = np.flatnonzero(self.game.legal_mask(state[None])[0])
        nexts = self.game.play(np.repeat(state[None], len(actions), axis=0), actions)
        return {int(a): nexts[i] for i, a in enumerate(actions)}


Chooser = Callable[[list[np.ndarray]], list[int]]  # states -> the action chosen in each


@dataclass(frozen=True)
class OracleScore:
    """How a player compares with perfect play on a solved game."""

    positions: int  # reachable non-terminal positions asked
    optimal: int  # of them, where the chosen move keeps the game-theoretic value
    games_lost: int  # lines lost against every optimal reply, as either side
    lines_played: int

    @property
    def optimal_share(self) -> float:
        return self.optimal / max(self.positions, 1)


def score(game: Game, choose: Chooser, solver: Solver | None = None) -> OracleScore:
    """Ask `choose` about every reachable position, then play it against every perfect reply."""
    solver = solver or Solver(game)
    states = solver.reachable_states()
    chosen = choose(states)
    optimal = sum(a in solver.optimal_actions(s) for s, a in zip(states, chosen))
    by_state = {s.tobytes(): a for s, a in zip(states, chosen)}
    lost = lines = 0
    for agent_side in (0, 1):
        for final in _lines_against_perfect(game, solver, by_state, agent_side):
            lines += 1
            value = game.terminal_value(final[None])[0]
            mover_is_agent = int(game.to_play(final[None])[0]) == agent_side
            lost += bool((value < 0) == mover_is_agent and value != 0)
    return OracleScore(len(states), int(optimal), lost, lines)


def _lines_against_perfect(
    game: Game, solver: Solver, agent_moves: dict[bytes, int], agent_side: int
) -> Iterator[np.ndarray]:
    """Final states of every game where the agent plays its moves and the opponent any optimal one."""
    stack = [game.initial_state()]
    while stack:
        state = stack.pop()
        if game.is_terminal(state):
            yield state
            continue
        if int(game.to_play(state[None])[0]) == agent_side:
            actions = [agent_moves[state.tobytes()]]
        else:
            actions = sorted(solver.optimal_actions(state))
        stack.extend(game.play(np.repeat(state[None], len(actions), 0), np.array(actions)))

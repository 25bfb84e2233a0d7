"""Exact game values by memoized negamax: the oracle for small games (tic-tac-toe)."""

from __future__ import annotations

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

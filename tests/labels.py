"""Labelled tic-tac-toe positions from an exact solver that also counts moves: an oracle for the scorer."""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np

from azjobs.games import get_game
from azjobs.games.solver import Solver

TTT = get_game("tictactoe")


@lru_cache(maxsize=None)
def _score(key: bytes) -> int:
    """For the player to move: 0 a draw; a win scores the cells still empty at its end, plus one
    (quicker wins score more); a loss the same, negative."""
    state = np.frombuffer(key, np.int8)
    terminal = TTT.terminal_value(state[None])[0]
    if not np.isnan(terminal):
        return 0 if terminal == 0 else -(1 + int((state[:9] == 0).sum()))
    return max(-_score(child.tobytes()) for child in _children(state))


def _children(state: np.ndarray) -> list[np.ndarray]:
    actions = np.flatnonzero(TTT.legal_mask(state[None])[0])
    return list(TTT.play(np.repeat(state[None], len(actions), 0), actions))


def move_scores(state: np.ndarray) -> list[int | None]:
    legal = TTT.legal_mask(state[None])[0]
    return [-_score(TTT.play(state[None], np.array([a]))[0].tobytes()) if legal[a] else None for a in range(9)]


def labelled_lines(count: int, seed: int = 0) -> list[str]:
    """`count` reachable positions, as lines of the labelled positions format."""
    solver = Solver(TTT)
    states = solver.reachable_states()
    rng = np.random.default_rng(seed)
    lines = []
    for i in rng.choice(len(states), count, replace=False):
        state = states[i]
        moves = _moves_to(state)
        lines.append(json.dumps({"moves": moves, "scores": move_scores(state)}))
    return lines


def _moves_to(state: np.ndarray) -> str:
    """One move order reaching `state`: X's cells and O's cells interleaved."""
    xs = [str(c + 1) for c in np.flatnonzero(state[:9] == 1)]
    os_ = [str(c + 1) for c in np.flatnonzero(state[:9] == -1)]
    order = [m for pair in zip(xs, os_) for m in pair] + xs[len(os_) :]
    return "".join(order)

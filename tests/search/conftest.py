"""Evaluators for the search tests: a solved tic-tac-toe oracle and a know-nothing uniform one."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import pytest

from azjobs.games import get_game
from azjobs.games.solver import Solver
from azjobs.search import Evaluate, SearchConfig, SelfPlayConfig

TICTACTOE = get_game("tictactoe")
POWERS = 3 ** np.arange(9)  # base-3 digits of a board


def board_index(cells: np.ndarray) -> np.ndarray:
    """A unique index per board.  # [K, 9] in {-1, 0, 1} -> [K] int64"""
    return (cells.astype(np.int64) + 1) @ POWERS


def decode(planes: np.ndarray) -> np.ndarray:
    """Tic-tac-toe states back from planes seen by the player to move.  # [K, 2, 3, 3] -> [K, 10] int8"""
    own = planes[:, 0].reshape(-1, 9).astype(np.int8)
    other = planes[:, 1].reshape(-1, 9).astype(np.int8)
    ply = (own + other).sum(axis=1).astype(np.int8)
    me = np.where(ply % 2 == 0, 1, -1).astype(np.int8)[:, None]
    return np.concatenate([me * own - me * other, ply[:, None]], axis=1)


class PerfectEvaluator:
    """Uniform logits and the solved value for the player to move: an oracle network.

    It refuses terminal positions, which search must score without the network.
    """

    def __init__(self) -> None:
        self.solver = Solver(TICTACTOE)
        self.states = np.stack(self.solver.reachable_states())  # [4520, 10] every non-terminal state
        self.values = np.full(3**9, np.nan, np.float32)  # NaN: not a reachable non-terminal board
        self.values[board_index(self.states[:, :9])] = [self.solver.value(s) for s in self.states]

    def __call__(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values = self.values[board_index(decode(planes)[:, :9])]
        assert not np.isnan(values).any(), "evaluated a terminal or unreachable position"
        return np.zeros((len(planes), TICTACTOE.num_actions), np.float32), values


def selfplay(**knobs: Any) -> SelfPlayConfig:
    """A self-play config from knobs by name, search ones and self-play ones together."""
    own = {f.name for f in fields(SelfPlayConfig)} - {"search"}
    search = SearchConfig(**{k: v for k, v in knobs.items() if k not in own})
    return SelfPlayConfig(search=search, **{k: v for k, v in knobs.items() if k in own})


def _uniform(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((len(planes), TICTACTOE.num_actions), np.float32), np.zeros(len(planes), np.float32)


@pytest.fixture(scope="session")
def perfect() -> PerfectEvaluator:
    return PerfectEvaluator()


@pytest.fixture
def uniform() -> Evaluate:
    """Zero logits and zero values: search alone must find what matters."""
    return _uniform

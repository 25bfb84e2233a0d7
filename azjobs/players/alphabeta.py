"""Depth-limited alpha-beta (negamax) with a static evaluation; the last few plies as one array minimax.

The upper plies are a plain alpha-beta recursion over one position at a time, children ordered
by the static evaluation; once few enough plies are left that the full-width tree below a node
fits in one array (`FRONTIER_LEAVES`), that subtree is expanded level by level and minimaxed with
array code, which returns the same value as alpha-beta would. Values are for the player to move:
the evaluation lies in (-1, 1), a win found with `d` plies still to search is worth `WIN + d`
(so the quicker win and the slower loss are preferred), a draw 0. The side to move is read from
`game.to_play` at every node, so games with passes (a player moving twice) are searched right.
"""

from __future__ import annotations

import math

import numpy as np

from azjobs.games.base import Game
from azjobs.players.baselines import random_legal
from azjobs.players.heuristics import Heuristic, heuristic_for

WIN = 100.0  # a won position's value, plus the plies left to search
FRONTIER_LEAVES = 512  # largest full-width subtree (num_actions ** plies) done as one array minimax


class AlphaBetaPlayer:
    """Alpha-beta to `depth` plies with `heuristic` (default: the game's, see `heuristics`) at the leaves."""

    def __init__(self, game: Game, depth: int, heuristic: Heuristic | None = None) -> None:
        if depth < 1:
            raise ValueError(f"alpha-beta needs a depth of at least 1, got {depth}")
        self.game = game
        self.depth = depth
        self.name = f"alphabeta:{depth}"
        self.heuristic = heuristic or heuristic_for(game)
        self.frontier = max(1, int(math.log(FRONTIER_LEAVES) / math.log(max(game.num_actions, 2))))

    def choose(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.array([self._best_action(state, rng) for state in states], dtype=np.int64)

    def _best_action(self, state: np.ndarray, rng: np.random.Generator) -> int:
        actions, values, children = self._children(state)
        if len(actions) == 0:  # only asked about positions that go on; keep a legal answer anyway
            return int(random_legal(self.game.legal_mask(state[None]), rng)[0])
        # Random order among equals, so equal moves are not always the leftmost one.
        order = np.lexsort((rng.random(len(actions)), -values))
        best, best_value = int(actions[order[0]]), -np.inf
        mover = self.game.to_play(state[None])[0]
        for i in order:
            value = self._child_value(children[i], mover, self.depth - 1, best_value, np.inf)
            if value > best_value:
                best, best_value = int(actions[i]), value
        return best

    def value(self, state: np.ndarray) -> float:
        """The searched value of `state` for its player to move."""
        return self._negamax(state, self.depth, -np.inf, np.inf)

    def _child_value(self, child: np.ndarray, mover: int, depth: int, alpha: float, beta: float) -> float:
        """A child's value for `mover`, searched with the window (alpha, beta) seen by `mover`."""
        if self.game.to_play(child[None])[0] == mover:  # a pass: the same player moves again
            return self._negamax(child, depth, alpha, beta)
        return -self._negamax(child, depth, -beta, -alpha)

    def _negamax(self, state: np.ndarray, depth: int, alpha: float, beta: float) -> float:
        if depth <= self.frontier:
            return float(self.full_width(state[None], depth)[0])
        terminal = self.game.terminal_value(state[None])[0]
        if not np.isnan(terminal):
            return float(terminal) * (WIN + depth)
        actions, values, children = self._children(state)
        mover = self.game.to_play(state[None])[0]
        best = -np.inf
        for i in np.argsort(-values, kind="stable"):  # the likeliest best first: more cut-offs
            best = max(best, self._child_value(children[i], mover, depth - 1, alpha, beta))
            alpha = max(alpha, best)
            if alpha >= beta:
                break
        return best

    def _children(self, state: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Legal actions, a quick static value of each for the mover (for move ordering), the children."""
        game = self.game
        actions = np.flatnonzero(game.legal_mask(state[None])[0])
        children = game.play(np.repeat(state[None], len(actions), axis=0), actions)
        mover = game.to_play(state[None])[0]
        static = self._static(children, 0)  # for the player to move in each child
        same = game.to_play(children) == mover
        return actions, np.where(same, static, -static), children

    def _static(self, states: np.ndarray, depth: int) -> np.ndarray:
        """Terminal result (scaled to prefer quick wins) or the heuristic, for the player to move.  # [K]"""
        terminal = self.game.terminal_value(states)
        done = ~np.isnan(terminal)
        values = np.empty(len(states), np.float64)
        values[done] = terminal[done] * (WIN + depth)
        if (~done).any():
            values[~done] = self.heuristic(self.game.encode(states[~done]))
        return values

    def full_width(self, states: np.ndarray, depth: int) -> np.ndarray:
        """Minimax values of `states  # [K, S]` to `depth` plies, every level as one array.  # [K] float64"""
        game = self.game
        if depth == 0:
            return self._static(states, 0)
        terminal = game.terminal_value(states)
        values = np.where(np.isnan(terminal), -np.inf, terminal * (WIN + depth))
        rows, actions = np.nonzero(game.legal_mask(states) & np.isnan(terminal)[:, None])
        if len(rows):
            children = game.play(states[rows], actions)
            child_values = self.full_width(children, depth - 1)
            same = game.to_play(children) == game.to_play(states)[rows]
            np.maximum.at(values, rows, np.where(same, child_values, -child_values))
        return values

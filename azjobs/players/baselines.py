"""The simplest opponents: a uniformly random player, and one-ply (win if it can, else don't allow a win)."""

from __future__ import annotations

import numpy as np

from azjobs.games.base import Game


def random_legal(legal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random legal action per row.  # [B, A] bool -> [B] int64"""
    return np.where(legal, rng.random(legal.shape), -1.0).argmax(axis=1)


def mover_result(game: Game, parents_to_play: np.ndarray, children: np.ndarray) -> np.ndarray:
    """The result of each child position for the player who moved into it: +1, 0, -1, NaN if it goes on.

    `terminal_value` is for the player to move in the child, who is the mover again after a pass.
    """
    value = game.terminal_value(children)  # [K]
    same = game.to_play(children) == parents_to_play
    return np.where(same, value, -value)


class RandomPlayer:
    """A uniformly random legal move: the anchor of the ratings (0 Elo)."""

    name = "random"

    def __init__(self, game: Game) -> None:
        self.game = game

    def choose(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return random_legal(self.game.legal_mask(states), rng)


class OnePlyPlayer:
    """A winning move if there is one; else a move after which the opponent cannot win at once
    (which blocks a single threat); else any move. Ties are broken at random."""

    name = "oneply"

    def __init__(self, game: Game) -> None:
        self.game = game

    def choose(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        game = self.game
        legal = game.legal_mask(states)  # [B, A]
        rows, actions = np.nonzero(legal)  # every (position, legal move)
        movers = game.to_play(states)[rows]
        children = game.play(states[rows], actions)  # [M, S]
        wins = mover_result(game, movers, children) > 0  # [M]
        unsafe = self._opponent_can_win(children, movers)
        score = np.full(legal.shape, -np.inf)
        score[rows, actions] = 2.0 * wins + 1.0 * ~unsafe + 0.5 * rng.random(len(rows))
        return score.argmax(axis=1)

    def _opponent_can_win(self, children: np.ndarray, movers: np.ndarray) -> np.ndarray:
        """Whether the opponent, if it is to move in the child, has a move that wins at once.  # [M] bool"""
        game = self.game
        child_to_play = game.to_play(children)
        open_ = np.isnan(game.terminal_value(children)) & (child_to_play != movers)
        unsafe = np.zeros(len(children), bool)
        idx = np.flatnonzero(open_)
        if len(idx) == 0:
            return unsafe
        rows, actions = np.nonzero(game.legal_mask(children[idx]))
        grand = game.play(children[idx][rows], actions)
        opponent_wins = mover_result(game, child_to_play[idx][rows], grand) > 0
        unsafe[idx[rows[opponent_wins]]] = True
        return unsafe

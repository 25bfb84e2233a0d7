"""The rules as search runs them: batched play, describe and encode over the game's own fast state rows.

Search keeps every node's state in the tree and calls these once per simulation step for all the
games of a job. `GameKernel` itself runs any `Game` through its numpy methods (state rows as they
are); a game may offer a faster kernel (Connect Four: bitboards in numba) through `Game.kernel()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from azjobs.games.base import Game


class GameKernel:
    """Batched rules over kernel states `[K, W]` of dtype `dtype`; this one is the plain `Game` itself.

    Subclasses override all of it for their own representation; `from_states` / `to_states` convert
    to and from the game's int8 state rows `[K, S]` (only at the roots and in records, never per node).
    """

    def __init__(self, game: Game) -> None:
        self.game = game
        self.num_actions = game.num_actions  # A
        self.planes_shape = tuple(game.planes_shape)  # (C, H, W)
        self.width = game.state_size  # W
        self.dtype: np.dtype = np.dtype(np.int8)  # of kernel states

    def from_states(self, states: np.ndarray) -> np.ndarray:
        """Kernel states of game state rows.  # [K, S] int8 -> [K, W]"""
        return np.ascontiguousarray(states, dtype=np.int8)

    def to_states(self, kstates: np.ndarray) -> np.ndarray:
        """Game state rows of kernel states.  # [K, W] -> [K, S] int8"""
        return np.ascontiguousarray(kstates, dtype=np.int8)

    def play(self, kstates: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """States after each (legal) action.  # [K, W], [K] -> [K, W]"""
        return self.game.play(kstates, actions)

    def describe(self, kstates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(to_play [K] int8, terminal_value [K] float32 with NaN while ongoing, legal [K, A] bool)."""
        g = self.game
        return g.to_play(kstates), g.terminal_value(kstates), g.legal_mask(kstates)

    def expand(
        self, tree_state: np.ndarray, games: np.ndarray, parents: np.ndarray, actions: np.ndarray, nodes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Search's hot step: for each i, tree_state[games[i], nodes[i]] = the state after actions[i] in
        tree_state[games[i], parents[i]]; then `describe` of the new states.

        tree_state [B, N, W]; games, parents, actions, nodes [K]. A fast kernel does it in one pass.
        """
        states = self.play(tree_state[games, parents], actions)
        tree_state[games, nodes] = states
        return self.describe(states)

    def encode(self, kstates: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Network planes written into `out`.  # [K, W] -> out [K, C, H, W] uint8"""
        if len(kstates) == 0:
            return out
        written = self.game.encode(kstates, out=out)
        if written is not out:  # a game that ignores `out` still works, at the cost of a copy
            out[...] = written
        return out

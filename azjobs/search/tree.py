"""The search trees of many games as one struct of preallocated arrays (the mctx layout).

A game's tree lives in row b of every array; node 0 is its root and nodes [0, num_nodes[b]) are
in use. A search of S simulations never needs more than S + 1 nodes, even with the subtree of the
previous move kept (a kept subtree has at most as many nodes as its root has visits, and those
visits count toward the S), so the arrays are sized once for the whole life of a job. The numba
steps read the `Tree` (a NamedTuple of arrays) by field name; they are handed its arrays as
`Tree.for_steps` gives them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

UNVISITED = -1  # children_index of an edge whose child has not been created yet
NO_PARENT = -1  # parent of a root
NO_ACTION = -1  # action_from_parent of a root; best_actions' answer for a finished game
ROOT = 0  # every tree's root is node 0


class Tree(NamedTuple):
    """The search trees of B games as arrays. Values are from the perspective of the player to
    move at the node, except `children_value_sum`, which is seen by the player choosing the child
    (so that `children_value_sum / children_visits` is directly the Q that the parent maximizes)."""

    state: np.ndarray  # [B, N, W] the game kernel's state of each node (see azjobs.games.kernel)
    to_play: np.ndarray  # [B, N] int8
    terminal_value: np.ndarray  # [B, N] float32, NaN while the game goes on
    legal: np.ndarray  # [B, N, A] bool
    prior: np.ndarray  # [B, N, A] float32, 0 on illegal actions (the root's includes the noise)
    node_visits: np.ndarray  # [B, N] int32, including the node's own evaluation
    node_value_sum: np.ndarray  # [B, N] float32
    parent: np.ndarray  # [B, N] int32, NO_PARENT for the root
    action_from_parent: np.ndarray  # [B, N] int32, NO_ACTION for the root
    children_index: np.ndarray  # [B, N, A] int32, UNVISITED until the child is created
    children_visits: np.ndarray  # [B, N, A] int32
    children_value_sum: np.ndarray  # [B, N, A] float32, seen by the node's player to move
    num_nodes: np.ndarray  # [B] int32, nodes in use (the next free index)
    raw_value: np.ndarray  # [B, N] float32, the network's value of the node (the terminal value of a terminal one)

    @classmethod
    def empty(
        cls, batch: int, num_nodes: int, num_actions: int, state_width: int, state_dtype: np.dtype = np.dtype(np.int8)
    ) -> Tree:
        b, n, a = batch, num_nodes, num_actions
        return cls(
            state=np.zeros((b, n, state_width), state_dtype),
            to_play=np.zeros((b, n), np.int8),
            terminal_value=np.full((b, n), np.nan, np.float32),
            legal=np.zeros((b, n, a), bool),
            prior=np.zeros((b, n, a), np.float32),
            node_visits=np.zeros((b, n), np.int32),
            node_value_sum=np.zeros((b, n), np.float32),
            parent=np.full((b, n), NO_PARENT, np.int32),
            action_from_parent=np.full((b, n), NO_ACTION, np.int32),
            children_index=np.full((b, n, a), UNVISITED, np.int32),
            children_visits=np.zeros((b, n, a), np.int32),
            children_value_sum=np.zeros((b, n, a), np.float32),
            num_nodes=np.zeros(b, np.int32),
            raw_value=np.zeros((b, n), np.float32),
        )

    @property
    def capacity(self) -> int:
        return self.node_visits.shape[1]  # N

    def for_steps(self) -> tuple[np.ndarray, ...]:
        """The tree as the numba steps take it: its fields in order, the states viewed as bytes
        `[B, N, W * itemsize] uint8` (so one compiled step serves every game's state dtype), in a
        plain tuple that each step names again with `Tree(*arrays)`. Not the Tree itself: numba 0.68
        types a NamedTuple argument in Python, about 10 us a call against about 2 us for a tuple of
        arrays, and a search step makes several calls for its 64 simulations."""
        return tuple(self._replace(state=self.state.view(np.uint8)))

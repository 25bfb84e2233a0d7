"""The simple search, kept as the oracle of the fast engine: plain numpy over the game's own methods.

This is the first engine of azjobs (numpy fancy indexing, level by level, no subtree reuse), kept
verbatim apart from what only the package used; `test_engine.py` checks that `azjobs.search` gives
the same visits and values as this on the same positions, evaluator and random numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from azjobs.games.base import Game

# planes [K, C, H, W] uint8 -> (policy logits [K, A] float32, values [K] float32 in [-1, 1]
# for the player to move in each position).
Evaluate = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

UNVISITED = -1  # children_index of an edge whose child has not been created yet
NO_PARENT = -1  # parent of a root
NO_ACTION = -1  # action_from_parent of a root; best_actions' answer for a finished game
ROOT = 0  # every tree's root is node 0


@dataclass(frozen=True)
class SearchConfig:
    """The search knobs, with AlphaZero's published defaults."""

    num_simulations: int = 100
    c_puct: float = 1.5
    dirichlet_alpha: float = 1.0
    dirichlet_fraction: float = 0.25


@dataclass(frozen=True)
class SearchResult:
    """What a search says about each root. A terminal root has no visits and no prior."""

    visits: np.ndarray  # [B, A] int32, visits of each root child (they sum to num_simulations)
    root_value: np.ndarray  # [B] float32, mean backed-up value for the player to move
    prior: np.ndarray  # [B, A] float32, the network's prior at the root (before noise)


@dataclass
class Tree:
    """The search trees of B games as arrays. Values are from the perspective of the player to
    move at the node, except `children_value_sum`, which is seen by the player choosing the child
    (so that `children_value_sum / children_visits` is directly the Q that the parent maximizes)."""

    state: np.ndarray  # [B, N, S] int8, the game state of each node
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

    @classmethod
    def empty(cls, batch: int, num_nodes: int, num_actions: int, state_size: int) -> Tree:
        b, n, a = batch, num_nodes, num_actions
        return cls(
            state=np.zeros((b, n, state_size), np.int8),
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
        )


class Search:
    """One search of B games, driven step by step: while not `done`, evaluate `pending_planes()`
    and hand the answer to `apply`. The first step evaluates the roots; each later step is one
    simulation of every game whose root is not terminal."""

    def __init__(
        self, game: Game, states: np.ndarray, config: SearchConfig, rng: np.random.Generator, *, add_noise: bool
    ) -> None:
        batch = len(states)  # states [B, S]
        self.game, self.config, self.rng, self.add_noise = game, config, rng, add_noise
        self.tree = t = Tree.empty(batch, config.num_simulations + 1, game.num_actions, game.state_size)
        t.state[:, ROOT] = states
        t.to_play[:, ROOT] = game.to_play(states)
        t.terminal_value[:, ROOT] = game.terminal_value(states)
        t.legal[:, ROOT] = game.legal_mask(states)
        t.num_nodes[:] = 1
        # Games whose root is terminal are left alone.
        self._games = np.flatnonzero(np.isnan(t.terminal_value[:, ROOT]))  # [G] searched games
        self._root_prior = np.zeros((batch, game.num_actions), np.float32)  # [B, A] before noise
        self._simulations = 0
        self._at_root = True
        self._set_pending(self._games, np.full(len(self._games), ROOT, np.int32))
        self._terminal_games = self._terminal_nodes = np.zeros(0, np.intp)  # leaves scored without the network

    @property
    def done(self) -> bool:
        return len(self._pending_games) == 0

    def pending_planes(self) -> np.ndarray:
        """The leaves waiting for an evaluation.  # [K, C, H, W] uint8"""
        return self._pending_planes

    def apply(self, logits: np.ndarray, values: np.ndarray) -> None:
        """Take the evaluation of `pending_planes()`, back it up, and run to the next one (or the end)."""
        if self.done:
            raise RuntimeError("apply() called on a finished search")
        k = len(self._pending_games)
        logits = np.asarray(logits, np.float32)  # [K, A]
        values = np.asarray(values, np.float32)  # [K]
        if logits.shape != (k, self.game.num_actions) or values.shape != (k,):
            raise ValueError(
                f"evaluation of {k} positions gave logits {logits.shape} and values {values.shape}, "
                f"expected ({k}, {self.game.num_actions}) and ({k},)"
            )
        games, nodes = self._pending_games, self._pending_nodes
        priors = _legal_softmax(logits, self.tree.legal[games, nodes])
        if self._at_root:
            self._root_prior[games] = priors
            if self.add_noise:
                priors = self._noisy(priors, self.tree.legal[games, ROOT])
            self._at_root = False
        self.tree.prior[games, nodes] = priors
        self._backup(games, nodes, values)
        self._backup_terminal_leaves()
        self._advance()

    def result(self) -> SearchResult:
        if not self.done:
            raise RuntimeError("result() called before the search finished")
        t = self.tree
        visits = t.node_visits[:, ROOT]
        mean = t.node_value_sum[:, ROOT] / np.maximum(visits, 1)
        return SearchResult(
            visits=t.children_visits[:, ROOT].copy(),
            root_value=np.where(visits > 0, mean, t.terminal_value[:, ROOT]).astype(np.float32),
            prior=self._root_prior,
        )

    # The steps of a simulation.

    def _advance(self) -> None:
        """Simulate until some leaf needs the network or every simulation is done."""
        self._set_pending(np.zeros(0, np.intp), np.zeros(0, np.int32))
        self._terminal_games = self._terminal_nodes = np.zeros(0, np.intp)
        while self._simulations < self.config.num_simulations and len(self._games):
            self._simulations += 1
            parents, actions, children = self._select(self._games)
            leaves = self._expand(self._games, parents, actions, children)
            terminal = ~np.isnan(self.tree.terminal_value[self._games, leaves])
            self._terminal_games, self._terminal_nodes = self._games[terminal], leaves[terminal]
            self._set_pending(self._games[~terminal], leaves[~terminal])
            if not self.done:
                return
            self._backup_terminal_leaves()  # only terminal leaves this time: nothing to wait for

    def _backup_terminal_leaves(self) -> None:
        games, nodes = self._terminal_games, self._terminal_nodes
        self._backup(games, nodes, self.tree.terminal_value[games, nodes])

    def _select(self, games: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """From each root, follow the best PUCT child down to an edge without a child or to a
        terminal node. The edge (parent, action) and its child (UNVISITED or the terminal node)."""
        t = self.tree
        parents = np.zeros(len(games), np.int32)  # [G]
        actions = np.zeros(len(games), np.int32)
        children = np.zeros(len(games), np.int32)
        rows = np.arange(len(games))  # the games still descending
        nodes = np.full(len(games), ROOT, np.int32)
        while len(rows):
            g = games[rows]
            a = self._puct_actions(g, nodes)
            child = t.children_index[g, nodes, a]
            parents[rows], actions[rows], children[rows] = nodes, a, child
            deeper = child != UNVISITED
            deeper[deeper] = np.isnan(t.terminal_value[g[deeper], child[deeper]])
            rows, nodes = rows[deeper], child[deeper]
        return parents, actions, children

    def _puct_actions(self, games: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """argmax over legal actions of Q + c_puct * P * sqrt(N_parent) / (1 + N_child).

        First-play value: an unvisited child's Q is its parent's current mean value. It is
        neither optimistic (which spends a simulation on every child of every node) nor a fixed
        0 (which in a lost position makes every untried move look better than the tried ones).
        """
        t = self.tree
        visits = t.children_visits[games, nodes]  # [K, A]
        parent_visits = t.node_visits[games, nodes].astype(np.float32)  # [K], >= 1: evaluated
        parent_q = t.node_value_sum[games, nodes] / parent_visits
        q = np.where(visits > 0, t.children_value_sum[games, nodes] / np.maximum(visits, 1), parent_q[:, None])
        u = self.config.c_puct * t.prior[games, nodes] * (np.sqrt(parent_visits)[:, None] / (1 + visits))
        return np.where(t.legal[games, nodes], q + u, -np.inf).argmax(axis=1).astype(np.int32)

    def _expand(self, games: np.ndarray, parents: np.ndarray, actions: np.ndarray, children: np.ndarray) -> np.ndarray:
        """Create the child of each new edge. The leaf node of every game.  # [G] int32"""
        t = self.tree
        new = children == UNVISITED
        g, p, a = games[new], parents[new], actions[new]
        nodes = t.num_nodes[g]
        t.num_nodes[g] += 1
        states = self.game.play(t.state[g, p], a)
        t.state[g, nodes] = states
        t.to_play[g, nodes] = self.game.to_play(states)
        t.terminal_value[g, nodes] = self.game.terminal_value(states)
        t.legal[g, nodes] = self.game.legal_mask(states)
        t.parent[g, nodes] = p
        t.action_from_parent[g, nodes] = a
        t.children_index[g, p, a] = nodes
        leaves = children.copy()
        leaves[new] = nodes
        return leaves

    def _backup(self, games: np.ndarray, nodes: np.ndarray, values: np.ndarray) -> None:
        """Add each leaf's value (for its player to move) to every node on its path to the root.

        The sign flips only where the player to move changes: a game with passes may give the
        same player two moves in a row. Each game appears once, so fancy `+=` is safe.
        """
        t = self.tree
        values = values.astype(np.float32)
        while len(games):
            t.node_visits[games, nodes] += 1
            t.node_value_sum[games, nodes] += values
            parents = t.parent[games, nodes]
            up = parents != NO_PARENT
            games, nodes, parents, values = games[up], nodes[up], parents[up], values[up]
            actions = t.action_from_parent[games, nodes]
            same_player = t.to_play[games, parents] == t.to_play[games, nodes]
            values = np.where(same_player, values, -values)
            t.children_visits[games, parents, actions] += 1
            t.children_value_sum[games, parents, actions] += values
            nodes = parents

    def _set_pending(self, games: np.ndarray, nodes: np.ndarray) -> None:
        self._pending_games, self._pending_nodes = games, nodes
        self._pending_planes = self.game.encode(self.tree.state[games, nodes])

    def _noisy(self, priors: np.ndarray, legal: np.ndarray) -> np.ndarray:
        """Mix Dirichlet noise over the legal actions into root priors.  # [K, A]"""
        gamma = self.rng.gamma(self.config.dirichlet_alpha, size=priors.shape) * legal
        noise = gamma / np.maximum(gamma.sum(axis=1, keepdims=True), 1e-30)
        fraction = self.config.dirichlet_fraction
        return ((1 - fraction) * priors + fraction * noise).astype(np.float32)


def _legal_softmax(logits: np.ndarray, legal: np.ndarray) -> np.ndarray:
    """Softmax over the legal actions only; 0 on the illegal ones.  # [K, A], [K, A] -> [K, A]"""
    masked = np.where(legal, logits, -np.inf)
    top = masked.max(axis=1, keepdims=True)
    exp = np.where(legal, np.exp(masked - np.where(np.isfinite(top), top, 0)), 0)
    return (exp / np.maximum(exp.sum(axis=1, keepdims=True), 1e-30)).astype(np.float32)


def search(
    game: Game,
    states: np.ndarray,
    evaluate: Evaluate,
    config: SearchConfig,
    rng: np.random.Generator,
    *,
    add_noise: bool,
) -> SearchResult:
    """Search the games `states  # [B, S]`, calling `evaluate` once per simulation step."""
    tree = Search(game, states, config, rng, add_noise=add_noise)
    while not tree.done:
        tree.apply(*evaluate(tree.pending_planes()))
    return tree.result()

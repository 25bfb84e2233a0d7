"""PUCT search (AlphaZero), with first-play urgency and KataGo's forced playouts.

Its selection is a numba loop over a `Tree` (`select`, its knobs named in `PuctKnobs`); `PuctRule`
is what `azjobs.search.mcts.Search` asks of it: Dirichlet noise in the root priors, the visit shares
as the policy target (pruned of the forced playouts), and self-play's moves drawn from the visits.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from azjobs.search.config import SearchConfig
from azjobs.search.steps import backup
from azjobs.search.tree import NO_ACTION, NO_PARENT, ROOT, UNVISITED, Tree


class PuctKnobs(NamedTuple):
    """PUCT's constants, as floats for the numba selection (which takes them one by one, by name)."""

    c_puct: float  # exploration constant
    fpu_root: float  # first-play urgency reduction at the root
    fpu: float  # first-play urgency reduction below the root
    forced_k: float  # KataGo's forced playouts k (0: none)


@numba.njit(cache=True, inline="always")
def puct_action(tree: Tree, b: int, node: int, c_puct: float, fpu_reduction: float) -> int:
    """argmax over legal actions of Q + c_puct * P * sqrt(N_parent) / (1 + N_child).

    First-play urgency: an unvisited child's Q is its parent's current mean value less
    fpu_reduction * sqrt(sum of the priors of the children visited so far) (Leela's FPU reduction).
    With 0 it is the mean itself: neither optimistic (which spends a simulation on every child of
    every node) nor a fixed 0 (which in a lost position makes every untried move look better than
    the tried ones); a reduction makes the search stay longer with the moves it has tried. All
    unvisited children share that Q, so the best of them is the one with the highest prior: one pass
    finds both the best visited child and that one. Ties: the lowest action.
    """
    legal, prior, node_visits, node_value_sum = tree.legal, tree.prior, tree.node_visits, tree.node_value_sum
    children_visits, children_value_sum = tree.children_visits, tree.children_value_sum
    parent_visits = np.float64(node_visits[b, node])  # >= 1: the node was evaluated
    scale = c_puct * math.sqrt(parent_visits)
    best, best_action = -np.inf, -1  # among the visited children
    top_prior, top_action = -1.0, -1  # the unvisited child with the highest prior
    visited_prior = 0.0
    for a in range(legal.shape[2]):
        if not legal[b, node, a]:
            continue
        visits = children_visits[b, node, a]
        if visits > 0:
            visited_prior += prior[b, node, a]
            score = children_value_sum[b, node, a] / visits + scale * prior[b, node, a] / (1 + visits)
            if score > best:
                best, best_action = score, a
        elif prior[b, node, a] > top_prior:
            top_prior, top_action = prior[b, node, a], a
    if top_action >= 0:
        first_play = node_value_sum[b, node] / parent_visits - fpu_reduction * math.sqrt(visited_prior)
        score = first_play + scale * top_prior
        if score > best or (score == best and top_action < best_action):
            best_action = top_action
    return best_action


@numba.njit(cache=True, inline="always")
def forced_action(tree: Tree, b: int, k: float) -> int:
    """KataGo's forced playouts at the root: a child with N visits (N >= 1) and prior P is due while
    N < sqrt(k * P * total root visits); the most overdue one, or -1 if none is."""
    legal, prior, children_visits = tree.legal, tree.prior, tree.children_visits
    total = 0
    for a in range(legal.shape[2]):
        total += children_visits[b, ROOT, a]
    most, due = 0.0, -1
    for a in range(legal.shape[2]):
        visits = children_visits[b, ROOT, a]
        if legal[b, ROOT, a] and visits > 0:
            short = math.sqrt(k * prior[b, ROOT, a] * total) - visits
            if short > most:
                most, due = short, a
    return due


@numba.njit(cache=True)
def select(
    arrays: tuple,
    games: np.ndarray,
    remaining: np.ndarray,
    c_puct: float,
    fpu_root: float,
    fpu: float,
    forced_k: float,
    forced: np.ndarray,
    out_parent: np.ndarray,
    out_action: np.ndarray,
) -> None:
    """Run simulations of each game in `games  # [G]` until one reaches an edge without a child.

    A simulation descends from the root by PUCT (first-play reduction fpu_root at the root, fpu
    below; with forced_k > 0, games where `forced  # [B] bool` take their forced playouts at the
    root first); one that ends in a terminal node backs its value up at once and the game simulates
    again. Each simulation takes one from `remaining  # [B]`. The edge found is
    (out_parent, out_action)  # [G]; out_parent is NO_PARENT where the simulations ran out first.
    """
    tree = Tree(*arrays)
    terminal_value, children_index = tree.terminal_value, tree.children_index
    for i in range(games.shape[0]):
        b = games[i]
        out_parent[i], out_action[i] = NO_PARENT, NO_ACTION
        while remaining[b] > 0:
            remaining[b] -= 1
            a = forced_action(tree, b, forced_k) if forced_k > 0 and forced[b] else -1
            if a < 0:
                a = puct_action(tree, b, ROOT, c_puct, fpu_root)
            node = ROOT
            child = children_index[b, node, a]
            while child != UNVISITED and np.isnan(terminal_value[b, child]):
                node = child
                a = puct_action(tree, b, node, c_puct, fpu)
                child = children_index[b, node, a]
            if child == UNVISITED:
                out_parent[i], out_action[i] = node, a
                break
            backup(tree, b, child, terminal_value[b, child])


@numba.njit(cache=True)
def mix_noise(arrays: tuple, games: np.ndarray, gamma: np.ndarray, fraction: float) -> None:
    """Root priors of `games  # [G]` become (1 - fraction) * prior + fraction * Dirichlet noise, the noise
    being `gamma  # [G, A]` (Gamma(alpha) draws) normalized over the legal actions."""
    tree = Tree(*arrays)
    legal, prior = tree.legal, tree.prior
    keep = np.float32(1.0 - fraction)
    for i in range(games.shape[0]):
        b = games[i]
        total = 0.0
        for a in range(legal.shape[2]):
            if legal[b, ROOT, a]:
                total += gamma[i, a]
        total = max(total, 1e-30)
        for a in range(legal.shape[2]):
            noise = gamma[i, a] / total if legal[b, ROOT, a] else 0.0
            prior[b, ROOT, a] = np.float32(np.float64(keep * prior[b, ROOT, a]) + fraction * noise)


class PuctRule:
    """PUCT's part of the search of the games of `tree` (see `azjobs.search.mcts.Rule`).

    With `add_noise` (self-play), the root priors of full searches get Dirichlet noise and, with
    `forced_playouts`, forced playouts; `full  # [B] bool` is the search's own array, which says
    which games' searches are full ones.
    """

    def __init__(
        self, config: SearchConfig, tree: Tree, full: np.ndarray, rng: np.random.Generator, *, add_noise: bool
    ) -> None:
        self.config, self.tree, self.full, self.rng, self.add_noise = config, tree, full, rng, add_noise
        self.reuses_tree = config.reuse_tree
        self.knobs = PuctKnobs(
            c_puct=float(config.c_puct),
            fpu_root=float(config.fpu_reduction_root),
            fpu=float(config.fpu_reduction),
            forced_k=float(config.forced_playouts),
        )
        self._arrays = tree.for_steps()
        self._forced = full if add_noise else np.zeros(len(full), bool)  # [B] forced playouts: full, noisy searches

    def started(self, games: np.ndarray, kept: np.ndarray) -> None:
        """Searches began at the roots of `games`; `kept` of them kept their root from the last move."""
        # A kept root was evaluated as an inner node: its prior is the network's, the noise is new.
        if self.add_noise and len(kept):
            self._add_noise(kept[self.full[kept]])

    def roots_evaluated(self, roots: np.ndarray) -> None:
        """The network's priors arrived at these roots."""
        if self.add_noise:
            self._add_noise(roots[self.full[roots]])

    def select(self, games: np.ndarray, remaining: np.ndarray, out_parent: np.ndarray, out_action: np.ndarray) -> None:
        k = self.knobs
        select(
            self._arrays,
            games,
            remaining,
            k.c_puct,
            k.fpu_root,
            k.fpu,
            k.forced_k,
            self._forced,
            out_parent,
            out_action,
        )

    def improved_logits(self, games: np.ndarray) -> None:
        """PUCT has no improved policy."""

    def policy_targets(self, games: np.ndarray) -> np.ndarray:
        """The root's visit shares; with forced playouts in a noisy search, the visits less the forced
        ones (KataGo's policy target pruning).  # [G, A] float32, rows sum to 1"""
        t, c = self.tree, self.config
        visits = t.children_visits[games, ROOT]  # [G, A]
        if c.forced_playouts > 0 and self.add_noise:
            visits = visits.astype(np.float64)
            forced = self.full[games]
            q = t.children_value_sum[games, ROOT] / np.maximum(visits, 1)
            visits[forced] = prune_forced(
                visits[forced],
                q[forced],
                t.prior[games[forced], ROOT],
                t.node_visits[games[forced], ROOT],
                c.c_puct,
                c.forced_playouts,
            )
        return (visits / visits.sum(axis=1, keepdims=True)).astype(np.float32)

    def choose(self, games: np.ndarray, explore: np.ndarray) -> np.ndarray:
        """Self-play's moves: drawn in proportion to the visits where `explore  # [G] bool`, else the
        most visited.  # [G]"""
        return choose_moves(self.tree.children_visits[games, ROOT], explore, self.rng)

    def _add_noise(self, games: np.ndarray) -> None:
        """Mix Dirichlet noise over the legal actions into the root priors of `games`."""
        gamma = self.rng.gamma(self.config.dirichlet_alpha, size=(len(games), self.tree.legal.shape[2]))
        mix_noise(self._arrays, games, gamma, float(self.config.dirichlet_fraction))


def choose_moves(visits: np.ndarray, temperature_mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sampled in proportion to the visits where `temperature_mask`, else the most visited.

    visits [B, A] (every row with some visits), temperature_mask [B] bool -> actions [B] int64.
    """
    cumulative = np.cumsum(visits, axis=1, dtype=np.float64)  # [B, A]
    threshold = rng.random(len(visits)) * cumulative[:, -1]  # [B]
    # The first action whose cumulative count passes the threshold; unvisited ones never do.
    sampled = (cumulative > threshold[:, None]).argmax(axis=1)
    return np.where(temperature_mask, sampled, visits.argmax(axis=1))


def prune_forced(
    visits: np.ndarray, q: np.ndarray, prior: np.ndarray, root_visits: np.ndarray, c_puct: float, k: float
) -> np.ndarray:
    """KataGo's policy target pruning: root visits less those forced playouts explain.

    visits, q (the children's mean value for the root's player), prior (with noise) [G, A]; root_visits [G]
    (the root's node visits, whose square root PUCT scales with). The most visited child c* keeps its
    visits; every other child c loses up to sqrt(k * P(c) * sum N) of them, but only so many that its
    PUCT score, recomputed with fewer visits, stays below c*'s; a child left with at most one visit is
    dropped.  # [G, A] float64
    """
    rows = np.arange(len(visits))
    best = visits.argmax(axis=1)  # [G]
    scale = c_puct * np.sqrt(root_visits.astype(np.float64))[:, None]  # [G, 1]
    score = q + scale * prior / (1 + visits)
    best_score = score[rows, best][:, None]  # [G, 1]
    forced = np.sqrt(k * prior * visits.sum(axis=1, keepdims=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        # PUCT(c) < PUCT(c*) while 1 + N' > scale * P / (PUCT(c*) - Q(c)): the fewest visits it may keep.
        floor = np.where(best_score > q, scale * prior / (best_score - q) - 1, visits)
    pruned = np.clip(np.maximum(visits - forced, floor), 0, visits)
    pruned[pruned <= 1] = 0
    pruned[rows, best] = visits[rows, best]
    return pruned

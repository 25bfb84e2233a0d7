"""Gumbel search (Danihelka et al. 2022, "Policy improvement by planning with Gumbel"; mctx's
`gumbel_muzero_policy`) as numba loops over the tree arrays of `azjobs.search.tree`.

At the root, sequential halving spends the simulations on the m actions with the highest
gumbel + logits (Gumbel-top-k: a sample without replacement from the prior), keeping the better
half by gumbel + logits + sigma(completed Q) after each round. Below the root, the deterministic
selection that keeps the visit distribution close to the improved policy
pi' = softmax(logits + sigma(completed Q)); pi' at the root is the policy training target.
sigma(q) = (c_visit + max_b N(b)) * c_scale * q, with Q rescaled to [0, 1] over the node's legal
actions and an unvisited action's Q completed by the mixed value (the network's value of the node
mixed with the prior-weighted Q of the visited actions). Logits are log priors: the softmax of the
network's legal logits, which is all softmax(logits + ...) needs. `GumbelRule` is what
`azjobs.search.mcts.Search` asks of it: the Gumbel noise, pi' as the policy target, the move.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from azjobs.search.config import SearchConfig
from azjobs.search.steps import backup
from azjobs.search.tree import NO_ACTION, NO_PARENT, ROOT, UNVISITED, Tree

TINY_PRIOR = 1e-30  # a prior that underflowed to 0 keeps a finite log
LOW_SCORE = -1e9  # mctx's floor of gumbel + logits + sigma(q), so a huge negative logit still ranks


class GumbelKnobs(NamedTuple):
    """sigma's constants, sigma(q) = (c_visit + max N) * c_scale * q, as floats for the numba loops
    (which take them one by one, by name)."""

    c_visit: float
    c_scale: float


def halving_schedule(considered: int, num_simulations: int) -> list[int]:
    """The visit count of the action each simulation goes to, in order (mctx's
    `get_sequence_of_considered_visits`): each round gives every action still considered
    max(1, S / (ceil(log2 m) * considered)) visits, then halves the considered actions (at least 2)."""
    if considered <= 1:
        return list(range(num_simulations))
    log2max = math.ceil(math.log2(considered))
    sequence: list[int] = []
    visits = [0] * considered
    current = considered
    while len(sequence) < num_simulations:
        extra = max(1, int(num_simulations / (log2max * current)))
        for _ in range(extra):
            sequence.extend(visits[:current])
            for i in range(current):
                visits[i] += 1
        current = max(2, current // 2)
    return sequence[:num_simulations]


def halving_table(max_considered: int, budgets: list[int]) -> np.ndarray:
    """`table[k, m, i]`: the visit count simulation i of a search of budgets[k] simulations gives
    to an action when m actions are considered.  # [K, max_considered + 1, max(budgets)] int32"""
    width = max(max(budgets), 1)
    table = np.zeros((len(budgets), max_considered + 1, width), np.int32)
    for k, budget in enumerate(budgets):
        for m in range(max_considered + 1):
            table[k, m, :budget] = halving_schedule(m, budget)
    return table


@numba.njit(cache=True, inline="always")
def completed_q(tree: Tree, b: int, node: int, c_visit: float, c_scale: float, out: np.ndarray) -> None:
    """sigma(completed Q) of the node's legal actions into out [A] (illegal ones are left as they are)."""
    legal, prior, children_visits = tree.legal, tree.prior, tree.children_visits
    children_value_sum, raw_value = tree.children_value_sum, tree.raw_value
    total, most = 0, 0
    visited_prior, weighted_q = 0.0, 0.0
    for a in range(legal.shape[2]):
        visits = children_visits[b, node, a]
        if legal[b, node, a] and visits > 0:
            p = max(np.float64(prior[b, node, a]), TINY_PRIOR)
            total += visits
            most = max(most, visits)
            visited_prior += p
            weighted_q += p * children_value_sum[b, node, a] / visits
    mixed = np.float64(raw_value[b, node])
    if total > 0:
        mixed = (mixed + total * weighted_q / visited_prior) / (total + 1)
    low, high = np.inf, -np.inf
    for a in range(legal.shape[2]):
        if legal[b, node, a]:
            visits = children_visits[b, node, a]
            q = children_value_sum[b, node, a] / visits if visits > 0 else mixed
            out[a] = q
            low, high = min(low, q), max(high, q)
    scale = (c_visit + most) * c_scale / max(high - low, 1e-8)
    for a in range(legal.shape[2]):
        if legal[b, node, a]:
            out[a] = (out[a] - low) * scale


@numba.njit(cache=True, inline="always")
def interior_action(tree: Tree, b: int, node: int, c_visit: float, c_scale: float, sigma: np.ndarray) -> int:
    """argmax of pi'(a) - N(a) / (1 + sum N): the action whose visits lag pi' the most. Ties: the lowest."""
    legal, prior, children_visits = tree.legal, tree.prior, tree.children_visits
    completed_q(tree, b, node, c_visit, c_scale, sigma)
    top, total = -np.inf, 0
    for a in range(legal.shape[2]):
        if legal[b, node, a]:
            sigma[a] += math.log(max(np.float64(prior[b, node, a]), TINY_PRIOR))  # now logits + sigma(q)
            top = max(top, sigma[a])
            total += children_visits[b, node, a]
    norm = 0.0
    for a in range(legal.shape[2]):
        if legal[b, node, a]:
            norm += math.exp(sigma[a] - top)
    best, best_action = -np.inf, -1
    for a in range(legal.shape[2]):
        if legal[b, node, a]:
            score = math.exp(sigma[a] - top) / norm - children_visits[b, node, a] / (1.0 + total)
            if score > best:
                best, best_action = score, a
    return best_action


@numba.njit(cache=True, inline="always")
def root_action(
    tree: Tree, b: int, gumbel: np.ndarray, table: np.ndarray, c_visit: float, c_scale: float, sigma: np.ndarray
) -> int:
    """Sequential halving: of the actions whose visits equal the count the schedule `table  # [M + 1, S]`
    names for this simulation, the one with the highest gumbel + logits + sigma(completed Q)."""
    legal, prior, children_visits = tree.legal, tree.prior, tree.children_visits
    completed_q(tree, b, ROOT, c_visit, c_scale, sigma)
    done, count = 0, 0
    for a in range(legal.shape[2]):
        if legal[b, ROOT, a]:
            done += children_visits[b, ROOT, a]  # at the root, the simulations so far
            count += 1
    considered = table[min(count, table.shape[0] - 1), min(done, table.shape[1] - 1)]
    best, best_action = -np.inf, -1
    for a in range(legal.shape[2]):
        if legal[b, ROOT, a] and children_visits[b, ROOT, a] == considered:
            logit = math.log(max(np.float64(prior[b, ROOT, a]), TINY_PRIOR))
            score = max(LOW_SCORE, gumbel[b, a] + logit + sigma[a])
            if score > best:
                best, best_action = score, a
    return best_action


@numba.njit(cache=True)
def select(
    arrays: tuple,
    games: np.ndarray,
    remaining: np.ndarray,
    gumbel: np.ndarray,
    tables: np.ndarray,
    table_of: np.ndarray,
    c_visit: float,
    c_scale: float,
    out_parent: np.ndarray,
    out_action: np.ndarray,
) -> None:
    """`azjobs.search.puct.select` with Gumbel's selection: sequential halving at the root (game b's
    schedule is tables[table_of[b]], its Gumbel noise gumbel[b]  # [B, A]), pi'-tracking below."""
    tree = Tree(*arrays)
    terminal_value, legal, children_index = tree.terminal_value, tree.legal, tree.children_index
    sigma = np.empty(legal.shape[2], np.float64)  # scratch: sigma(completed Q), then logits + it
    for i in range(games.shape[0]):
        b = games[i]
        out_parent[i], out_action[i] = NO_PARENT, NO_ACTION
        while remaining[b] > 0:
            remaining[b] -= 1
            node, a = ROOT, root_action(tree, b, gumbel, tables[table_of[b]], c_visit, c_scale, sigma)
            child = children_index[b, node, a]
            while child != UNVISITED and np.isnan(terminal_value[b, child]):
                node = child
                a = interior_action(tree, b, node, c_visit, c_scale, sigma)
                child = children_index[b, node, a]
            if child == UNVISITED:
                out_parent[i], out_action[i] = node, a
                break
            backup(tree, b, child, terminal_value[b, child])


@numba.njit(cache=True)
def improved_logits(arrays: tuple, games: np.ndarray, c_visit: float, c_scale: float, out: np.ndarray) -> None:
    """logits + sigma(completed Q) at the roots of `games  # [G]` into out [G, A] (-inf where illegal):
    the softmax of a row is the improved policy pi'."""
    tree = Tree(*arrays)
    legal, prior = tree.legal, tree.prior
    sigma = np.empty(legal.shape[2], np.float64)
    for i in range(games.shape[0]):
        b = games[i]
        completed_q(tree, b, ROOT, c_visit, c_scale, sigma)
        for a in range(legal.shape[2]):
            if legal[b, ROOT, a]:
                out[i, a] = sigma[a] + math.log(max(np.float64(prior[b, ROOT, a]), TINY_PRIOR))
            else:
                out[i, a] = -np.inf


class GumbelRule:
    """Gumbel's part of the search of the games of `tree` (see `azjobs.search.mcts.Rule`).

    With `add_noise` (self-play), every search draws Gumbel noise g  # [B, A] for its root, which
    makes the move a sample of the improved policy; without, the move is the search's best. Each
    search starts afresh: sequential halving's schedule counts from a root without visits. Game b
    follows the schedule of the full budget where `full[b]` (the search's own array), else the
    cheap one's.
    """

    reuses_tree = False

    def __init__(
        self, config: SearchConfig, tree: Tree, full: np.ndarray, rng: np.random.Generator, *, add_noise: bool
    ) -> None:
        self.tree, self.rng, self.add_noise = tree, rng, add_noise
        self.knobs = GumbelKnobs(c_visit=float(config.gumbel_c_visit), c_scale=float(config.gumbel_c_scale))
        # The schedules of the cheap and the full budget, indexed by `full`.
        self.tables = halving_table(config.gumbel_considered, [config.cheap_budget, config.num_simulations])
        self._table_of = full.view(np.int8)  # [B] 1 where full: stays in step with `full`
        self._arrays = tree.for_steps()
        batch, _, num_actions = tree.legal.shape
        self.noise = np.zeros((batch, num_actions), np.float32)  # [B, A], 0 without add_noise

    def started(self, games: np.ndarray, kept: np.ndarray) -> None:
        """Searches began at the roots of `games`: each draws its Gumbel noise."""
        if self.add_noise and len(games):
            self.noise[games] = self.rng.gumbel(size=(len(games), self.noise.shape[1]))

    def roots_evaluated(self, roots: np.ndarray) -> None:
        """Nothing to do: the Gumbel noise is not mixed into the priors."""

    def select(self, games: np.ndarray, remaining: np.ndarray, out_parent: np.ndarray, out_action: np.ndarray) -> None:
        k = self.knobs
        select(
            self._arrays,
            games,
            remaining,
            self.noise,
            self.tables,
            self._table_of,
            k.c_visit,
            k.c_scale,
            out_parent,
            out_action,
        )

    def improved_logits(self, games: np.ndarray) -> np.ndarray:
        """logits + sigma(completed Q) at the roots of `games` (searched ones); -inf where illegal.
        Their softmax is the improved policy pi'.  # [G, A] float32"""
        out = np.empty((len(games), self.noise.shape[1]), np.float64)
        improved_logits(self._arrays, np.asarray(games, np.intp), self.knobs.c_visit, self.knobs.c_scale, out)
        return out.astype(np.float32)

    def policy_targets(self, games: np.ndarray) -> np.ndarray:
        """The improved policy pi'.  # [G, A] float32, rows sum to 1"""
        return softmax(self.improved_logits(games))

    def choose(self, games: np.ndarray, explore: np.ndarray) -> np.ndarray:
        """The move at the finished roots of `games`: of the most visited actions, the one with the
        highest gumbel noise + logits + sigma(completed Q). `explore` is not used: the noise drawn for
        the search already makes the move a sample.  # [G]"""
        visits = self.tree.children_visits[games, ROOT]
        return gumbel_choice(visits, self.improved_logits(games) + self.noise[games])


def gumbel_choice(visits: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Of the most visited actions of each row, the one with the highest score.  # [G, A], [G, A] -> [G]"""
    most = visits == visits.max(axis=1, keepdims=True)
    return np.where(most, scores, -np.inf).argmax(axis=1)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax; -inf entries get 0.  # [G, A] -> [G, A] float32"""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)

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
network's legal logits, which is all softmax(logits + ...) needs.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from azjobs.search.steps import backup
from azjobs.search.tree import NO_ACTION, NO_PARENT, ROOT, UNVISITED

TINY_PRIOR = 1e-30  # a prior that underflowed to 0 keeps a finite log
LOW_SCORE = -1e9  # mctx's floor of gumbel + logits + sigma(q), so a huge negative logit still ranks


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
def completed_q(links, b: int, node: int, c_visit: float, c_scale: float, out: np.ndarray) -> None:
    """sigma(completed Q) of the node's legal actions into out [A] (illegal ones are left as they are)."""
    (to_play, terminal_value, legal, prior, node_visits, node_value_sum, parent, action_from_parent,
     children_index, children_visits, children_value_sum, num_nodes, raw_value) = links
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
def interior_action(links, b: int, node: int, c_visit: float, c_scale: float, sigma: np.ndarray) -> int:
    """argmax of pi'(a) - N(a) / (1 + sum N): the action whose visits lag pi' the most. Ties: the lowest."""
    legal, prior, children_visits = links[2], links[3], links[9]
    completed_q(links, b, node, c_visit, c_scale, sigma)
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
def root_action(links, b: int, gumbel: np.ndarray, table: np.ndarray, c_visit: float, c_scale: float,
                sigma: np.ndarray) -> int:
    """Sequential halving: of the actions whose visits equal the count the schedule `table  # [M + 1, S]`
    names for this simulation, the one with the highest gumbel + logits + sigma(completed Q)."""
    legal, prior, children_visits = links[2], links[3], links[9]
    completed_q(links, b, ROOT, c_visit, c_scale, sigma)
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
def select(links, games: np.ndarray, remaining: np.ndarray, gumbel: np.ndarray, tables: np.ndarray,
           table_of: np.ndarray, c_visit: float, c_scale: float, out_parent: np.ndarray,
           out_action: np.ndarray) -> None:
    """`azjobs.search.steps.select` with Gumbel's selection: sequential halving at the root (game b's
    schedule is tables[table_of[b]], its Gumbel noise gumbel[b]  # [B, A]), pi'-tracking below."""
    terminal_value, children_index = links[1], links[8]
    sigma = np.empty(links[2].shape[2], np.float64)  # scratch: sigma(completed Q), then logits + it
    for i in range(games.shape[0]):
        b = games[i]
        out_parent[i], out_action[i] = NO_PARENT, NO_ACTION
        while remaining[b] > 0:
            remaining[b] -= 1
            node, a = ROOT, root_action(links, b, gumbel, tables[table_of[b]], c_visit, c_scale, sigma)
            child = children_index[b, node, a]
            while child != UNVISITED and np.isnan(terminal_value[b, child]):
                node = child
                a = interior_action(links, b, node, c_visit, c_scale, sigma)
                child = children_index[b, node, a]
            if child == UNVISITED:
                out_parent[i], out_action[i] = node, a
                break
            backup(links, b, child, terminal_value[b, child])


@numba.njit(cache=True)
def improved_logits(links, games: np.ndarray, c_visit: float, c_scale: float, out: np.ndarray) -> None:
    """logits + sigma(completed Q) at the roots of `games  # [G]` into out [G, A] (-inf where illegal):
    the softmax of a row is the improved policy pi'."""
    legal, prior = links[2], links[3]
    sigma = np.empty(legal.shape[2], np.float64)
    for i in range(games.shape[0]):
        b = games[i]
        completed_q(links, b, ROOT, c_visit, c_scale, sigma)
        for a in range(legal.shape[2]):
            if legal[b, ROOT, a]:
                out[i, a] = sigma[a] + math.log(max(np.float64(prior[b, ROOT, a]), TINY_PRIOR))
            else:
                out[i, a] = -np.inf

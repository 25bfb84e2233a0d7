"""The steps of a simulation as numba loops over the games of a tree: select, attach, evaluate, backup, reroot.

They touch only the tree's statistics and links (`Tree.links()`, passed as one tuple `links`), never
game states: game logic runs batched through the game kernel between the steps, so every game gets
these loops and none needs code of its own here. Shapes: B games, N nodes per tree, A actions, G the
games a step works on.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from azjobs.search.tree import NO_ACTION, NO_PARENT, ROOT, UNVISITED


@numba.njit(cache=True, inline="always")
def puct_action(links, b: int, node: int, c_puct: float, fpu_reduction: float) -> int:
    """argmax over legal actions of Q + c_puct * P * sqrt(N_parent) / (1 + N_child).

    First-play urgency: an unvisited child's Q is its parent's current mean value less
    fpu_reduction * sqrt(sum of the priors of the children visited so far) (Leela's FPU reduction).
    With 0 it is the mean itself: neither optimistic (which spends a simulation on every child of
    every node) nor a fixed 0 (which in a lost position makes every untried move look better than
    the tried ones); a reduction makes the search stay longer with the moves it has tried. All
    unvisited children share that Q, so the best of them is the one with the highest prior: one pass
    finds both the best visited child and that one. Ties: the lowest action.
    """
    (to_play, terminal_value, legal, prior, node_visits, node_value_sum, parent, action_from_parent,
     children_index, children_visits, children_value_sum, num_nodes, raw_value) = links
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
def forced_action(links, b: int, k: float) -> int:
    """KataGo's forced playouts at the root: a child with N visits (N >= 1) and prior P is due while
    N < sqrt(k * P * total root visits); the most overdue one, or -1 if none is."""
    legal, prior, children_visits = links[2], links[3], links[9]
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


@numba.njit(cache=True, inline="always")
def backup(links, b: int, node: int, value: float) -> None:
    """Add a leaf's value (for its player to move) to every node on its path to the root.

    The sign flips only where the player to move changes: a game with passes may give the same
    player two moves in a row.
    """
    (to_play, terminal_value, legal, prior, node_visits, node_value_sum, parent, action_from_parent,
     children_index, children_visits, children_value_sum, num_nodes, raw_value) = links
    while True:
        node_visits[b, node] += 1
        node_value_sum[b, node] += value
        up = parent[b, node]
        if up == NO_PARENT:
            return
        if to_play[b, up] != to_play[b, node]:
            value = -value
        a = action_from_parent[b, node]
        children_visits[b, up, a] += 1
        children_value_sum[b, up, a] += value
        node = up


@numba.njit(cache=True)
def select(links, games: np.ndarray, remaining: np.ndarray, c_puct: float, fpu_root: float, fpu: float,
           forced_k: float, forced: np.ndarray, out_parent: np.ndarray, out_action: np.ndarray) -> None:
    """Run simulations of each game in `games  # [G]` until one reaches an edge without a child.

    A simulation descends from the root by PUCT (first-play reduction fpu_root at the root, fpu
    below; with forced_k > 0, games where `forced  # [B] bool` take their forced playouts at the
    root first); one that ends in a terminal node backs its value up at once and the game simulates
    again. Each simulation takes one from `remaining  # [B]`. The edge found is
    (out_parent, out_action)  # [G]; out_parent is NO_PARENT where the simulations ran out first.
    """
    terminal_value, children_index = links[1], links[8]
    for i in range(games.shape[0]):
        b = games[i]
        out_parent[i], out_action[i] = NO_PARENT, NO_ACTION
        while remaining[b] > 0:
            remaining[b] -= 1
            a = forced_action(links, b, forced_k) if forced_k > 0 and forced[b] else -1
            if a < 0:
                a = puct_action(links, b, ROOT, c_puct, fpu_root)
            node = ROOT
            child = children_index[b, node, a]
            while child != UNVISITED and np.isnan(terminal_value[b, child]):
                node = child
                a = puct_action(links, b, node, c_puct, fpu)
                child = children_index[b, node, a]
            if child == UNVISITED:
                out_parent[i], out_action[i] = node, a
                break
            backup(links, b, child, terminal_value[b, child])


@numba.njit(cache=True)
def attach(links, games: np.ndarray, parents: np.ndarray, actions: np.ndarray, to_play_new: np.ndarray,
           terminal_new: np.ndarray, legal_new: np.ndarray, out_nodes: np.ndarray) -> None:
    """Create one node per game: the child of edge (parent, action), or with parent NO_PARENT a new
    root (the game's tree starts afresh). A child that is terminal is backed up at once.

    games, parents, actions [G]; to_play_new [G] int8, terminal_new [G] float32, legal_new [G, A]
    bool describe the new nodes; out_nodes [G] receives their indices. Game states are the caller's.
    """
    (to_play, terminal_value, legal, prior, node_visits, node_value_sum, parent, action_from_parent,
     children_index, children_visits, children_value_sum, num_nodes, raw_value) = links
    for i in range(games.shape[0]):
        b, up = games[i], parents[i]
        if up == NO_PARENT:
            node = ROOT
            num_nodes[b] = 1
        else:
            node = num_nodes[b]
            if node >= node_visits.shape[1]:
                raise IndexError("search tree full: more simulations than the tree was sized for")
            num_nodes[b] = node + 1
            children_index[b, up, actions[i]] = node
        to_play[b, node] = to_play_new[i]
        terminal_value[b, node] = terminal_new[i]
        legal[b, node] = legal_new[i]
        prior[b, node] = 0
        node_visits[b, node] = 0
        node_value_sum[b, node] = 0
        raw_value[b, node] = terminal_new[i]  # NaN until the network's value comes (terminal: its value)
        parent[b, node] = up
        action_from_parent[b, node] = NO_ACTION if up == NO_PARENT else actions[i]
        children_index[b, node] = UNVISITED
        children_visits[b, node] = 0
        children_value_sum[b, node] = 0
        out_nodes[i] = node
        if up != NO_PARENT and not np.isnan(terminal_new[i]):
            backup(links, b, node, terminal_new[i])


@numba.njit(cache=True)
def evaluated(links, games: np.ndarray, nodes: np.ndarray, logits: np.ndarray, values: np.ndarray) -> None:
    """Take the network's answer for leaves (games, nodes)  # [G]: priors are the softmax of the
    logits  # [G, A] over the legal actions (0 elsewhere), and each value  # [G] is backed up."""
    legal, prior, raw_value = links[2], links[3], links[12]
    for i in range(games.shape[0]):
        b, node = games[i], nodes[i]
        raw_value[b, node] = values[i]
        top = -np.inf
        for a in range(legal.shape[2]):
            if legal[b, node, a] and logits[i, a] > top:
                top = logits[i, a]
        total = 0.0
        for a in range(legal.shape[2]):
            p = math.exp(logits[i, a] - top) if legal[b, node, a] else 0.0
            prior[b, node, a] = p
            total += p
        if total > 0:
            for a in range(legal.shape[2]):
                prior[b, node, a] /= total
        backup(links, b, node, values[i])


@numba.njit(cache=True)
def reroot(links, state_bytes: np.ndarray, games: np.ndarray, actions: np.ndarray, in_subtree: np.ndarray,
           new_index: np.ndarray, out_kept: np.ndarray) -> None:
    """Make the child of each game's root along `actions  # [G]` the new root, keeping its subtree.

    The subtree moves to the front of the game's rows, its nodes in their old order (a child is
    always created after its parent, so it keeps a higher index than its parent, and each node
    moves down or stays: the copy can be done in place); the rest is dropped. out_kept [G] is False
    where that child was never created: the caller starts that game's tree afresh. state_bytes is
    the tree's state viewed as uint8 [B, N, W']; in_subtree [N] bool and new_index [N] int32 are scratch.
    """
    (to_play, terminal_value, legal, prior, node_visits, node_value_sum, parent, action_from_parent,
     children_index, children_visits, children_value_sum, num_nodes, raw_value) = links
    actions_count = legal.shape[2]
    for i in range(games.shape[0]):
        b = games[i]
        start = children_index[b, ROOT, actions[i]]
        out_kept[i] = start != UNVISITED
        if start == UNVISITED:
            continue
        end = num_nodes[b]
        in_subtree[start:end] = False
        in_subtree[start] = True
        kept = 0
        for old in range(start, end):  # one ascending pass: parents come before their children
            if not in_subtree[old]:
                continue
            for a in range(actions_count):
                child = children_index[b, old, a]
                if child != UNVISITED:
                    in_subtree[child] = True
            new_index[old] = kept
            kept += 1
        for old in range(start, end):
            if not in_subtree[old]:
                continue
            new = new_index[old]
            state_bytes[b, new] = state_bytes[b, old]
            to_play[b, new] = to_play[b, old]
            terminal_value[b, new] = terminal_value[b, old]
            legal[b, new] = legal[b, old]
            prior[b, new] = prior[b, old]
            node_visits[b, new] = node_visits[b, old]
            node_value_sum[b, new] = node_value_sum[b, old]
            raw_value[b, new] = raw_value[b, old]
            parent[b, new] = NO_PARENT if new == ROOT else new_index[parent[b, old]]
            action_from_parent[b, new] = NO_ACTION if new == ROOT else action_from_parent[b, old]
            for a in range(actions_count):
                child = children_index[b, old, a]
                children_index[b, new, a] = UNVISITED if child == UNVISITED else new_index[child]
                children_visits[b, new, a] = children_visits[b, old, a]
                children_value_sum[b, new, a] = children_value_sum[b, old, a]
        num_nodes[b] = kept


@numba.njit(cache=True)
def start(links, games: np.ndarray, budget: np.ndarray, remaining: np.ndarray, searching: np.ndarray,
          root_prior: np.ndarray, out_kept: np.ndarray) -> int:
    """Begin a search of `budget[b]` root visits  # [B] at the roots of `games  # [G]` (terminal ones
    are skipped). A root kept from the last move brings its children's visits along, which count; its
    network prior goes to root_prior [B, A]. The kept roots are listed in out_kept [G]; their count."""
    terminal_value, prior, node_visits, children_visits = links[1], links[3], links[4], links[9]
    kept = 0
    for i in range(games.shape[0]):
        b = games[i]
        if not np.isnan(terminal_value[b, ROOT]):
            continue
        searching[b] = True
        have = 0
        for a in range(children_visits.shape[2]):
            have += children_visits[b, ROOT, a]
        remaining[b] = max(budget[b] - have, 0)
        if node_visits[b, ROOT] > 0:
            root_prior[b] = prior[b, ROOT]
            out_kept[kept] = b
            kept += 1
    return kept


@numba.njit(cache=True)
def mix_noise(links, games: np.ndarray, gamma: np.ndarray, fraction: float) -> None:
    """Root priors of `games  # [G]` become (1 - fraction) * prior + fraction * Dirichlet noise, the noise
    being `gamma  # [G, A]` (Gamma(alpha) draws) normalized over the legal actions."""
    legal, prior = links[2], links[3]
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

"""The steps of a simulation that PUCT and Gumbel search share, as numba loops over the games of a
`Tree`: attach (expand), evaluated, backup, reroot, start. Selection is each variant's own
(`azjobs.search.puct`, `azjobs.search.gumbel`).

A step is handed the tree's arrays as `Tree.for_steps` gives them (`arrays`), names them with
`Tree(*arrays)` and takes the fields it uses into locals first (numba reads a NamedTuple's field
inside a loop several times slower than a local). It touches game states only to move a kept
subtree: game logic runs batched through the game kernel between the steps, so every game gets
these loops and none needs code of its own here. Shapes: B games, N nodes per tree, A actions, G
the games a step works on.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from azjobs.search.tree import NO_ACTION, NO_PARENT, ROOT, UNVISITED, Tree


@numba.njit(cache=True, inline="always")
def backup(tree: Tree, b: int, node: int, value: float) -> None:
    """Add a leaf's value (for its player to move) to every node on its path to the root.

    The sign flips only where the player to move changes: a game with passes may give the same
    player two moves in a row.
    """
    to_play, node_visits, node_value_sum = tree.to_play, tree.node_visits, tree.node_value_sum
    parent, action_from_parent, children_visits = tree.parent, tree.action_from_parent, tree.children_visits
    children_value_sum = tree.children_value_sum
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
def attach(
    arrays: tuple,
    games: np.ndarray,
    parents: np.ndarray,
    actions: np.ndarray,
    to_play_new: np.ndarray,
    terminal_new: np.ndarray,
    legal_new: np.ndarray,
    out_nodes: np.ndarray,
) -> None:
    """Create one node per game: the child of edge (parent, action), or with parent NO_PARENT a new
    root (the game's tree starts afresh). A child that is terminal is backed up at once.

    games, parents, actions [G]; to_play_new [G] int8, terminal_new [G] float32, legal_new [G, A]
    bool describe the new nodes; out_nodes [G] receives their indices. Game states are the caller's.
    """
    tree = Tree(*arrays)
    to_play, terminal_value, legal, prior = tree.to_play, tree.terminal_value, tree.legal, tree.prior
    node_visits, node_value_sum, parent = tree.node_visits, tree.node_value_sum, tree.parent
    action_from_parent, children_index = tree.action_from_parent, tree.children_index
    children_visits, children_value_sum = tree.children_visits, tree.children_value_sum
    num_nodes, raw_value = tree.num_nodes, tree.raw_value
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
            backup(tree, b, node, terminal_new[i])


@numba.njit(cache=True)
def evaluated(arrays: tuple, games: np.ndarray, nodes: np.ndarray, logits: np.ndarray, values: np.ndarray) -> None:
    """Take the network's answer for leaves (games, nodes)  # [G]: priors are the softmax of the
    logits  # [G, A] over the legal actions (0 elsewhere), and each value  # [G] is backed up."""
    tree = Tree(*arrays)
    legal, prior, raw_value = tree.legal, tree.prior, tree.raw_value
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
        backup(tree, b, node, values[i])


@numba.njit(cache=True)
def reroot(
    arrays: tuple,
    games: np.ndarray,
    actions: np.ndarray,
    in_subtree: np.ndarray,
    new_index: np.ndarray,
    out_kept: np.ndarray,
) -> None:
    """Make the child of each game's root along `actions  # [G]` the new root, keeping its subtree.

    The subtree moves to the front of the game's rows, its nodes in their old order (a child is
    always created after its parent, so it keeps a higher index than its parent, and each node
    moves down or stays: the copy can be done in place); the rest is dropped. out_kept [G] is False
    where that child was never created: the caller starts that game's tree afresh. in_subtree [N]
    bool and new_index [N] int32 are scratch.
    """
    tree = Tree(*arrays)
    children_index, num_nodes = tree.children_index, tree.num_nodes
    for i in range(games.shape[0]):
        b = games[i]
        top = children_index[b, ROOT, actions[i]]
        out_kept[i] = top != UNVISITED
        if top == UNVISITED:
            continue
        end = num_nodes[b]
        kept = _mark_subtree(children_index, b, top, end, in_subtree, new_index)
        _move_subtree(tree, b, top, end, in_subtree, new_index)
        num_nodes[b] = kept


@numba.njit(cache=True, inline="always")
def _mark_subtree(
    children_index: np.ndarray, b: int, top: int, end: int, in_subtree: np.ndarray, new_index: np.ndarray
) -> int:
    """Mark in in_subtree [N] the nodes of game b's subtree under `top` (all below `end`), number
    them in order from 0 in new_index [N]; their count."""
    in_subtree[top:end] = False
    in_subtree[top] = True
    kept = 0
    for old in range(top, end):  # one ascending pass: parents come before their children
        if not in_subtree[old]:
            continue
        for a in range(children_index.shape[2]):
            child = children_index[b, old, a]
            if child != UNVISITED:
                in_subtree[child] = True
        new_index[old] = kept
        kept += 1
    return kept


@numba.njit(cache=True, inline="always")
def _move_subtree(tree: Tree, b: int, top: int, end: int, in_subtree: np.ndarray, new_index: np.ndarray) -> None:
    """Copy each node `_mark_subtree` marked to its new index, `top` becoming the root; in place,
    as no node moves up."""
    state, to_play, terminal_value, legal = tree.state, tree.to_play, tree.terminal_value, tree.legal
    prior, node_visits, node_value_sum = tree.prior, tree.node_visits, tree.node_value_sum
    parent, action_from_parent, children_index = tree.parent, tree.action_from_parent, tree.children_index
    children_visits, children_value_sum, raw_value = tree.children_visits, tree.children_value_sum, tree.raw_value
    for old in range(top, end):
        if not in_subtree[old]:
            continue
        new = new_index[old]
        state[b, new] = state[b, old]
        to_play[b, new] = to_play[b, old]
        terminal_value[b, new] = terminal_value[b, old]
        legal[b, new] = legal[b, old]
        prior[b, new] = prior[b, old]
        node_visits[b, new] = node_visits[b, old]
        node_value_sum[b, new] = node_value_sum[b, old]
        raw_value[b, new] = raw_value[b, old]
        parent[b, new] = NO_PARENT if new == ROOT else new_index[parent[b, old]]
        action_from_parent[b, new] = NO_ACTION if new == ROOT else action_from_parent[b, old]
        for a in range(children_index.shape[2]):
            child = children_index[b, old, a]
            children_index[b, new, a] = UNVISITED if child == UNVISITED else new_index[child]
            children_visits[b, new, a] = children_visits[b, old, a]
            children_value_sum[b, new, a] = children_value_sum[b, old, a]


@numba.njit(cache=True)
def start(
    arrays: tuple,
    games: np.ndarray,
    budget: np.ndarray,
    remaining: np.ndarray,
    searching: np.ndarray,
    root_prior: np.ndarray,
    out_kept: np.ndarray,
) -> int:
    """Begin a search of `budget[b]` root visits  # [B] at the roots of `games  # [G]` (terminal ones
    are skipped). A root kept from the last move brings its children's visits along, which count; its
    network prior goes to root_prior [B, A]. The kept roots are listed in out_kept [G]; their count."""
    tree = Tree(*arrays)
    terminal_value, prior, node_visits = tree.terminal_value, tree.prior, tree.node_visits
    children_visits = tree.children_visits
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

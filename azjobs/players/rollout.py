"""Pure Monte Carlo tree search: UCT with one random playout per simulation, many games at once.

No network and no game knowledge: the classic baseline between one-ply and a trained agent.
The trees of all B games are arrays `[B, N, ...]` (N = simulations + 1), as in `azjobs.search`;
every simulation selects one leaf per game with UCB1, expands it, plays all the new leaves out
to the end at random together, and backs the results up. The side to move is read from
`game.to_play` at every node, so games with passes (a player moving twice) are handled.
"""

from __future__ import annotations

import numpy as np

from azjobs.games.base import Game
from azjobs.players.baselines import random_legal

UNEXPANDED = -1  # children_index of an edge whose child does not exist yet
EXPLORATION = 1.4  # UCB1's constant for results in [-1, 1]


def random_playouts(game: Game, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The result of one uniformly random game from each state, for its player to move.  # [K, S] -> [K]"""
    movers = game.to_play(states)
    current = states.copy()
    results = np.zeros(len(states), np.float32)
    live = np.arange(len(states))
    while len(live):
        terminal = game.terminal_value(current[live])
        done = ~np.isnan(terminal)
        finished = live[done]
        same = game.to_play(current[finished]) == movers[finished]
        results[finished] = np.where(same, terminal[done], -terminal[done])
        live = live[~done]
        if len(live):
            current[live] = game.play(current[live], random_legal(game.legal_mask(current[live]), rng))
    return results


class RolloutMCTSPlayer:
    """UCT with `simulations` random playouts per move; plays the most visited move."""

    def __init__(self, game: Game, simulations: int, exploration: float = EXPLORATION) -> None:
        if simulations < 1:
            raise ValueError(f"MCTS needs at least 1 simulation, got {simulations}")
        self.game, self.simulations, self.exploration = game, simulations, exploration
        self.name = f"mcts:{simulations}"

    def choose(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        tree = _Tree(self.game, states, self.simulations + 1)
        for _ in range(self.simulations):
            parents, actions = tree.select(self.exploration, rng)
            leaves = tree.expand(parents, actions)
            values = random_playouts(self.game, tree.state[tree.games, leaves], rng)
            tree.backup(leaves, values)
        root_visits = tree.children_visits[:, 0] + 0.5 * rng.random(tree.legal[:, 0].shape)  # random tie-breaks
        return np.where(tree.legal[:, 0], root_visits, -1).argmax(axis=1)


class _Tree:
    """The UCT trees of B games. `children_value_sum` is seen by the player choosing at the parent."""

    def __init__(self, game: Game, states: np.ndarray, nodes: int) -> None:
        b, a = len(states), game.num_actions
        self.game = game
        self.games = np.arange(b)
        self.state = np.zeros((b, nodes, game.state_size), np.int8)  # [B, N, S]
        self.to_play = np.zeros((b, nodes), np.int8)  # [B, N]
        self.terminal = np.full((b, nodes), np.nan, np.float32)  # [B, N]
        self.legal = np.zeros((b, nodes, a), bool)  # [B, N, A]
        self.parent = np.full((b, nodes), -1, np.int32)  # [B, N]
        self.action = np.full((b, nodes), -1, np.int32)  # [B, N] action from the parent
        self.children_index = np.full((b, nodes, a), UNEXPANDED, np.int32)  # [B, N, A]
        self.children_visits = np.zeros((b, nodes, a), np.int32)  # [B, N, A]
        self.children_value_sum = np.zeros((b, nodes, a), np.float32)  # [B, N, A]
        self.num_nodes = np.ones(b, np.int32)  # [B]
        self._set(self.games, np.zeros(b, np.int32), states)

    def _set(self, games: np.ndarray, nodes: np.ndarray, states: np.ndarray) -> None:
        self.state[games, nodes] = states
        self.to_play[games, nodes] = self.game.to_play(states)
        self.terminal[games, nodes] = self.game.terminal_value(states)
        self.legal[games, nodes] = self.game.legal_mask(states)

    def select(self, c: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Descend by UCB1 (untried moves first, at random) to an edge without a child, or to a
        terminal node (its action is then -1). The edge (parent, action) of every game."""
        b = len(self.games)
        nodes = np.zeros(b, np.int32)
        actions = np.full(b, -1, np.int32)
        rows = self.games.copy()  # games still descending
        while len(rows):
            n = nodes[rows]
            rows_live = np.isnan(self.terminal[rows, n])
            rows, n = rows[rows_live], n[rows_live]
            if not len(rows):
                break
            visits = self.children_visits[rows, n]  # [K, A]
            total = np.maximum(visits.sum(axis=1, keepdims=True), 1)
            mean = self.children_value_sum[rows, n] / np.maximum(visits, 1)
            ucb = mean + c * np.sqrt(np.log(total) / np.maximum(visits, 1))
            ucb = np.where(visits == 0, 1e9 + rng.random(visits.shape), ucb)  # untried moves first
            a = np.where(self.legal[rows, n], ucb, -np.inf).argmax(axis=1).astype(np.int32)
            actions[rows] = a
            child = self.children_index[rows, n, a]
            deeper = child != UNEXPANDED
            nodes[rows[deeper]] = child[deeper]
            rows = rows[deeper]
        # Games that stopped on a terminal node have action -1 for it; reset theirs.
        at_terminal = ~np.isnan(self.terminal[self.games, nodes])
        actions[at_terminal] = -1
        return nodes, actions

    def expand(self, parents: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Create the child of each new edge; the leaf of every game (a terminal node is its own leaf)."""
        leaves = parents.copy()
        new = actions >= 0
        g, p, a = self.games[new], parents[new], actions[new]
        nodes = self.num_nodes[g]
        self.num_nodes[g] += 1
        self._set(g, nodes, self.game.play(self.state[g, p], a))
        self.parent[g, nodes], self.action[g, nodes] = p, a
        self.children_index[g, p, a] = nodes
        leaves[new] = nodes
        return leaves

    def backup(self, leaves: np.ndarray, values: np.ndarray) -> None:
        """Add each leaf's result (for its player to move) to every edge on its path to the root."""
        games, nodes, values = self.games, leaves, values.astype(np.float32)
        while len(games):
            parents = self.parent[games, nodes]
            up = parents >= 0
            games, nodes, parents, values = games[up], nodes[up], parents[up], values[up]
            same = self.to_play[games, parents] == self.to_play[games, nodes]
            values = np.where(same, values, -values)  # now seen by the player choosing at the parent
            actions = self.action[games, nodes]
            self.children_visits[games, parents, actions] += 1
            self.children_value_sum[games, parents, actions] += values
            nodes = parents

"""Monte Carlo tree search over many games at once, the trees held as arrays (the mctx way).

The trees of all B games are one struct of preallocated arrays (`Tree`); the simulation steps
(select, attach, evaluated/backup, reroot) are numba loops over those arrays (`azjobs.search.steps`)
and the game logic between them runs batched through the game's kernel (bitboards for Connect Four,
the game's numpy methods for any other game). Each step gives every searching game one leaf; all
the leaves of a step go to ONE call of the evaluation function. Search never calls a network:
`search` is handed an `Evaluate`, and the step form (`new_search`, `pending_planes` or
`write_pending`, `apply`) lets a caller evaluate elsewhere, e.g. through Redis. After a move,
`play` keeps the chosen child's subtree as the next root's tree (`SearchConfig.reuse_tree`).

What PUCT (`azjobs.search.puct`) and Gumbel search (`azjobs.search.gumbel`) do differently, a
`Search` leaves to its `Rule`: selection, root noise, the policy target and the move.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from azjobs.games.base import Game
from azjobs.search import steps
from azjobs.search.config import SearchConfig
from azjobs.search.gumbel import GumbelRule, gumbel_choice
from azjobs.search.puct import PuctRule
from azjobs.search.tree import NO_ACTION, NO_PARENT, ROOT, UNVISITED, Tree

# planes [K, C, H, W] uint8 -> (policy logits [K, A] float32, values [K] float32 in [-1, 1]
# for the player to move in each position).
Evaluate = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

NO_LEAF = -1  # pending_node of a game that waits for no evaluation

__all__ = [
    "NO_ACTION",
    "NO_PARENT",
    "ROOT",
    "UNVISITED",
    "Evaluate",
    "Rule",
    "Search",
    "SearchConfig",
    "SearchResult",
    "Tree",
    "best_actions",
    "new_search",
    "rule_for",
    "search",
]


class Rule(Protocol):
    """What one kind of search does its own way (`PuctRule`, `GumbelRule`), bound to one `Search`'s
    tree. A `Search` calls its rule at these points and nowhere asks which kind it is. `games` and
    `roots` [G] are rows of the tree."""

    reuses_tree: bool  # `play` keeps the chosen child's subtree as the next search's tree

    def started(self, games: np.ndarray, kept: np.ndarray) -> None:
        """Searches began at the roots of `games`; those in `kept` kept their root from the last move."""

    def roots_evaluated(self, roots: np.ndarray) -> None:
        """The network's priors arrived at these roots."""

    def select(self, games: np.ndarray, remaining: np.ndarray, out_parent: np.ndarray, out_action: np.ndarray) -> None:
        """Simulate each game until it reaches an edge without a child (`azjobs.search.puct.select`)."""

    def improved_logits(self, games: np.ndarray) -> np.ndarray | None:
        """The improved policy's logits at the finished roots of `games`, if the rule has one.  # [G, A]"""

    def policy_targets(self, games: np.ndarray) -> np.ndarray:
        """What the policy head should learn from the finished roots of `games`.  # [G, A] float32"""

    def choose(self, games: np.ndarray, explore: np.ndarray) -> np.ndarray:
        """Self-play's moves at the finished roots of `games`, drawn at random where `explore  # [G]`
        asks for it (a rule may always draw them).  # [G]"""


def rule_for(config: SearchConfig) -> type[PuctRule | GumbelRule]:
    """The kind of search `config` asks for: Gumbel search with `gumbel`, else PUCT."""
    return GumbelRule if config.gumbel else PuctRule


@dataclass(frozen=True)
class SearchResult:
    """What a search says about each root. A terminal root has no visits and no prior."""

    visits: np.ndarray  # [B, A] int32, visits of each root child (they sum to num_simulations)
    root_value: np.ndarray  # [B] float32, mean backed-up value for the player to move
    prior: np.ndarray  # [B, A] float32, the network's prior at the root (before noise)
    improved_logits: np.ndarray | None = None  # [B, A] float32, Gumbel's logits + sigma(completed Q); -inf illegal


class Search:
    """The searches of B games, driven step by step: while not `done`, evaluate `pending_planes()`
    (or have `write_pending` encode them into a buffer of yours) and hand the answer to `apply`.

    Each game goes at its own pace: a game whose root has not been evaluated waits for that; one
    whose search is running gives one leaf per step; one whose search is finished (`finished()`)
    or whose root is terminal gives none. `play` moves roots on and starts the next searches.

    `add_noise` is self-play's exploration: Dirichlet noise in the root priors of full searches
    (and their forced playouts), or with Gumbel the Gumbel noise that makes the move a sample.
    `full  # [B] bool` says which games' next search is a full one (default all; the others get
    `config.cheap_budget` simulations); `play` and `reset` take it for the searches they start.
    """

    def __init__(
        self,
        game: Game,
        states: np.ndarray,
        config: SearchConfig,
        rng: np.random.Generator,
        *,
        add_noise: bool,
        full: np.ndarray | None = None,
    ) -> None:
        batch = len(states)  # states [B, S]
        self.game, self.config, self.rng, self.add_noise = game, config, rng, add_noise
        self.kernel = k = game.kernel()
        self.tree = Tree.empty(batch, config.num_simulations + 1, game.num_actions, k.width, k.dtype)
        self._arrays = self.tree.for_steps()  # as the numba steps take the tree
        self.remaining = np.zeros(batch, np.int32)  # [B] simulations left in each game's search
        self.simulations = 0  # simulations started in all (each runs to its leaf: a benchmark's count)
        self.searching = np.zeros(batch, bool)  # [B] a search is running or waits for its root
        self.pending_node = np.full(batch, NO_LEAF, np.int32)  # [B] the leaf waiting for the network
        self._pending_games = np.zeros(0, np.intp)
        self._root_prior = np.zeros((batch, game.num_actions), np.float32)  # [B, A] before noise
        self._in_subtree = np.zeros(self.tree.capacity, bool)  # reroot's scratch
        self._new_index = np.zeros(self.tree.capacity, np.int32)
        self.full = np.ones(batch, bool)  # [B] the game's search is a full one (the rule reads it too)
        self._budget = np.full(batch, config.num_simulations, np.int32)  # [B] simulations of each game's search
        self._mixed = False  # some search has been a cheap one: `full` must be looked at
        self._set_full(np.arange(batch), full)
        self.rule: Rule = rule_for(config)(config, self.tree, self.full, rng, add_noise=add_noise)
        everyone = np.arange(batch)
        self._new_roots(everyone, k.from_states(states))
        self.start(everyone)
        self.advance()

    # What a caller sees.

    @property
    def done(self) -> bool:
        """No leaf waits for the network: every search is finished (or its root is terminal)."""
        return len(self._pending_games) == 0

    @property
    def pending_count(self) -> int:
        return len(self._pending_games)

    def pending_planes(self) -> np.ndarray:
        """The leaves waiting for an evaluation, in game order.  # [K, C, H, W] uint8"""
        out = np.empty((self.pending_count, *self.kernel.planes_shape), np.uint8)
        return self.write_pending(out)

    def write_pending(self, out: np.ndarray) -> np.ndarray:
        """Encode the pending leaves straight into `out[:K]` (e.g. an outgoing message); that view."""
        games = self._pending_games
        view = out[: len(games)]
        return self.kernel.encode(self.tree.state[games, self.pending_node[games]], view)

    def apply(self, logits: np.ndarray, values: np.ndarray) -> None:
        """Take the evaluation of the pending leaves, back it up, and run to the next leaves."""
        self.take_evaluation(logits, values)
        self.advance()

    def finished(self) -> np.ndarray:
        """Games whose search is complete: root evaluated, no simulation left, no leaf pending.  # [B] bool"""
        t = self.tree
        return self.searching & (t.node_visits[:, ROOT] > 0) & (self.remaining == 0) & (self.pending_node == NO_LEAF)

    def result(self, games: np.ndarray | None = None) -> SearchResult:
        """The roots of `games` (default all; every one of them finished or terminal)."""
        games = np.arange(len(self.remaining)) if games is None else np.asarray(games)
        if (self.pending_node[games] != NO_LEAF).any() or (self.remaining[games] > 0).any():
            raise RuntimeError("result() called before the search finished")
        t = self.tree
        visits = t.node_visits[games, ROOT]
        mean = t.node_value_sum[games, ROOT] / np.maximum(visits, 1)
        return SearchResult(
            visits=t.children_visits[games, ROOT].copy(),
            root_value=np.where(visits > 0, mean, t.terminal_value[games, ROOT]).astype(np.float32),
            prior=self._root_prior[games].copy(),
            improved_logits=self.rule.improved_logits(games),
        )

    def root_priors(self, games: np.ndarray) -> np.ndarray:
        """The network's priors at the roots of `games`, before noise (0 where not evaluated).  # [G, A]"""
        return self._root_prior[games]

    def policy_targets(self, games: np.ndarray) -> np.ndarray:
        """What the policy head should learn from the finished searches of `games`: the visit shares;
        with Gumbel the improved policy pi'; with forced playouts the visits less the forced ones
        (KataGo's policy target pruning).  # [G, A] float32, rows sum to 1"""
        return self.rule.policy_targets(np.asarray(games, np.intp))

    def choose(self, games: np.ndarray, explore: np.ndarray) -> np.ndarray:
        """Self-play's moves at the finished roots of `games`: with PUCT drawn in proportion to the
        visits where `explore  # [G] bool`, else the most visited; with Gumbel the move its noise
        samples.  # [G]"""
        return self.rule.choose(np.asarray(games, np.intp), explore)

    # Moving on.

    def play(self, games: np.ndarray, actions: np.ndarray, full: np.ndarray | None = None) -> None:
        """Play `actions  # [G]` at the roots of `games  # [G]` and start their next searches
        (`advance` finds their first leaves), full ones where `full  # [G] bool` (default all).

        Where the rule reuses trees (PUCT with `reuse_tree`) the chosen child's subtree (its visits,
        values, priors) becomes the new tree; otherwise, or where that child was never created, the
        tree starts afresh.
        """
        games = np.asarray(games, np.intp)
        actions = np.asarray(actions, np.int32)
        self._set_full(games, full)
        kept = np.zeros(len(games), bool)
        if self.rule.reuses_tree:
            steps.reroot(self._arrays, games, actions, self._in_subtree, self._new_index, kept)
        if not kept.all():  # reroot left these roots alone
            fresh = ~kept
            old_roots = self.tree.state[games[fresh], ROOT]
            self._new_roots(games[fresh], self.kernel.play(old_roots, actions[fresh]))
        self.start(games)

    def start(self, games: np.ndarray) -> None:
        """Begin a search at the roots of `games` (those not terminal); `advance` finds their first leaves."""
        kept = np.empty(len(games), np.intp)
        games = np.asarray(games, np.intp)
        count = steps.start(self._arrays, games, self._budget, self.remaining, self.searching, self._root_prior, kept)
        self.simulations += int(self.remaining[games].sum())
        self.rule.started(games, kept[:count])

    def _set_full(self, games: np.ndarray, full: np.ndarray | None) -> None:
        """The next searches of `games` are full ones where `full  # [G] bool` (None: all of them)."""
        if full is None:
            if self._mixed:
                self.full[games] = True
                self._budget[games] = self.config.num_simulations
            return
        full = np.asarray(full, bool)
        self.full[games] = full
        self._budget[games] = np.where(full, self.config.num_simulations, self.config.cheap_budget)
        self._mixed = True

    def stop(self, games: np.ndarray) -> None:
        """Forget the searches of `games` (their games are over, or their slots are being reused)."""
        self.searching[games] = False
        self.remaining[games] = 0
        self.pending_node[games] = NO_LEAF
        self._pending_games = np.flatnonzero(self.pending_node != NO_LEAF)

    def reset(self, games: np.ndarray, states: np.ndarray, full: np.ndarray | None = None) -> None:
        """Give `games` new roots `states  # [G, S]` (fresh trees) and start their searches (see `play`)."""
        self._set_full(games, full)
        self.stop(games)
        self._new_roots(games, self.kernel.from_states(states))
        self.start(games)

    # The steps of a simulation.

    def advance(self) -> None:
        """Give each searching game without a pending leaf its next leaf for the network: its root
        if not evaluated yet, else the leaf of its next simulation that is not terminal."""
        t = self.tree
        games = np.flatnonzero(self.searching & (self.pending_node == NO_LEAF))
        unevaluated = t.node_visits[games, ROOT] == 0
        self.pending_node[games[unevaluated]] = ROOT
        todo = games[~unevaluated & (self.remaining[games] > 0)]
        while len(todo):
            parents, actions = self._select(todo)
            new = parents != NO_PARENT
            todo, nodes, terminal = self._expand(todo[new], parents[new], actions[new])
            self.pending_node[todo[~terminal]] = nodes[~terminal]
            todo = todo[terminal]  # a terminal leaf is backed up already: simulate again
            todo = todo[self.remaining[todo] > 0]
        self._pending_games = np.flatnonzero(self.pending_node != NO_LEAF)

    def _select(self, games: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The edge (parent, action) without a child that each game's next simulation reaches."""
        parents = np.empty(len(games), np.int32)
        actions = np.empty(len(games), np.int32)
        self.rule.select(games, self.remaining, parents, actions)
        return parents, actions

    def _expand(
        self, games: np.ndarray, parents: np.ndarray, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Create the children of the edges: (games, new nodes, which of them are terminal)."""
        nodes = self.tree.num_nodes[games]  # where attach puts them (each game appears once)
        to_play, terminal_value, legal = self.kernel.expand(self.tree.state, games, parents, actions, nodes)
        steps.attach(self._arrays, games, parents, actions, to_play, terminal_value, legal, nodes)
        return games, nodes, ~np.isnan(terminal_value)

    def _new_roots(self, games: np.ndarray, kstates: np.ndarray) -> None:
        """Fresh trees for `games` with roots `kstates  # [G, W]`."""
        if len(games) == 0:
            return
        to_play, terminal_value, legal = self.kernel.describe(kstates)
        none = np.full(len(games), NO_PARENT, np.int32)
        steps.attach(self._arrays, games, none, none, to_play, terminal_value, legal, np.empty(len(games), np.int32))
        self.tree.state[games, ROOT] = kstates
        self._root_prior[games] = 0

    def take_evaluation(self, logits: np.ndarray, values: np.ndarray) -> None:
        """Priors and values for the pending leaves (in game order); each value is backed up."""
        games = self._pending_games
        k = len(games)
        if k == 0:
            raise RuntimeError("apply() called with no leaf waiting for an evaluation")
        logits = np.asarray(logits, np.float32)  # [K, A]
        values = np.asarray(values, np.float32)  # [K]
        if logits.shape != (k, self.game.num_actions) or values.shape != (k,):
            raise ValueError(
                f"evaluation of {k} positions gave logits {logits.shape} and values {values.shape}, "
                f"expected ({k}, {self.game.num_actions}) and ({k},)"
            )
        t = self.tree
        nodes = self.pending_node[games]
        steps.evaluated(self._arrays, games, nodes, logits, values)
        roots = games[nodes == ROOT]
        if len(roots):
            self._root_prior[roots] = t.prior[roots, ROOT]
            self.rule.roots_evaluated(roots)
        self.pending_node[games] = NO_LEAF
        self._pending_games = games[:0]


def new_search(
    game: Game,
    states: np.ndarray,
    config: SearchConfig,
    rng: np.random.Generator,
    *,
    add_noise: bool,
    full: np.ndarray | None = None,
) -> Search:
    """A search of the games `states  # [B, S]` to drive step by step (see `Search`)."""
    return Search(game, states, config, rng, add_noise=add_noise, full=full)


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
    tree = new_search(game, states, config, rng, add_noise=add_noise)
    while not tree.done:
        tree.apply(*evaluate(tree.pending_planes()))
    return tree.result()


def best_actions(
    game: Game,
    states: np.ndarray,
    evaluate: Evaluate,
    num_simulations: int,
    *,
    config: SearchConfig = SearchConfig(),
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """The move to play in each of `states  # [B, S]`, without noise: the most visited root child,
    ties broken by the prior (so with 0 simulations: the legal action with the highest logit).
    NO_ACTION for a finished game.  # [B] int64"""
    config = dataclasses.replace(config, num_simulations=num_simulations)
    rng = np.random.default_rng(0) if rng is None else rng
    result = search(game, states, evaluate, config, rng, add_noise=False)
    return root_choice(game.legal_mask(states), result)


def root_choice(legal: np.ndarray, result: SearchResult) -> np.ndarray:
    """The most visited legal root child, ties broken by the prior (with Gumbel, by logits + sigma(Q));
    NO_ACTION where none is legal.  # [B]"""
    if result.improved_logits is not None:
        actions = gumbel_choice(np.where(legal, result.visits, -1), result.improved_logits)
        return np.where(legal.any(axis=1), actions, NO_ACTION)
    # A prior is below 1, so half of it never outweighs one visit.
    score = np.where(legal, result.visits + 0.5 * result.prior, -np.inf)
    actions = score.argmax(axis=1)
    return np.where(np.isfinite(score.max(axis=1)), actions, NO_ACTION)

"""PUCT Monte Carlo tree search over many games at once, the trees held as arrays (the mctx way).

The trees of all B games are one struct of preallocated arrays (`Tree`); the simulation steps
(select, attach, evaluated/backup, reroot) are numba loops over those arrays (`azjobs.search.steps`)
and the game logic between them runs batched through the game's kernel (bitboards for Connect Four,
the game's numpy methods for any other game). Each step gives every searching game one leaf; all
the leaves of a step go to ONE call of the evaluation function. Search never calls a network:
`search` is handed an `Evaluate`, and the step form (`new_search`, `pending_planes` or
`write_pending`, `apply`) lets a caller evaluate elsewhere, e.g. through Redis. After a move,
`play` keeps the chosen child's subtree as the next root's tree (`SearchConfig.reuse_tree`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from azjobs.games.base import Game
from azjobs.search import gumbel, steps
from azjobs.search.tree import NO_ACTION, NO_PARENT, ROOT, UNVISITED, Tree

if TYPE_CHECKING:
    from azjobs.settings import Settings

# planes [K, C, H, W] uint8 -> (policy logits [K, A] float32, values [K] float32 in [-1, 1]
# for the player to move in each position).
Evaluate = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

NO_LEAF = -1  # pending_node of a game that waits for no evaluation

__all__ = ["NO_ACTION", "NO_PARENT", "ROOT", "UNVISITED", "Evaluate", "Search", "SearchConfig", "SearchResult",
           "Tree", "best_actions", "new_search", "search"]


@dataclass(frozen=True)
class SearchConfig:
    """The search knobs, with AlphaZero's published defaults; the others off (docs/search.md says
    what each does, docs/strength.md what it bought).

    `num_simulations` is the visits a search gives the root's children in all: with `reuse_tree`,
    the visits the kept subtree brings along count toward it, so a move needs fewer new evaluations.
    `gumbel` replaces PUCT by Gumbel search (sequential halving over `gumbel_considered` root actions,
    then pi'-tracking below; sigma's c_visit and c_scale); it starts every search afresh. Self-play
    gives a move a full search with probability `full_search_prob`, else `cheap_simulations` (0: a
    quarter of num_simulations) without noise (KataGo's playout cap randomization). `fpu_reduction`
    (`fpu_reduction_root` at the root) lowers an unvisited child's Q by that times the square root of
    the visited children's priors. `forced_playouts` is KataGo's k: root children with noise get at
    least sqrt(k * P * N) visits, and the policy target is pruned of them.
    """

    num_simulations: int = 100
    c_puct: float = 1.5
    dirichlet_alpha: float = 1.0
    dirichlet_fraction: float = 0.25
    reuse_tree: bool = True
    gumbel: bool = False
    gumbel_considered: int = 16  # mctx's max_num_considered_actions
    gumbel_c_visit: float = 50.0
    gumbel_c_scale: float = 1.0
    full_search_prob: float = 1.0
    cheap_simulations: int = 0
    fpu_reduction: float = 0.0
    fpu_reduction_root: float = 0.0
    forced_playouts: float = 0.0

    def __post_init__(self) -> None:
        if self.gumbel_considered < 1 or not 0 <= self.full_search_prob <= 1 or self.cheap_simulations < 0:
            raise ValueError(f"bad search config {self}: gumbel_considered >= 1, full_search_prob in [0, 1] "
                             "and cheap_simulations >= 0 are needed")

    @property
    def cheap_budget(self) -> int:
        """Simulations of a cheap search (playout cap randomization): never more than a full one."""
        return min(self.cheap_simulations or max(1, self.num_simulations // 4), self.num_simulations)

    @classmethod
    def from_settings(cls, settings: Settings) -> SearchConfig:
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)})


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

    def __init__(self, game: Game, states: np.ndarray, config: SearchConfig, rng: np.random.Generator,
                 *, add_noise: bool, full: np.ndarray | None = None) -> None:
        batch = len(states)  # states [B, S]
        self.game, self.config, self.rng, self.add_noise = game, config, rng, add_noise
        self.kernel = game.kernel()
        k = self.kernel
        self.tree = Tree.empty(batch, config.num_simulations + 1, game.num_actions, k.width, k.dtype)
        self._links = self.tree.links()
        self._state_bytes = self.tree.state.view(np.uint8)  # [B, N, W * itemsize], for reroot
        self.remaining = np.zeros(batch, np.int32)  # [B] simulations left in each game's search
        self.simulations = 0  # simulations started in all (each runs to its leaf: a benchmark's count)
        self.searching = np.zeros(batch, bool)  # [B] a search is running or waits for its root
        self.pending_node = np.full(batch, NO_LEAF, np.int32)  # [B] the leaf waiting for the network
        self._pending_games = np.zeros(0, np.intp)
        self._root_prior = np.zeros((batch, game.num_actions), np.float32)  # [B, A] before noise
        self._in_subtree = np.zeros(self.tree.capacity, bool)  # reroot's scratch
        self._new_index = np.zeros(self.tree.capacity, np.int32)
        self.full = np.ones(batch, bool)  # [B] the game's search is a full one
        self._budget = np.full(batch, config.num_simulations, np.int32)  # [B] simulations of each game's search
        self._mixed = False  # some search has been a cheap one: `full` must be looked at
        self._set_full(np.arange(batch), full)
        self.gumbel_noise = np.zeros((batch, game.num_actions), np.float32)  # [B, A], 0 without add_noise
        self._forced = self.full if add_noise else np.zeros(batch, bool)  # [B] forced playouts: full, noisy searches
        c = config
        if c.gumbel:  # schedules of the cheap and the full budget, indexed by `full`
            self._tables = gumbel.halving_table(c.gumbel_considered, [c.cheap_budget, c.num_simulations])
            self._knobs: tuple[float, ...] = (float(c.gumbel_c_visit), float(c.gumbel_c_scale))
        else:
            self._knobs = (float(c.c_puct), float(c.fpu_reduction_root), float(c.fpu_reduction), float(c.forced_playouts))
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
        return (self.searching & (t.node_visits[:, ROOT] > 0) & (self.remaining == 0)
                & (self.pending_node == NO_LEAF))

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
            improved_logits=self.improved_logits(games) if self.config.gumbel else None,
        )

    def improved_logits(self, games: np.ndarray) -> np.ndarray:
        """Gumbel's logits + sigma(completed Q) at the roots of `games` (searched ones); -inf where
        illegal. Their softmax is the improved policy pi'.  # [G, A] float32"""
        c = self.config
        out = np.empty((len(games), self.game.num_actions), np.float64)
        gumbel.improved_logits(self._links, np.asarray(games, np.intp), float(c.gumbel_c_visit),
                               float(c.gumbel_c_scale), out)
        return out.astype(np.float32)

    def policy_targets(self, games: np.ndarray) -> np.ndarray:
        """What the policy head should learn from the finished searches of `games`: the visit shares;
        with Gumbel the improved policy pi'; with forced playouts the visits less the forced ones
        (KataGo's policy target pruning).  # [G, A] float32, rows sum to 1"""
        games = np.asarray(games, np.intp)
        t, c = self.tree, self.config
        if c.gumbel:
            return softmax(self.improved_logits(games))
        visits = t.children_visits[games, ROOT]  # [G, A]
        if c.forced_playouts > 0 and self.add_noise:
            visits = visits.astype(np.float64)
            forced = self.full[games]
            q = t.children_value_sum[games, ROOT] / np.maximum(visits, 1)
            pruned = prune_forced(visits[forced], q[forced], t.prior[games[forced], ROOT],
                                  t.node_visits[games[forced], ROOT], c.c_puct, c.forced_playouts)
            visits[forced] = pruned
        return (visits / visits.sum(axis=1, keepdims=True)).astype(np.float32)

    def gumbel_actions(self, games: np.ndarray) -> np.ndarray:
        """Gumbel's move at the finished roots of `games`: of the most visited actions, the one with the
        highest gumbel noise + logits + sigma(completed Q) (no noise: the best by the search).  # [G]"""
        games = np.asarray(games, np.intp)
        visits = self.tree.children_visits[games, ROOT]
        return gumbel_choice(visits, self.improved_logits(games) + self.gumbel_noise[games])

    def root_states(self, games: np.ndarray | None = None) -> np.ndarray:
        """Kernel states of the roots.  # [G, W]"""
        games = slice(None) if games is None else games
        return self.tree.state[games, ROOT]

    # Moving on.

    def play(self, games: np.ndarray, actions: np.ndarray, full: np.ndarray | None = None) -> None:
        """Play `actions  # [G]` at the roots of `games  # [G]` and start their next searches
        (`advance` finds their first leaves), full ones where `full  # [G] bool` (default all).

        With `reuse_tree` the chosen child's subtree (its visits, values, priors) becomes the new
        tree; otherwise, or where that child was never created, the tree starts afresh. Gumbel
        search always starts afresh: sequential halving's schedule counts from a root without visits.
        """
        games = np.asarray(games, np.intp)
        actions = np.asarray(actions, np.int32)
        self._set_full(games, full)
        kept = np.zeros(len(games), bool)
        if self.config.reuse_tree and not self.config.gumbel:
            steps.reroot(self._links, self._state_bytes, games, actions, self._in_subtree, self._new_index, kept)
        if not kept.all():  # reroot left these roots alone
            fresh = ~kept
            old_roots = self.tree.state[games[fresh], ROOT]
            self._new_roots(games[fresh], self.kernel.play(old_roots, actions[fresh]))
        self.start(games)

    def start(self, games: np.ndarray) -> None:
        """Begin a search at the roots of `games` (those not terminal); `advance` finds their first leaves."""
        kept = np.empty(len(games), np.intp)
        games = np.asarray(games, np.intp)
        count = steps.start(self._links, games, self._budget, self.remaining, self.searching, self._root_prior, kept)
        self.simulations += int(self.remaining[games].sum())
        if self.config.gumbel:
            if self.add_noise and len(games):
                self.gumbel_noise[games] = self.rng.gumbel(size=(len(games), self.game.num_actions))
        # A kept root was evaluated as an inner node: its prior is the network's, the noise is new.
        elif self.add_noise and count:
            self._add_noise(self._full_ones(kept[:count]))

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

    def _full_ones(self, games: np.ndarray) -> np.ndarray:
        """Those of `games` whose search is a full one."""
        return games[self.full[games]] if self._mixed else games

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
        if self.config.gumbel:
            gumbel.select(self._links, games, self.remaining, self.gumbel_noise, self._tables, self.full.view(np.int8),
                          *self._knobs, parents, actions)
        else:
            steps.select(self._links, games, self.remaining, *self._knobs, self._forced, parents, actions)
        return parents, actions

    def _expand(self, games: np.ndarray, parents: np.ndarray,
                actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Create the children of the edges: (games, new nodes, which of them are terminal)."""
        nodes = self.tree.num_nodes[games]  # where attach puts them (each game appears once)
        to_play, terminal_value, legal = self.kernel.expand(self.tree.state, games, parents, actions, nodes)
        steps.attach(self._links, games, parents, actions, to_play, terminal_value, legal, nodes)
        return games, nodes, ~np.isnan(terminal_value)

    def _new_roots(self, games: np.ndarray, kstates: np.ndarray) -> None:
        """Fresh trees for `games` with roots `kstates  # [G, W]`."""
        if len(games) == 0:
            return
        to_play, terminal_value, legal = self.kernel.describe(kstates)
        none = np.full(len(games), NO_PARENT, np.int32)
        steps.attach(self._links, games, none, none, to_play, terminal_value, legal, np.empty(len(games), np.int32))
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
            raise ValueError(f"evaluation of {k} positions gave logits {logits.shape} and values {values.shape}, "
                             f"expected ({k}, {self.game.num_actions}) and ({k},)")
        t = self.tree
        nodes = self.pending_node[games]
        steps.evaluated(self._links, games, nodes, logits, values)
        roots = games[nodes == ROOT]
        if len(roots):
            self._root_prior[roots] = t.prior[roots, ROOT]
            if self.add_noise and not self.config.gumbel:
                self._add_noise(self._full_ones(roots))
        self.pending_node[games] = NO_LEAF
        self._pending_games = games[:0]

    def _add_noise(self, games: np.ndarray) -> None:
        """Mix Dirichlet noise over the legal actions into the root priors of `games`."""
        gamma = self.rng.gamma(self.config.dirichlet_alpha, size=(len(games), self.game.num_actions))
        steps.mix_noise(self._links, games, gamma, float(self.config.dirichlet_fraction))


def new_search(game: Game, states: np.ndarray, config: SearchConfig, rng: np.random.Generator,
               *, add_noise: bool, full: np.ndarray | None = None) -> Search:
    """A search of the games `states  # [B, S]` to drive step by step (see `Search`)."""
    return Search(game, states, config, rng, add_noise=add_noise, full=full)


def search(game: Game, states: np.ndarray, evaluate: Evaluate, config: SearchConfig,
           rng: np.random.Generator, *, add_noise: bool) -> SearchResult:
    """Search the games `states  # [B, S]`, calling `evaluate` once per simulation step."""
    tree = new_search(game, states, config, rng, add_noise=add_noise)
    while not tree.done:
        tree.apply(*evaluate(tree.pending_planes()))
    return tree.result()


def best_actions(game: Game, states: np.ndarray, evaluate: Evaluate, num_simulations: int, *,
                 config: SearchConfig = SearchConfig(), rng: np.random.Generator | None = None) -> np.ndarray:
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


def gumbel_choice(visits: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Of the most visited actions of each row, the one with the highest score.  # [G, A], [G, A] -> [G]"""
    most = visits == visits.max(axis=1, keepdims=True)
    return np.where(most, scores, -np.inf).argmax(axis=1)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax; -inf entries get 0.  # [G, A] -> [G, A] float32"""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def prune_forced(visits: np.ndarray, q: np.ndarray, prior: np.ndarray, root_visits: np.ndarray, c_puct: float,
                 k: float) -> np.ndarray:
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

"""The search's own knobs and self-play's, with AlphaZero's published defaults; the others off.

The search reads nothing else: a run's settings become these at the edge (`azjobs.jobs.configs`),
where a job, a player or a benchmark builds its search.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
            raise ValueError(
                f"bad search config {self}: gumbel_considered >= 1, full_search_prob in [0, 1] "
                "and cheap_simulations >= 0 are needed"
            )

    @property
    def cheap_budget(self) -> int:
        """Simulations of a cheap search (playout cap randomization): never more than a full one."""
        return min(self.cheap_simulations or max(1, self.num_simulations // 4), self.num_simulations)


@dataclass(frozen=True)
class SelfPlayConfig:
    """What self-play adds to the search: the first `temperature_moves` moves of a game are drawn in
    proportion to the visits (PUCT), and with `resign_value` above -1 a player resigns when the root
    value and the most visited child's are both below it, except in `resign_playout_share` of the
    games, which are played out to count the false resignations. With `root_statistics` each move
    also records the search's root value and the network's root prior (for value targets mixing q
    and for policy surprise weighting); without, a record's q is its game's result and its surprise 0."""

    search: SearchConfig = field(default_factory=SearchConfig)
    temperature_moves: int = 10
    resign_value: float = -1.0
    resign_playout_share: float = 0.1
    root_statistics: bool = False

"""Self-play: many games at once to the end, each move chosen by a noisy search, recorded as training data.

`SelfPlay` is one group of game slots searched together, driven step by step like `Search`. A slot
whose game ends takes the next game of the job, so the slots stay full until the job's games run
out. `play_games` drives one group in lockstep with an `evaluate` function; `play_pipelined` keeps
several groups in flight through an `AsyncEvaluator`: while one group's leaves are at the inference
server, the next group is searched, and each group's leaves are encoded straight into the buffer
its request is sent from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from azjobs.game_records import GameRecords
from azjobs.games.base import Game
from azjobs.search.config import SelfPlayConfig
from azjobs.search.mcts import Evaluate, Search
from azjobs.search.tree import ROOT

GROUPS_IN_FLIGHT = 2  # groups of games per job: one is searched while the other's leaves are evaluated
NOBODY = -1  # would_resign of a game in which no player would have resigned (yet)
PRIOR_FLOOR = 1e-8  # the least prior the policy surprise divides by


@dataclass
class GameBudget:
    """The games a job still has to start, shared by its groups; game ids count up from 0."""

    total: int
    started: int = 0

    def take(self, count: int) -> np.ndarray:
        """Ids of up to `count` new games.  # [<= count] int64"""
        ids = np.arange(self.started, min(self.total, self.started + count))
        self.started += len(ids)
        return ids


@dataclass
class _Moves:
    """The recorded moves, one entry per batch of moves made together."""

    game_ids: list[np.ndarray] = field(default_factory=list)  # [M] each
    planes: list[np.ndarray] = field(default_factory=list)  # [M, C, H, W]
    policy: list[np.ndarray] = field(default_factory=list)  # [M, A]
    to_play: list[np.ndarray] = field(default_factory=list)  # [M]
    version: list[np.ndarray] = field(default_factory=list)  # [M]
    policy_weight: list[np.ndarray] = field(default_factory=list)  # [M], 1 after a full search
    root_value: list[np.ndarray] = field(default_factory=list)  # [M] the search's root value, for the player to move
    prior: list[np.ndarray] = field(default_factory=list)  # [M, A] the network's root prior, before noise


COLUMNS = ("game_ids", "planes", "policy", "to_play", "version", "policy_weight")  # recorded at every move


@dataclass
class ResignCounts:
    """Resignations of a job's games, and the played-out games that measure the false ones."""

    resigned: int = 0  # games that ended by a resignation
    checked: int = 0  # played-out games (never resigning) in which a player would have resigned
    false: int = 0  # of those, games the player who would have resigned did not lose


class SelfPlay:
    """Self-play in `slots` game slots searched together (one search tree each, reused move to move).

    Driven like `Search`: while not `done`, evaluate the pending leaves (`pending_count`,
    `write_pending`) and `apply` the answer. A slot's search that completes picks its move at once
    and starts the next search; with `lockstep`, moves wait until every slot's search is complete
    (so move m of every game is chosen at the same step). `weights_version` is asked once per batch
    of moves: the version whose evaluations chose them.

    Each search is a full one with probability `full_search_prob` (its policy is a training target),
    else a cheap one. With `resign_value` above -1, a player resigns when the root value and the most
    visited child's value are both below it, except in a `resign_playout_share` of the games, which
    are played out to count how often the resignation would have been wrong (`resign`, shared by
    the groups of a job).
    """

    def __init__(
        self,
        game: Game,
        config: SelfPlayConfig,
        budget: GameBudget,
        slots: int,
        rng: np.random.Generator,
        *,
        weights_version: Callable[[], int] = lambda: 0,
        lockstep: bool = False,
        resign: ResignCounts | None = None,
    ) -> None:
        self.game, self.config, self.budget, self.rng = game, config, budget, rng
        if config.search.num_simulations < 1:
            raise ValueError("self-play needs num_simulations >= 1: the policy targets are visit counts")
        self.weights_version, self.lockstep = weights_version, lockstep
        self.resign = ResignCounts() if resign is None else resign
        self.slot_game = budget.take(slots)  # [B] the game id in each slot; -1 once empty
        count = len(self.slot_game)
        self.may_resign = self._draw_may_resign(count)  # [B] False in the games played out
        self.would_resign = np.full(count, NOBODY, np.int8)  # [B] who would have resigned a played-out game
        starts = np.repeat(game.initial_state()[None], count, axis=0)
        self.search = Search(game, starts, config.search, rng, add_noise=True, full=self._draw_full(count))
        self.kernel = self.search.kernel
        self.moves = np.zeros(len(self.slot_game), np.int32)  # [B] moves played in the slot's game
        self.positions = 0  # moves played (positions recorded) in all
        self.results: dict[int, tuple[int, int]] = {}  # game id -> (first player's result, moves)
        self._recorded = _Moves()
        self._move_on()  # games whose first search needs no network (none in practice) move at once

    @property
    def done(self) -> bool:
        return self.search.done

    @property
    def pending_count(self) -> int:
        return self.search.pending_count

    def pending_planes(self) -> np.ndarray:
        return self.search.pending_planes()

    def write_pending(self, out: np.ndarray) -> np.ndarray:
        return self.search.write_pending(out)

    def apply(self, logits: np.ndarray, values: np.ndarray) -> None:
        """Take the evaluation of the pending leaves; move where searches are complete; find the next leaves."""
        self.search.take_evaluation(logits, values)
        self._move_on()

    def _move_on(self) -> None:
        """Play the moves of complete searches until each live slot waits for the network again."""
        search = self.search
        while True:
            finished = search.finished()
            if self.lockstep and (finished != search.searching).any():
                finished[:] = False  # moves wait for every search of the group
            slots = np.flatnonzero(finished)
            if len(slots):
                self._move(slots)
            search.advance()
            # A search may complete inside `advance` (all its simulations ended in terminal nodes).
            if not search.finished().any() or (self.lockstep and not search.done):
                return

    def _move(self, slots: np.ndarray) -> None:
        """Record the searched positions of `slots`, play their moves (or resign), start their next searches."""
        search, tree = self.search, self.search.tree
        visits = tree.children_visits[slots, ROOT]  # [K, A], they sum to the search's simulations
        planes = np.empty((len(slots), *self.kernel.planes_shape), np.uint8)
        self.kernel.encode(tree.state[slots, ROOT], planes)
        r = self._recorded
        r.game_ids.append(self.slot_game[slots])
        r.planes.append(planes)
        r.policy.append(search.policy_targets(slots))
        r.to_play.append(tree.to_play[slots, ROOT])
        r.version.append(np.full(len(slots), self.weights_version(), np.int32))
        r.policy_weight.append(search.full[slots])
        if self.config.root_statistics:  # a finished search has visited its root; the surprise comes at the end
            r.root_value.append(tree.node_value_sum[slots, ROOT] / tree.node_visits[slots, ROOT])
            r.prior.append(search.root_priors(slots))
        actions = search.choose(slots, self.moves[slots] < self.config.temperature_moves)
        self.moves[slots] += 1
        self.positions += len(slots)
        if self.config.resign_value > -1:
            resigning = self._resigning(slots, visits)
            if resigning.any():
                self._resign(slots[resigning])
                slots, actions = slots[~resigning], actions[~resigning]
        search.play(slots, actions, self._draw_full(len(slots)))
        ended = ~np.isnan(tree.terminal_value[slots, ROOT])
        if ended.any():
            slots = slots[ended]
            self._finish_games(
                slots, _first_player_results(tree.terminal_value[slots, ROOT], tree.to_play[slots, ROOT])
            )

    def _resign(self, slots: np.ndarray) -> None:
        """The players to move in `slots` resign: their games end as losses for them."""
        self.resign.resigned += len(slots)
        loser = self.search.tree.to_play[slots, ROOT]
        self._finish_games(slots, np.where(loser == 0, -1, 1).astype(np.int8))

    def _resigning(self, slots: np.ndarray, visits: np.ndarray) -> np.ndarray:
        """Which of `slots` resign now: the root value and the most visited child's value are both below
        resign_value. In a played-out game the first such player is noted instead.  # [K] bool"""
        threshold = self.config.resign_value
        tree = self.search.tree
        root_value = tree.node_value_sum[slots, ROOT] / np.maximum(tree.node_visits[slots, ROOT], 1)
        best = visits.argmax(axis=1)
        best_value = tree.children_value_sum[slots, ROOT, best] / np.maximum(visits[np.arange(len(slots)), best], 1)
        lost = (root_value < threshold) & (best_value < threshold)
        noted = lost & ~self.may_resign[slots] & (self.would_resign[slots] == NOBODY)
        self.would_resign[slots[noted]] = tree.to_play[slots[noted], ROOT]
        return lost & self.may_resign[slots]

    def _finish_games(self, slots: np.ndarray, first: np.ndarray) -> None:
        """Score the games that just ended (`first  # [K]`: the first player's results); their slots
        take the next games of the budget."""
        for slot, result in zip(slots, first):
            self.results[int(self.slot_game[slot])] = (int(result), int(self.moves[slot]))
            resigner = self.would_resign[slot]
            if resigner != NOBODY:
                self.resign.checked += 1
                self.resign.false += int(result != (-1 if resigner == 0 else 1))
        ids = self.budget.take(len(slots))
        refill, empty = slots[: len(ids)], slots[len(ids) :]
        self.slot_game[empty] = -1
        self.search.stop(empty)
        if len(refill):
            self.slot_game[refill] = ids
            self.moves[refill] = 0
            self.may_resign[refill] = self._draw_may_resign(len(refill))
            self.would_resign[refill] = NOBODY
            self.search.reset(
                refill, np.repeat(self.game.initial_state()[None], len(refill), axis=0), self._draw_full(len(refill))
            )

    def _draw_full(self, count: int) -> np.ndarray | None:
        """Which of `count` next searches are full ones; None (no random draw) when all are.  # [count] bool"""
        p = self.config.search.full_search_prob
        return None if p >= 1 else self.rng.random(count) < p

    def _draw_may_resign(self, count: int) -> np.ndarray:
        """Which of `count` new games may resign; the others are played out.  # [count] bool"""
        if self.config.resign_value <= -1:
            return np.ones(count, bool)
        return self.rng.random(count) >= self.config.resign_playout_share

    def records(self) -> GameRecords:
        """The positions of the games this group finished, grouped by game id, in move order."""
        return _records(self._recorded, self.results)


def first_player_results(game: Game, final_states: np.ndarray) -> np.ndarray:
    """+1 where the first player won, 0 a draw, -1 where the second won.  # [G, S] -> [G] int8"""
    return _first_player_results(game.terminal_value(final_states), game.to_play(final_states))


def _first_player_results(value: np.ndarray, to_play: np.ndarray) -> np.ndarray:
    """Results for the first player from final values for the player to move.  # [G], [G] -> [G] int8"""
    return np.where(to_play == 0, value, -value).astype(np.int8)


def policy_surprise(targets: np.ndarray, priors: np.ndarray, full: np.ndarray) -> np.ndarray:
    """KL(target || prior) in nats where `full` (a full search), else 0 (KataGo's policy surprise).
    # [K, A], [K, A], [K] -> [K] float32"""
    prior = np.maximum(priors, PRIOR_FLOOR)  # a prior that rounded to 0 where the target has mass
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(targets > 0, targets * (np.log(targets) - np.log(prior)), 0.0)
    return np.where(np.asarray(full) > 0, np.maximum(terms.sum(axis=1), 0.0), 0.0).astype(np.float32)


def _records(moves: _Moves, results: dict[int, tuple[int, int]]) -> GameRecords:
    """Collect recorded moves into per-game order and score every position by its game's outcome.

    `results` holds every game of the job, ids 0..G-1 (a job returns only when all are finished).
    """
    first = np.array([results[i][0] for i in range(len(results))], np.int8)  # [G]
    lengths = np.array([results[i][1] for i in range(len(results))], np.int32)  # [G]
    game_ids, planes, policy, to_play, version, policy_weight = (
        np.concatenate(getattr(moves, column)) for column in COLUMNS
    )
    order = np.argsort(game_ids, kind="stable")  # moves are in time order, so each game stays in order
    value = np.where(to_play == 0, first[game_ids], -first[game_ids]).astype(np.float32)
    statistics = {}  # without root statistics: q the result, surprise 0 (GameRecords' defaults)
    if moves.root_value:
        root_value, prior = np.concatenate(moves.root_value), np.concatenate(moves.prior)
        statistics = {
            "root_value": np.clip(root_value[order], -1.0, 1.0).astype(np.float32),
            "policy_surprise": policy_surprise(policy[order], prior[order], policy_weight[order]),
        }
    return GameRecords(
        planes=planes[order],
        policy=policy[order],
        value=value[order],
        weights_version=version[order],
        results=first,
        game_lengths=lengths,
        policy_weight=policy_weight[order].astype(np.float32),
        **statistics,
    )


def play_games(
    game: Game,
    config: SelfPlayConfig,
    evaluate: Evaluate,
    num_games: int,
    rng: np.random.Generator,
    *,
    weights_version: Callable[[], int] = lambda: 0,
    resign: ResignCounts | None = None,
) -> GameRecords:
    """Play `num_games` games of self-play at once to the end; positions grouped by game, in order.

    All games move together (lockstep); `weights_version` is asked after each search: the version
    that answered its evaluations.
    """
    group = SelfPlay(
        game,
        config,
        GameBudget(num_games),
        num_games,
        rng,
        weights_version=weights_version,
        lockstep=True,
        resign=resign,
    )
    while not group.done:
        group.apply(*evaluate(group.pending_planes()))
    return group.records()


@runtime_checkable
class AsyncEvaluator(Protocol):
    """Evaluation with several requests in flight, each sent from a buffer of its own slot."""

    def planes_buffer(self, slot: int, count: int) -> np.ndarray:
        """Where to write the planes `[count, C, H, W]` uint8 of slot's next request."""
        ...

    def submit_buffer(self, slot: int, count: int) -> int:
        """Hand slot's buffer over for evaluation without waiting for it (it may go out with the next
        `receive_reply`); an id for `receive_reply`."""
        ...

    def receive_reply(self, request_id: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Wait for (logits [K, A], values [K], weights version) of a submitted request."""
        ...


class SyncEvaluator:
    """An `AsyncEvaluator` over a plain `evaluate`: each request is evaluated when its reply is asked for."""

    def __init__(self, evaluate: Evaluate, planes_shape: tuple[int, ...], version: Callable[[], int] = lambda: 0):
        self.evaluate, self.planes_shape, self.version = evaluate, tuple(planes_shape), version
        self._buffers: dict[int, np.ndarray] = {}
        self._requests: dict[int, np.ndarray] = {}
        self._next_id = 0

    def planes_buffer(self, slot: int, count: int) -> np.ndarray:
        buffer = self._buffers.get(slot)
        if buffer is None or len(buffer) < count:
            buffer = self._buffers[slot] = np.empty((count, *self.planes_shape), np.uint8)
        return buffer[:count]

    def submit_buffer(self, slot: int, count: int) -> int:
        self._next_id += 1
        self._requests[self._next_id] = self._buffers[slot][:count]
        return self._next_id

    def receive_reply(self, request_id: int) -> tuple[np.ndarray, np.ndarray, int]:
        logits, values = self.evaluate(self._requests.pop(request_id))
        return logits, values, self.version()


def play_pipelined(
    game: Game,
    config: SelfPlayConfig,
    evaluator: AsyncEvaluator,
    num_games: int,
    rng: np.random.Generator,
    *,
    games_in_flight: int,
    groups: int = GROUPS_IN_FLIGHT,
    on_step: Callable[[int, int], None] = lambda leaves, moves: None,
    resign: ResignCounts | None = None,
) -> GameRecords:
    """Play `num_games` games, `games_in_flight` at a time in `groups` groups whose requests alternate.

    Each round, for each group in turn: wait for its reply, apply it (the search runs on to the next
    leaves and plays the moves of complete searches), encode the leaves into its next request and send
    it; the other groups' requests are at the server meanwhile. `on_step(leaves, moves)` is told each
    request's size and the moves that reply let the group play; `resign` gathers the resignations.
    """
    budget = GameBudget(num_games)
    slots = np.array_split(np.arange(min(games_in_flight, num_games)), max(1, groups))
    version = [0]
    resign = ResignCounts() if resign is None else resign
    play = [
        SelfPlay(game, config, budget, len(s), rng, weights_version=lambda: version[0], resign=resign)
        for s in slots
        if len(s)
    ]
    tickets: list[int | None] = [None] * len(play)

    def send(i: int) -> None:
        count = play[i].pending_count
        play[i].write_pending(evaluator.planes_buffer(i, count))
        tickets[i] = evaluator.submit_buffer(i, count)

    for i, group in enumerate(play):
        if not group.done:
            send(i)
    while any(t is not None for t in tickets):
        for i, group in enumerate(play):
            ticket = tickets[i]
            if ticket is None:
                continue
            tickets[i] = None
            logits, values, version[0] = evaluator.receive_reply(ticket)
            before, leaves = group.positions, group.pending_count
            group.apply(logits, values)
            on_step(leaves, group.positions - before)
            if not group.done:
                send(i)
    return _combine(play)


def _combine(groups: list[SelfPlay]) -> GameRecords:
    moves, results = _Moves(), {}
    for group in groups:
        for name in COLUMNS:
            getattr(moves, name).extend(getattr(group._recorded, name))
        results.update(group.results)
    return _records(moves, results)

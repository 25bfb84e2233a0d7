"""Self-play records on tic-tac-toe: shapes, targets consistent with the results, perfect play draws."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
from conftest import selfplay

from azjobs.games import get_game
from azjobs.search import choose_moves, play_games
from azjobs.search.selfplay import SyncEvaluator, play_pipelined

GAME = get_game("tictactoe")


def test_uniform_self_play_records(uniform) -> None:
    versions = itertools.count()
    records = play_games(
        GAME,
        selfplay(num_simulations=16, temperature_moves=4),
        uniform,
        24,
        np.random.default_rng(0),
        weights_version=lambda: next(versions),
    )
    n = records.positions
    assert records.games == 24 and n == records.game_lengths.sum()
    assert records.planes.shape == (n, 2, 3, 3) and records.planes.dtype == np.uint8
    assert records.policy.shape == (n, 9) and records.policy.dtype == np.float32
    assert records.value.dtype == np.float32 and records.weights_version.dtype == np.int32
    assert records.results.dtype == np.int8 and records.game_lengths.dtype == np.int32
    np.testing.assert_allclose(records.policy.sum(axis=1), 1, rtol=1e-5)
    assert set(records.results) <= {-1, 0, 1} and len(set(records.results)) > 1
    assert records.game_lengths.min() >= 5 and records.game_lengths.max() <= 9


def test_positions_are_in_game_order_with_consistent_targets(uniform) -> None:
    versions = itertools.count()
    records = play_games(
        GAME,
        selfplay(num_simulations=8, temperature_moves=9),
        uniform,
        16,
        np.random.default_rng(1),
        weights_version=lambda: next(versions),
    )
    game = np.repeat(np.arange(records.games), records.game_lengths)  # [N] game of each position
    move = np.concatenate([np.arange(length) for length in records.game_lengths])  # [N] move number
    stones = records.planes.reshape(records.positions, -1).sum(axis=1)
    np.testing.assert_array_equal(stones, move)  # each game from the empty board, one stone per move
    to_play = move % 2
    np.testing.assert_array_equal(records.value, np.where(to_play == 0, 1, -1) * records.results[game])
    # All games search together, so move m of every game was searched at step m.
    np.testing.assert_array_equal(records.weights_version, move)
    # The policy never puts weight on an occupied cell.
    occupied = records.planes.reshape(records.positions, 2, 9).any(axis=1)
    assert not records.policy[occupied].any()


def test_perfect_self_play_without_temperature_draws(perfect) -> None:
    records = play_games(GAME, selfplay(num_simulations=50, temperature_moves=0), perfect, 16, np.random.default_rng(2))
    np.testing.assert_array_equal(records.results, 0)
    np.testing.assert_array_equal(records.game_lengths, 9)
    np.testing.assert_array_equal(records.value, 0)


def test_choose_moves_samples_by_visits_then_takes_the_most_visited() -> None:
    visits = np.array([[0, 3, 0, 1], [5, 0, 2, 0]], np.int32)
    greedy = choose_moves(visits, np.array([False, False]), np.random.default_rng(0))
    np.testing.assert_array_equal(greedy, [1, 0])
    rng = np.random.default_rng(0)
    samples = np.stack([choose_moves(visits, np.array([True, True]), rng) for _ in range(4000)])  # [4000, 2]
    counts = [np.bincount(samples[:, i], minlength=4) / len(samples) for i in range(2)]
    np.testing.assert_allclose(counts[0], [0, 0.75, 0, 0.25], atol=0.03)
    np.testing.assert_allclose(counts[1], [5 / 7, 0, 2 / 7, 0], atol=0.03)


class RecordingEvaluator(SyncEvaluator):
    """A synchronous evaluator that records the order of requests and replies, and checks that what it
    evaluates is the buffer it handed out (the leaves were encoded straight into it)."""

    def __init__(self, evaluate) -> None:  # type: ignore[no-untyped-def]
        super().__init__(evaluate, GAME.planes_shape)
        self.events: list[tuple[str, int, int]] = []  # (submit | receive, slot, positions)
        self.slot_of: dict[int, int] = {}
        self.handed_out: dict[int, np.ndarray] = {}

    def planes_buffer(self, slot: int, count: int) -> np.ndarray:
        self.handed_out[slot] = super().planes_buffer(slot, count)
        return self.handed_out[slot]

    def submit_buffer(self, slot: int, count: int) -> int:
        request_id = super().submit_buffer(slot, count)
        assert np.shares_memory(self._requests[request_id], self.handed_out[slot])
        self.slot_of[request_id] = slot
        self.events.append(("submit", slot, count))
        return request_id

    def receive_reply(self, request_id: int) -> tuple[np.ndarray, np.ndarray, int]:
        self.events.append(("receive", self.slot_of[request_id], 0))
        return super().receive_reply(request_id)


def test_two_groups_are_in_flight_while_one_is_searched(uniform) -> None:
    recorder = RecordingEvaluator(uniform)
    records = play_pipelined(
        GAME, selfplay(num_simulations=12), recorder, 20, np.random.default_rng(3), games_in_flight=8
    )
    assert records.games == 20
    in_flight: set[int] = set()
    last_submit = {slot: max(i for i, e in enumerate(recorder.events) if e[:2] == ("submit", slot)) for slot in (0, 1)}
    searched_alone = 0
    for i, (kind, slot, _) in enumerate(recorder.events):
        if kind == "submit":
            assert slot not in in_flight
            in_flight.add(slot)
            continue
        assert slot in in_flight
        in_flight.remove(slot)
        other = 1 - slot
        # While this group is searched, the other group's request is at the server, unless that
        # group has finished all its games.
        if other not in in_flight:
            assert last_submit[other] < i
            searched_alone += 1
    assert searched_alone <= 12  # only the very end of the job
    sizes = [n for kind, _, n in recorder.events if kind == "submit"]
    assert max(sizes) <= 4  # 8 games in flight, 4 per group
    assert sizes[:20] == [4] * 20  # finished games' slots take the next games: the groups stay full


def test_pipelined_self_play_records(uniform) -> None:
    records = play_pipelined(
        GAME,
        selfplay(num_simulations=16, temperature_moves=9),
        SyncEvaluator(uniform, GAME.planes_shape),
        30,
        np.random.default_rng(4),
        games_in_flight=10,
    )
    assert records.games == 30 and records.positions == records.game_lengths.sum()
    game = np.repeat(np.arange(records.games), records.game_lengths)  # [N] game of each position
    move = np.concatenate([np.arange(length) for length in records.game_lengths])  # [N] move number
    stones = records.planes.reshape(records.positions, -1).sum(axis=1)
    np.testing.assert_array_equal(stones, move)  # each game from the empty board, in order
    np.testing.assert_array_equal(records.value, np.where(move % 2 == 0, 1, -1) * records.results[game])
    occupied = records.planes.reshape(records.positions, 2, 9).any(axis=1)
    assert not records.policy[occupied].any()
    np.testing.assert_allclose(records.policy.sum(axis=1), 1, rtol=1e-5)
    assert records.game_lengths.min() >= 5 and records.game_lengths.max() <= 9


def test_pipelined_perfect_self_play_without_temperature_draws(perfect) -> None:
    records = play_pipelined(
        GAME,
        selfplay(num_simulations=50, temperature_moves=0),
        SyncEvaluator(perfect, GAME.planes_shape),
        12,
        np.random.default_rng(5),
        games_in_flight=6,
    )
    np.testing.assert_array_equal(records.results, 0)
    np.testing.assert_array_equal(records.game_lengths, 9)


def test_pipelined_self_play_is_reproducible(uniform) -> None:
    def play() -> object:
        return play_pipelined(
            GAME,
            selfplay(num_simulations=10),
            SyncEvaluator(uniform, GAME.planes_shape),
            9,
            np.random.default_rng(6),
            games_in_flight=4,
        )

    first, second = play(), play()
    for name in ("planes", "policy", "value", "results", "game_lengths"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))


def test_policy_surprise_is_the_kl_divergence_from_the_prior() -> None:
    from azjobs.search.selfplay import policy_surprise

    targets = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]], np.float32)
    priors = np.array([[0.25, 0.25, 0.5], [0.25, 0.25, 0.5]], np.float32)
    surprise = policy_surprise(targets, priors, np.array([True, False]))
    np.testing.assert_allclose(surprise, [np.log(2), 0.0], rtol=1e-6)


def test_self_play_records_the_root_value_and_the_policy_surprise(uniform) -> None:
    records = play_games(
        GAME,
        replace(selfplay(num_simulations=24, temperature_moves=9, full_search_prob=0.5), root_statistics=True),
        uniform,
        24,
        np.random.default_rng(3),
    )
    q, surprise, full = records.root_value, records.policy_surprise, records.policy_weight == 1
    assert q.dtype == surprise.dtype == np.float32 and np.all(np.abs(q) <= 1)
    assert not surprise[~full].any() and full.any() and (~full).any()  # a cheap search has no surprise
    # The uniform evaluator's prior is uniform over the empty cells (before noise): the surprise of a
    # full search is then log(empty cells) less the entropy of its policy target.
    empty = 9 - records.planes.reshape(records.positions, -1).sum(axis=1)
    p = records.policy[full]
    entropy = -(p * np.log(np.where(p > 0, p, 1))).sum(axis=1)
    np.testing.assert_allclose(surprise[full], np.log(empty[full]) - entropy, atol=1e-5)
    # The last position of a won game is the winner's, who wins with the move: its search saw the win.
    last = np.cumsum(records.game_lengths) - 1
    decided = records.results != 0
    assert (q[last[decided]] > 0).all() and (records.value[last[decided]] == 1).all()

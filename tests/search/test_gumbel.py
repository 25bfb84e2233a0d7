"""Gumbel search: the sequential halving schedule, its budget, the improved policy, and tactics
checked against the tic-tac-toe solver."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TICTACTOE as GAME
from conftest import selfplay

from azjobs.games import get_game
from azjobs.search import SearchConfig, best_actions, new_search, search
from azjobs.search.gumbel import halving_schedule
from azjobs.search.selfplay import play_games
from azjobs.search.tree import ROOT

GUMBEL = SearchConfig(gumbel=True)


def solved_outcomes(solver, states: np.ndarray) -> np.ndarray:
    """The exact value of every legal move of each position for its player to move; NaN where illegal.  # [K, A]"""
    out = np.full((len(states), GAME.num_actions), np.nan)
    for i, state in enumerate(states):
        for a in np.flatnonzero(GAME.legal_mask(state[None])[0]):
            after = GAME.play(state[None], np.array([a]))
            terminal = GAME.terminal_value(after)[0]
            out[i, a] = -terminal if not np.isnan(terminal) else -solver.value(after[0])
    return out


def visits_from_schedule(considered: int, budget: int) -> list[int]:
    """The root visits sequential halving gives its actions, best first, following the schedule."""
    visits = [0] * considered
    for count in halving_schedule(considered, budget):
        visits[visits.index(count)] += 1  # the best-ranked action with that count goes next
    return sorted(visits, reverse=True)


@pytest.mark.parametrize("considered", [1, 2, 3, 7, 9, 16])
def test_the_schedule_spends_exactly_the_budget(considered: int) -> None:
    for budget in range(1, 70):
        schedule = halving_schedule(considered, budget)
        assert len(schedule) == budget
        assert sum(visits_from_schedule(considered, budget)) == budget
    # 4 actions, 8 simulations: a round of one visit each, then the better two get two more each.
    assert halving_schedule(4, 8) == [0, 0, 0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("name, budget", [("tictactoe", 16), ("tictactoe", 50), ("connect4", 8), ("connect4", 32)])
def test_sequential_halving_allocates_the_budget_as_scheduled(name: str, budget: int) -> None:
    game = get_game(name)
    states = np.repeat(game.initial_state()[None], 5, axis=0)
    rng = np.random.default_rng(1)

    def evaluate(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return rng.normal(size=(len(planes), game.num_actions)).astype(np.float32), rng.uniform(-1, 1, len(planes))

    config = SearchConfig(num_simulations=budget, gumbel=True)
    result = search(game, states, evaluate, config, np.random.default_rng(2), add_noise=True)
    want = visits_from_schedule(min(config.gumbel_considered, game.num_actions), budget)
    for visits in result.visits:
        assert sorted(visits, reverse=True) == want


def test_fewer_considered_actions_leave_the_others_unvisited() -> None:
    states = GAME.initial_state()[None]
    config = SearchConfig(num_simulations=24, gumbel=True, gumbel_considered=4)
    result = search(
        GAME,
        states,
        lambda p: (np.zeros((len(p), 9), np.float32), np.zeros(len(p), np.float32)),
        config,
        np.random.default_rng(3),
        add_noise=True,
    )
    assert (result.visits[0] > 0).sum() == 4
    assert result.visits.sum() == 24


def test_gumbel_takes_every_immediate_win_with_8_simulations(perfect, uniform) -> None:
    states = perfect.states
    outcomes = solved_outcomes(perfect.solver, states)
    wins_at_once = np.array(
        [
            any(
                GAME.terminal_value(GAME.play(s[None], np.array([a])))[0] == -1
                for a in np.flatnonzero(GAME.legal_mask(s[None])[0])
            )
            for s in states
        ]
    )
    chosen = best_actions(GAME, states[wins_at_once], uniform, 8, config=GUMBEL)
    assert wins_at_once.sum() > 1000
    assert (outcomes[wins_at_once][np.arange(len(chosen)), chosen] == 1).all()


def test_gumbel_with_exact_values_plays_perfectly_with_one_simulation_per_legal_move(perfect) -> None:
    """One round of halving visits each move once: each Q is the move's exact value, and the choice is
    the best of them. (PUCT with the same budget and values misses about a fifth of these.)"""
    states = perfect.states
    outcomes = solved_outcomes(perfect.solver, states)
    legal_count = GAME.legal_mask(states).sum(axis=1)
    for count in np.unique(legal_count):
        group = np.flatnonzero(legal_count == count)
        chosen = best_actions(GAME, states[group], perfect, int(count), config=GUMBEL)
        best = np.nanmax(outcomes[group], axis=1)
        np.testing.assert_array_equal(outcomes[group, chosen], best)


def test_best_actions_use_no_noise(uniform) -> None:
    states = np.stack([GAME.initial_state(), GAME.play(GAME.initial_state()[None], np.array([4]))[0]])
    first = best_actions(GAME, states, uniform, 12, config=GUMBEL, rng=np.random.default_rng(1))
    for seed in range(2, 6):
        np.testing.assert_array_equal(
            best_actions(GAME, states, uniform, 12, config=GUMBEL, rng=np.random.default_rng(seed)), first
        )


def completed_q_reference(visits, value_sum, prior, legal, raw_value, c_visit=50.0, c_scale=1.0):
    """mctx's qtransform_completed_by_mix_value for one node, written out in numpy over its legal actions."""
    q = np.where(visits > 0, value_sum / np.maximum(visits, 1), 0.0)
    p = np.maximum(prior, 1e-30)
    seen = (visits > 0) & legal
    mixed = raw_value
    if visits.sum():
        mixed = (raw_value + visits.sum() * (p[seen] * q[seen]).sum() / p[seen].sum()) / (visits.sum() + 1)
    completed = np.where(visits > 0, q, mixed)[legal]
    rescaled = (completed - completed.min()) / max(completed.max() - completed.min(), 1e-8)
    return (c_visit + visits.max()) * c_scale * rescaled


def test_improved_policy_is_the_softmax_of_logits_plus_sigma_of_completed_q(perfect) -> None:
    states = perfect.states[::97]
    rng = np.random.default_rng(4)

    def evaluate(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, values = perfect(planes)
        return rng.normal(size=logits.shape).astype(np.float32), values * 0.8

    s = new_search(
        GAME, states, SearchConfig(num_simulations=20, gumbel=True), np.random.default_rng(5), add_noise=True
    )
    while not s.done:
        s.apply(*evaluate(s.pending_planes()))
    t = s.tree
    targets = s.policy_targets(np.arange(len(states)))
    for b in range(len(states)):
        if not np.isnan(t.terminal_value[b, ROOT]):
            continue
        legal = t.legal[b, ROOT]
        sigma = completed_q_reference(
            t.children_visits[b, ROOT],
            t.children_value_sum[b, ROOT].astype(np.float64),
            t.prior[b, ROOT].astype(np.float64),
            legal,
            float(t.raw_value[b, ROOT]),
        )
        logits = np.log(t.prior[b, ROOT][legal].astype(np.float64)) + sigma
        want = np.exp(logits - logits.max())
        np.testing.assert_allclose(targets[b][legal], want / want.sum(), rtol=1e-4, atol=1e-6)
        assert (targets[b][~legal] == 0).all()


def test_self_play_records_the_improved_policy(uniform) -> None:
    records = play_games(GAME, selfplay(num_simulations=12, gumbel=True), uniform, 8, np.random.default_rng(6))
    legal = records.planes[:, :2].sum(axis=1).reshape(-1, 9) == 0
    # pi' gives every legal move a share (visits after 12 simulations would leave some at 0).
    assert (records.policy[legal] > 0).all() and (records.policy[~legal] == 0).all()
    np.testing.assert_allclose(records.policy.sum(axis=1), 1, atol=1e-5)
    assert len(np.unique(records.results)) > 1  # the Gumbel noise samples the moves: games differ

"""PUCT search against solved tic-tac-toe and hand-checked positions (evaluators in conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

from azjobs.games import get_game
from azjobs.games.base import Game
from azjobs.search import NO_ACTION, Evaluate, SearchConfig, best_actions, new_search, search

GAME = get_game("tictactoe")


def states_after(*lines: str) -> np.ndarray:
    """States after move lists in cells 1-9, row by row from the top left.  # [K, 10]"""
    return np.stack([GAME.state_after(GAME.parse_moves(line)) for line in lines])


def random_logits(seed: int) -> Evaluate:
    rng = np.random.default_rng(seed)

    def evaluate(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = len(planes)
        return rng.normal(size=(k, GAME.num_actions)).astype(np.float32), rng.uniform(-1, 1, k).astype(np.float32)

    return evaluate


def test_perfect_evaluator_plays_optimally_in_every_reachable_position(perfect) -> None:
    wrong = []
    for start in range(0, len(perfect.states), 1024):
        states = perfect.states[start : start + 1024]
        for state, action in zip(states, best_actions(GAME, states, perfect, 200)):
            if action not in perfect.solver.optimal_actions(state):
                wrong.append(f"{GAME.render(state)}\nplayed {action + 1}")
    assert len(perfect.states) == 4520
    assert not wrong, f"{len(wrong)} suboptimal moves, e.g.\n" + "\n".join(wrong[:3])


def test_uniform_evaluator_takes_wins_and_blocks_losses(uniform) -> None:
    # Expected answers as actions (cell - 1).
    cases = {
        "1 4 2 5": {2},  # X 1 2, O 4 5: X wins at 3 rather than block at 6
        "2 5 1 7": {2},  # X 1 2, O 5 7: X wins at 3, which also blocks O
        "1 2 5 3": {8},  # X 1 5, O 2 3: X wins at 9
        "1 5 2 3 9": {6},  # X 1 2 9, O 3 5: O wins at 7
        "1 5 2": {2},  # X 1 2: O blocks at 3
        "5 1 9 3": {1},  # O 1 3: X blocks at 2
        "1 5 2 3 7": {3},  # X 1 2 7 threatens 4: O blocks there
    }
    chosen = best_actions(GAME, states_after(*cases), uniform, 200)
    for (line, expected), action in zip(cases.items(), chosen):
        assert action in expected, f"after {line}: played {action + 1}"


def test_visits_sum_to_simulations_and_terminal_roots_are_left_alone() -> None:
    # Roots: the start, two middle games, a won game (X 1 2 3) and a drawn full board.
    states = states_after("", "5", "1 5 2 3 7", "1 4 2 5 3", "1 2 3 5 4 6 8 7 9")
    terminal = np.array([False, False, False, True, True])
    result = search(
        GAME, states, random_logits(0), SearchConfig(num_simulations=50), np.random.default_rng(0), add_noise=True
    )
    legal = GAME.legal_mask(states)
    # Convention: the root's own evaluation is not a child visit, so children sum to num_simulations.
    np.testing.assert_array_equal(result.visits.sum(axis=1), np.where(terminal, 0, 50))
    assert not result.visits[~legal].any() and not result.prior[~legal].any()
    np.testing.assert_allclose(result.prior[~terminal].sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(result.root_value[terminal], [-1, 0])  # terminal values, for O / X to move
    assert result.visits.dtype == np.int32 and result.prior.dtype == np.float32
    assert result.root_value.dtype == np.float32 and np.all(np.abs(result.root_value) <= 1)


def test_one_evaluation_per_simulation_and_none_for_terminal_leaves(perfect) -> None:
    calls = []

    def counting(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(len(planes))
        return perfect(planes)  # asserts that no terminal position is evaluated

    states = states_after("", "1 5 9", "1 2 3 5 4 6 8 7")  # the last: one move left, to a draw
    search(GAME, states, counting, SearchConfig(num_simulations=30), np.random.default_rng(0), add_noise=False)
    assert len(calls) == 31 and calls[0] == 3 and max(calls) <= 3


def test_only_terminal_leaves_need_no_evaluation(uniform) -> None:
    calls = []

    def counting(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(len(planes))
        return uniform(planes)

    states = states_after("1 2 3 5 4 6 8 7")  # X's last move, at 9, draws
    result = search(GAME, states, counting, SearchConfig(num_simulations=20), np.random.default_rng(0), add_noise=False)
    assert calls == [1]  # only the root
    assert result.visits[0, 8] == 20 and result.root_value[0] == 0


def test_root_values_have_the_right_sign(perfect) -> None:
    # X to move wins at 3; O to move loses (X 1 5 7 threatens 3 and 4).
    states = states_after("1 4 2 5", "5 2 1 9 7")
    result = search(GAME, states, perfect, SearchConfig(num_simulations=100), np.random.default_rng(0), add_noise=False)
    assert result.root_value[0] > 0.9 and result.root_value[1] < -0.9


def test_dirichlet_noise_changes_root_priors_only_when_asked() -> None:
    states = states_after("", "5", "1 5 2")
    legal = GAME.legal_mask(states)
    config = SearchConfig(num_simulations=4, dirichlet_alpha=0.3, dirichlet_fraction=0.25)
    for add_noise in (False, True):
        steps = new_search(GAME, states, config, np.random.default_rng(1), add_noise=add_noise)
        evaluate = random_logits(2)
        while not steps.done:
            steps.apply(*evaluate(steps.pending_planes()))
        used = steps.tree.prior[:, 0]  # [B, A] the root priors the search used
        network = steps.result().prior
        assert not used[~legal].any()
        np.testing.assert_allclose(used.sum(axis=1), 1, rtol=1e-5)
        assert np.array_equal(used, network) != add_noise


def test_step_form_matches_search() -> None:
    states = states_after("", "5 1", "1 5 2 3")
    config = SearchConfig(num_simulations=25)
    expected = search(GAME, states, random_logits(3), config, np.random.default_rng(4), add_noise=True)
    steps = new_search(GAME, states, config, np.random.default_rng(4), add_noise=True)
    evaluate = random_logits(3)
    while not steps.done:
        steps.apply(*evaluate(steps.pending_planes()))
    got = steps.result()
    np.testing.assert_array_equal(got.visits, expected.visits)
    np.testing.assert_array_equal(got.root_value, expected.root_value)


def test_zero_simulations_pick_the_highest_legal_logit() -> None:
    states = states_after("5", "5 1 7")  # cell 5 (action 4) is taken in both
    logits = np.array([[0, 1, 2, 3, 9, 0, 0, 0, 0], [5, 0, 0, 0, 9, 0, 0, 0, 4]], np.float32)

    def evaluate(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return logits[: len(planes)], np.zeros(len(planes), np.float32)

    # In the second game cells 1 and 7 are taken too: its best legal logit is at cell 9.
    np.testing.assert_array_equal(best_actions(GAME, states, evaluate, 0), [3, 8])


def test_best_actions_of_a_finished_game_is_no_action(uniform) -> None:
    states = states_after("1 4 2 5 3", "5")
    assert best_actions(GAME, states, uniform, 10)[0] == NO_ACTION


class TwoMovesInARow(Game):
    """A toy game where the first player moves twice (as after a pass): playing 1 both times wins,
    anything else draws. Search that assumed alternating turns would avoid the winning line."""

    name, num_actions, state_size, planes_shape, num_symmetries = "two-moves", 2, 3, (1, 1, 3), 1

    def initial_state(self) -> np.ndarray:
        return np.zeros(3, np.int8)  # [ply, first action, second action]

    def to_play(self, states: np.ndarray) -> np.ndarray:
        return (states[:, 0] == 2).astype(np.int8)  # the second player only faces the final position

    def legal_mask(self, states: np.ndarray) -> np.ndarray:
        return np.repeat((states[:, 0] < 2)[:, None], 2, axis=1)

    def play(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        out = states.copy()
        out[np.arange(len(states)), 1 + states[:, 0]] = actions
        out[:, 0] += 1
        return out

    def terminal_value(self, states: np.ndarray) -> np.ndarray:
        first_wins = (states[:, 1] == 1) & (states[:, 2] == 1)
        return np.where(states[:, 0] < 2, np.nan, np.where(first_wins, -1, 0)).astype(np.float32)

    def encode(self, states: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return states.astype(np.uint8).reshape(-1, 1, 1, 3)

    def symmetry(self, k: int, planes: np.ndarray, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return planes, policy

    def action_to_str(self, action: int) -> str:
        return str(action)

    def parse_action(self, text: str) -> int:
        return int(text)

    def render(self, state: np.ndarray) -> str:
        return str(state)


def test_values_change_sign_only_when_the_player_to_move_changes() -> None:
    game = TwoMovesInARow()

    def uniform(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((len(planes), 2), np.float32), np.zeros(len(planes), np.float32)

    result = search(
        game,
        game.initial_state()[None],
        uniform,
        SearchConfig(num_simulations=40),
        np.random.default_rng(0),
        add_noise=False,
    )
    assert result.visits[0, 1] > 30 and result.root_value[0] > 0.5
    assert best_actions(game, game.initial_state()[None], uniform, 40)[0] == 1


def test_an_evaluation_of_the_wrong_shape_is_refused() -> None:
    steps = new_search(
        GAME, states_after("", "5"), SearchConfig(num_simulations=2), np.random.default_rng(0), add_noise=False
    )
    with pytest.raises(ValueError, match="expected"):
        steps.apply(np.zeros((2, 8), np.float32), np.zeros(2, np.float32))

"""The rule checks of azjobs.games.testing catch broken games (each a tic-tac-toe with one bug)."""

from __future__ import annotations

import numpy as np
import pytest

from azjobs.games import load_games
from azjobs.games.solver import Solver
from azjobs.games.testing import (
    check_batch_matches_single,
    check_encoding,
    check_random_playouts,
    check_self_play,
    check_symmetries,
    perft,
)
from azjobs.games.tictactoe import TicTacToe


class MutatesInput(TicTacToe):
    def play(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        out = super().play(states, actions)
        states[:] = out
        return out.copy()


class LegalAfterWin(TicTacToe):
    def legal_mask(self, states: np.ndarray) -> np.ndarray:
        return states[:, :9] == 0


class NeverAlternates(TicTacToe):
    def to_play(self, states: np.ndarray) -> np.ndarray:
        return np.zeros(len(states), dtype=np.int8)


class FloatPlanes(TicTacToe):
    def encode(self, states: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return super().encode(states).astype(np.float32)


class ZeroBasedNotation(TicTacToe):
    def action_to_str(self, action: int) -> str:
        return str(int(action))


class Endless(TicTacToe):
    def legal_mask(self, states: np.ndarray) -> np.ndarray:
        return np.ones((len(states), 9), dtype=bool)

    def terminal_value(self, states: np.ndarray) -> np.ndarray:
        return np.full(len(states), np.nan, dtype=np.float32)


class BlindPlanes(TicTacToe):
    def encode(self, states: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        out = np.empty((len(states), *self.planes_shape), dtype=np.uint8) if out is None else out
        out[:] = 0
        return out


class PolicyNotTurned(TicTacToe):
    def symmetry(self, k: int, planes: np.ndarray, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return super().symmetry(k, planes, policy)[0], policy.copy()


class NotAGroup(TicTacToe):
    num_symmetries = 2

    def symmetry(self, k: int, planes: np.ndarray, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        turned = np.roll(policy.reshape(-1, 3, 3), k, axis=-1).reshape(-1, 9)
        return np.roll(planes, k, axis=-1), turned  # a column shift: its inverse is missing


class SqueezedOnce(TicTacToe):
    def terminal_value(self, states: np.ndarray) -> np.ndarray:
        # A classic of array code: squeeze() also drops the batch axis of a batch of one.
        sums = states[:, :9].astype(np.int16)[:, [[0, 1, 2], [3, 4, 5], [6, 7, 8]]].sum(axis=2).squeeze()
        value = super().terminal_value(states)
        if sums.ndim == 1:
            value[:] = np.nan
        return value


class NoEmptyBatch(TicTacToe):
    def encode(self, states: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return super().encode(states, out).reshape(len(states), -1, 3, 3)  # -1 is ambiguous when K = 0


@pytest.fixture(scope="module")
def positions() -> np.ndarray:
    states = Solver(TicTacToe()).reachable_states()
    return np.stack(states)


@pytest.mark.parametrize(
    ("game", "message"),
    [
        (MutatesInput(), "play modified its input"),
        (LegalAfterWin(), "all False exactly in terminal states"),
        (NeverAlternates(), "to_play does not alternate"),
        (FloatPlanes(), "encode gave float32"),
        (ZeroBasedNotation(), r"parse_action\('0'\) failed for action 0"),
        (Endless(), "still going after 30 moves"),
        (NoEmptyBatch(), "a batch of no states fails: ValueError"),
    ],
)
def test_playouts_catch_broken_rules(game: TicTacToe, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_random_playouts(game, n_games=16, seed=0, max_moves=30)


def test_encoding_check_catches_planes_that_hide_the_rules(positions: np.ndarray) -> None:
    check_encoding(TicTacToe(), positions)
    check_encoding(BlindPlanes(), positions, rules_follow_planes=False)
    with pytest.raises(AssertionError, match="same planes differ in legal moves"):
        check_encoding(BlindPlanes(), positions)


def test_symmetry_check_catches_a_policy_left_unturned(positions: np.ndarray) -> None:
    with pytest.raises(AssertionError, match="other legal moves"):
        check_symmetries(PolicyNotTurned(), positions, seed=0)


def test_symmetry_check_catches_a_missing_inverse(positions: np.ndarray) -> None:
    with pytest.raises(AssertionError, match="no symmetry undoes symmetry 1"):
        check_symmetries(NotAGroup(), positions, seed=0)


def test_closed_symmetry_check_demands_every_image(positions: np.ndarray) -> None:
    assert check_symmetries(TicTacToe(), positions, seed=0, closed=True) == 8 * len(positions)
    with pytest.raises(AssertionError, match="outside the given set"):
        check_symmetries(TicTacToe(), positions[:100], seed=0, closed=True)


def test_batch_check_catches_a_game_that_breaks_alone(positions: np.ndarray) -> None:
    check_batch_matches_single(TicTacToe(), positions, seed=0)
    summary = check_random_playouts(TicTacToe(), n_games=64, seed=1)
    with pytest.raises(AssertionError, match="terminal_value alone differs"):
        check_batch_matches_single(SqueezedOnce(), summary.states, seed=0)


def test_perft_gives_the_published_tictactoe_counts() -> None:
    # Move sequences of 1..9 plies, games ending at a line of three not continued.
    assert perft(TicTacToe(), 9) == [9, 72, 504, 3024, 15120, 54720, 148176, 200448, 127872]
    after_centre = TicTacToe().state_after([4])
    assert perft(TicTacToe(), 2, after_centre) == [8, 56]


def test_playouts_report_legal_move_counts() -> None:
    summary = check_random_playouts(TicTacToe(), n_games=50, seed=2)
    assert summary.legal_counts.shape == (len(summary.states),)
    assert summary.legal_counts[0] == 9 and summary.legal_counts.max() == 9
    assert (summary.legal_counts == 0).sum() == 50  # one terminal state per game
    assert 4.0 < summary.mean_legal_moves() < 6.0


@pytest.mark.parametrize("name", sorted(load_games()))
def test_self_play_runs_every_registered_game(name: str) -> None:
    check_self_play(load_games()[name], n_games=4, num_simulations=4)


class TallPlanes(TicTacToe):
    planes_shape = (2, 9, 1)  # declared, while encode still draws 3 x 3 planes


def test_self_play_check_catches_a_game_the_search_cannot_play() -> None:
    with pytest.raises(AssertionError, match="self-play fails: ValueError: could not broadcast"):
        check_self_play(TallPlanes(), n_games=2, num_simulations=2)

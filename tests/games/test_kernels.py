"""Every registered game's search kernel agrees with its `Game` methods; a kernel with a bug is caught."""

from __future__ import annotations

import numpy as np
import pytest

from azjobs.games import GAMES, get_game
from azjobs.games.connect4 import ConnectFour, ConnectFourKernel
from azjobs.games.kernel import GameKernel
from azjobs.games.testing import check_kernel, check_random_playouts

get_game("connect4")  # loads the built-in games into GAMES


@pytest.mark.parametrize("name", sorted(GAMES))
def test_kernel_agrees_with_the_game(name: str) -> None:
    game = GAMES[name]
    summary = check_random_playouts(game, n_games=200, seed=1)
    check_kernel(game, summary.states, seed=2)


def test_connect_four_searches_on_bitboards() -> None:
    kernel = get_game("connect4").kernel()
    assert isinstance(kernel, ConnectFourKernel) and kernel.width == 3 and kernel.dtype == np.int64
    assert type(get_game("tictactoe").kernel()) is GameKernel  # any other game: its own methods


class BrokenKernel(ConnectFourKernel):
    """Misses the wins along the diagonals that fall to the left."""

    def describe(self, kstates: np.ndarray):  # type: ignore[no-untyped-def]
        to_play, terminal, legal = super().describe(kstates)
        states = self.to_states(kstates)
        cells = states[:, :42].reshape(-1, 6, 7)
        for i, board in enumerate(cells):
            for r in range(3):
                for c in range(3, 7):
                    line = [board[r + k, c - k] for k in range(4)]
                    if abs(sum(line)) == 4:
                        terminal[i], legal[i] = np.nan, states[i, 42:49] < 6
        return to_play, terminal, legal


class ConnectFourWithBrokenKernel(ConnectFour):
    def kernel(self) -> GameKernel:
        return BrokenKernel(self)


def test_a_kernel_that_misses_wins_is_caught() -> None:
    game = ConnectFourWithBrokenKernel()
    summary = check_random_playouts(game, n_games=300, seed=3)
    with pytest.raises(AssertionError, match="kernel"):
        check_kernel(game, summary.states, seed=4)

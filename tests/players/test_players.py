"""The baseline players and the network player: legal moves, tactics, exact search, extra moves, specs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bonusnim import BONUSNIM, MAX_PILE, move_wins

from azjobs.eval.match import random_openings
from azjobs.games import get_game
from azjobs.games.base import Game
from azjobs.games.solver import Solver
from azjobs.net import build_model, to_bytes
from azjobs.players import AlphaBetaPlayer, NetPlayer, PlayerSpec, make_player
from azjobs.players.heuristics import line_windows
from azjobs.settings import Settings

C4 = get_game("connect4")
TTT = get_game("tictactoe")
BASELINES = ["random", "oneply", "alphabeta:2", "alphabeta:3", "mcts:30"]


def positions(game: Game, count: int, seed: int) -> np.ndarray:
    """Non-terminal positions from random play of various lengths.  # [count, S]"""
    rng = np.random.default_rng(seed)
    found = [random_openings(game, count, moves, rng) for moves in range(0, 7)]
    return np.concatenate(found)[rng.permutation(count * 7)[:count]]


@pytest.mark.parametrize("game", [C4, TTT, BONUSNIM], ids=lambda g: g.name)
@pytest.mark.parametrize("spec", BASELINES)
def test_every_move_is_legal(game: Game, spec: str) -> None:
    states = positions(game, 24, seed=1)
    actions = make_player(spec, game).choose(states, np.random.default_rng(0))
    assert actions.shape == (24,)
    assert game.legal_mask(states)[np.arange(24), actions].all()


def c4(moves: str) -> np.ndarray:
    return C4.state_after(C4.parse_moves(moves))


@pytest.mark.parametrize("spec", ["oneply", "alphabeta:1", "alphabeta:4", "mcts:300"])
def test_takes_a_win_and_blocks_one(spec: str) -> None:
    player = make_player(spec, C4)
    rng = np.random.default_rng(0)
    win = c4("112233")  # X: 1 2 3 on the bottom row, O: 1 2 3 above; X to move: 4 wins
    block = c4("17273")  # X: 1 2 3 on the bottom row, O: 7 7; O to move must take 4
    chosen = player.choose(np.stack([win, block]), rng)
    assert [C4.action_to_str(a) for a in chosen] == ["4", "4"]


def test_oneply_avoids_giving_a_win_away() -> None:
    # X has three stones up column 1; O must play 1, every other move loses at once.
    state = c4("121213")  # X: 1 1 1 (column 1, three high), O: 2 2 3; O to move
    moves = {
        C4.action_to_str(int(a))
        for a in make_player("oneply", C4).choose(np.repeat(state[None], 40, 0), np.random.default_rng(1))
    }
    assert moves == {"1"}


def test_alphabeta_is_exact_minimax() -> None:
    """Alpha-beta with pruning gives the full-width minimax value, and picks a move that attains it."""
    states = positions(C4, 12, seed=2)
    rng = np.random.default_rng(0)
    for depth in (3, 5):
        player = AlphaBetaPlayer(C4, depth)
        full = player.full_width(states, depth)
        assert np.allclose([player.value(s) for s in states], full)
        for state, action in zip(states, player.choose(states, rng)):
            actions = np.flatnonzero(C4.legal_mask(state[None])[0])
            children = C4.play(np.repeat(state[None], len(actions), 0), actions)
            values = -player.full_width(children, depth - 1)
            assert values[list(actions).index(action)] == pytest.approx(values.max())


def test_full_depth_alphabeta_plays_tictactoe_perfectly() -> None:
    solver = Solver(TTT)
    states = solver.reachable_states()
    rng = np.random.default_rng(0)
    sample = [states[i] for i in rng.choice(len(states), 150, replace=False)]
    chosen = AlphaBetaPlayer(TTT, 9).choose(np.stack(sample), rng)
    assert all(int(a) in solver.optimal_actions(s) for s, a in zip(sample, chosen))


@pytest.mark.parametrize("spec, largest", [("alphabeta:12", MAX_PILE), ("mcts:400", 9), ("oneply", 3)])
def test_a_player_may_move_twice_in_a_row(spec: str, largest: int) -> None:
    """In bonus nim taking 3 earns another move; a player that assumed alternation would misjudge
    piles of 4, 8 and 12 (only taking 3 wins there). One-ply sees only wins at once; random
    playouts need more than 400 simulations to settle a pile of 12."""
    piles = range(1, largest + 1)
    states = np.array([[pile, side, 0] for pile in piles for side in (0, 1)], np.int8)
    chosen = make_player(spec, BONUSNIM).choose(states, np.random.default_rng(3))
    losing = [(int(s[0]), int(a) + 1) for s, a in zip(states, chosen) if not move_wins(int(s[0]), int(a) + 1)]
    assert losing == []


def test_random_player_tries_every_legal_move() -> None:
    state = c4("1111112")  # column 1 is full
    chosen = make_player("random", C4).choose(np.repeat(state[None], 700, 0), np.random.default_rng(0))
    counts = np.bincount(chosen, minlength=7)
    assert counts[0] == 0 and (counts[1:] > 70).all()


def test_line_windows() -> None:
    assert len(line_windows(6, 7, 4)) == 69  # Connect Four's 69 ways to connect four
    assert sorted(map(tuple, line_windows(3, 3, 3))) == sorted(
        [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)]
    )


@pytest.mark.parametrize(
    "text, name",
    [
        ("random", "random"),
        ("oneply", "oneply"),
        ("alphabeta", "alphabeta:4"),
        ("alphabeta:6", "alphabeta:6"),
        ("mcts", "mcts:500"),
        ("mcts:50", "mcts:50"),
        ("net", "net"),
        ("net:12", "net:12"),
        (" oneply ", "oneply"),
    ],
)
def test_specs(text: str, name: str) -> None:
    assert str(PlayerSpec.parse(text)) == name


@pytest.mark.parametrize("text", ["", "best", "random:2", "alphabeta:x", "alphabeta:0", "mcts:-1", "net:v3"])
def test_bad_specs(text: str) -> None:
    with pytest.raises(ValueError, match="random, oneply, alphabeta|at least 1"):
        PlayerSpec.parse(text)


def test_network_player() -> None:
    settings = Settings(game="tictactoe", net_blocks=1, net_channels=8)
    torch.manual_seed(0)
    data = to_bytes(build_model(TTT, settings), {"version": 7, "game": TTT.name})
    asked: list[int | None] = []

    def weights(version: int | None) -> tuple[int, bytes]:
        asked.append(version)
        return 7, data

    player = make_player("net", TTT, weights=weights, sims=0)
    assert isinstance(player, NetPlayer) and player.name == "net:7" and asked == [None]
    states = positions(TTT, 20, seed=4)
    logits, _ = player.evaluate(TTT.encode(states))
    expected = np.where(TTT.legal_mask(states), logits, -np.inf).argmax(axis=1)
    assert np.array_equal(player.choose(states, np.random.default_rng(0)), expected)
    searching = make_player("net:7", TTT, weights=weights, sims=16)
    assert asked[-1] == 7
    assert TTT.legal_mask(states)[np.arange(20), searching.choose(states, np.random.default_rng(0))].all()
    with pytest.raises(ValueError, match="needs a run's weights"):
        make_player("net", TTT)


@pytest.mark.parametrize(
    "text, fields",
    [
        ("net:best", ("net", None, True, None)),
        ("net@runs/b", ("net", None, False, "runs/b")),
        ("net@runs/b:7", ("net", 7, False, "runs/b")),
        ("net@/mnt/a:b/run:best", ("net", None, True, "/mnt/a:b/run")),  # a folder may hold a colon
        ("agent:c4.onnx", ("agent", None, False, "c4.onnx")),
        ("agent:/x/c4.pt:sims=200", ("agent", 200, False, "/x/c4.pt")),
    ],
)
def test_players_from_anywhere(text: str, fields: tuple) -> None:
    spec = PlayerSpec.parse(text)
    assert (spec.kind, spec.arg, spec.best, spec.where) == fields
    assert str(spec) == text and PlayerSpec.parse(str(spec)) == spec
    assert not spec.is_baseline and spec.needs_run == (text == "net:best")


@pytest.mark.parametrize("text", ["net@", "net@:3", "agent:", "net:best2", "net:0", "net@b:0"])
def test_bad_players_from_anywhere(text: str) -> None:
    with pytest.raises(ValueError, match="names no|unknown player|at least 1"):
        PlayerSpec.parse(text)


def test_networks_are_no_evaluation_opponents() -> None:
    from azjobs.players.specs import check_opponents

    for text in ("net:best", "net@other:3", "agent:a.onnx"):
        with pytest.raises(ValueError, match="is a network"):
            check_opponents(f"random,{text}")

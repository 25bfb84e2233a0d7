"""Self-play: many games at once to the end, each move chosen by a noisy search, recorded as training data."""

from __future__ import annotations

from typing import Callable

import numpy as np

from azjobs.games.base import Game
from azjobs.records import GameRecords
from azjobs.search.mcts import Evaluate, SearchConfig, search
from azjobs.settings import Settings


def choose_moves(visits: np.ndarray, temperature_mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sampled in proportion to the visits where `temperature_mask`, else the most visited.

    visits [B, A] (every row with some visits), temperature_mask [B] bool -> actions [B] int64.
    """
    cumulative = np.cumsum(visits, axis=1, dtype=np.float64)  # [B, A]
    threshold = rng.random(len(visits)) * cumulative[:, -1]  # [B]
    # The first action whose cumulative count passes the threshold; unvisited ones never do.
    sampled = (cumulative > threshold[:, None]).argmax(axis=1)
    return np.where(temperature_mask, sampled, visits.argmax(axis=1))


def play_games(
    game: Game,
    settings: Settings,
    evaluate: Evaluate,
    num_games: int,
    rng: np.random.Generator,
    *,
    weights_version: Callable[[], int] = lambda: 0,
) -> GameRecords:
    """Play `num_games` games of self-play at once to the end; positions grouped by game, in order.

    `weights_version` is asked after each search: the version that answered its evaluations.
    """
    config = SearchConfig.from_settings(settings)
    if config.num_simulations < 1:
        raise ValueError("self-play needs num_simulations >= 1: the policy targets are visit counts")
    states = np.repeat(game.initial_state()[None], num_games, axis=0)  # [G, S]
    moves = np.zeros(num_games, np.int32)  # [G] moves played so far
    playing = np.arange(num_games)  # games not finished yet
    steps: list[tuple[np.ndarray, ...]] = []  # per move: games, planes, policy, to_play, version
    while len(playing):
        now = states[playing]
        result = search(game, now, evaluate, config, rng, add_noise=True)
        policy = (result.visits / result.visits.sum(axis=1, keepdims=True)).astype(np.float32)
        version = np.full(len(playing), weights_version(), np.int32)
        steps.append((playing, game.encode(now), policy, game.to_play(now), version))
        actions = choose_moves(result.visits, moves[playing] < settings.temperature_moves, rng)
        states[playing] = game.play(now, actions)
        moves[playing] += 1
        playing = playing[np.isnan(game.terminal_value(states[playing]))]
    return _records(game, states, moves, steps)


def _records(game: Game, final_states: np.ndarray, moves: np.ndarray,
             steps: list[tuple[np.ndarray, ...]]) -> GameRecords:
    """Collect the recorded moves into per-game order and score every position by the outcome."""
    games, planes, policy, to_play, version = (np.concatenate(column) for column in zip(*steps))
    order = np.argsort(games, kind="stable")  # steps are in move order, so each game stays in order
    results = first_player_results(game, final_states)  # [G]
    value = np.where(to_play == 0, results[games], -results[games]).astype(np.float32)
    return GameRecords(
        planes=planes[order],
        policy=policy[order],
        value=value[order],
        weights_version=version[order],
        results=results,
        game_lengths=moves.astype(np.int32),
    )


def first_player_results(game: Game, final_states: np.ndarray) -> np.ndarray:
    """+1 where the first player won, 0 a draw, -1 where the second won.  # [G, S] -> [G] int8"""
    value = game.terminal_value(final_states)  # for the player to move at the end
    return np.where(game.to_play(final_states) == 0, value, -value).astype(np.int8)

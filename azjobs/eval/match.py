"""Matches: two players over many games at once, each random opening played once with each colour.

Every game starts from a position reached by `opening_moves` uniformly random moves; each opening
is played twice, player A taking the side to move in one game and the other side in its twin, so
an opening that favours one side favours both players equally. All games advance together: at
each step the games where A is to move are one batch for A, the others one batch for B (whose
turn it is comes from `game.to_play`, so a player may move twice in a row after a pass).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from azjobs.eval import ratings
from azjobs.games.base import Game
from azjobs.players.baselines import random_legal
from azjobs.search.selfplay import first_player_results


@dataclass(frozen=True)
class MatchRecord:
    """One finished match between players A and B; the results are A's, and `a_first_*` count the games
    where A moved first from the opening. `play_match` fills the results; the evaluation jobs add what
    the record of a run keeps besides (`dataclasses.replace`): why it was played, the simulations, the
    network players' versions and, for a gate, whether A was promoted."""

    a: str
    b: str
    a_wins: int
    draws: int
    b_wins: int
    a_first_wins: int
    a_first_draws: int
    a_first_losses: int
    openings: int  # distinct openings played (each with both colours)
    opening_moves: int
    seconds: float
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    time: float = field(default_factory=time.time)
    purpose: str = "manual"  # "schedule" (the trainer's), "ladder" (baseline against baseline), "gate" or "manual"
    sims: int = 0  # search simulations of the network players
    versions: dict[str, dict[str, float]] = field(default_factory=dict)  # net player -> version_info
    promoted: bool | None = None  # a gate match: whether A became the version self-play uses
    # The first SAMPLE_GAMES games move by move, for `azjobs web`: {"moves": actions from the start,
    # the opening's included, "a_first": whether A moved first, "result": +1 the first player won}.
    sample_games: tuple[dict[str, Any], ...] = ()

    kind = "match"

    def __post_init__(self) -> None:
        object.__setattr__(self, "sample_games", tuple(self.sample_games))  # a record read back holds a list

    @property
    def games(self) -> int:
        return self.a_wins + self.draws + self.b_wins

    @property
    def a_score(self) -> float:
        """A's share of the points: a win 1, a draw 1/2."""
        return (self.a_wins + 0.5 * self.draws) / max(self.games, 1)

    def result(self) -> ratings.Result:
        return ratings.Result(self.a, self.b, self.a_wins, self.draws, self.b_wins)

    def to_dict(self) -> dict[str, Any]:
        """The match's results (not the record's fields around them)."""
        return {
            "a": self.a,
            "b": self.b,
            "games": self.games,
            "a_wins": self.a_wins,
            "draws": self.draws,
            "b_wins": self.b_wins,
            "a_score": round(self.a_score, 4),
            "a_first_wins": self.a_first_wins,
            "a_first_draws": self.a_first_draws,
            "a_first_losses": self.a_first_losses,
            "openings": self.openings,
            "opening_moves": self.opening_moves,
            "seconds": self.seconds,
            "sample_games": list(self.sample_games),
        }


SAMPLE_GAMES = 4  # games of a match kept move by move in its record


def random_openings(game: Game, count: int, moves: int, rng: np.random.Generator, tries: int = 8) -> np.ndarray:
    """`count` positions after `moves` random moves, distinct while there are enough of them, none
    finished. Fewer distinct ones than asked (a small game, few moves) are repeated in turn.  # [count, S]"""
    return opening_lines(game, count, moves, rng, tries)[0]


def opening_lines(
    game: Game, count: int, moves: int, rng: np.random.Generator, tries: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """`random_openings` and the moves that reach each.  # [count, S], [count, moves or 0]"""
    start = np.repeat(game.initial_state()[None], count * tries, axis=0)
    states, lines = start, np.zeros((len(start), 0), np.int64)
    for _ in range(moves):
        live = np.isnan(game.terminal_value(states))
        states, lines = states[live], lines[live]
        actions = random_legal(game.legal_mask(states), rng)
        states, lines = game.play(states, actions), np.concatenate([lines, np.asarray(actions)[:, None]], axis=1)
    live = np.isnan(game.terminal_value(states))
    states, lines = states[live], lines[live]
    if len(states) == 0:  # every random line ended within `moves`: play from the start
        states, lines = start[:1], np.zeros((1, 0), np.int64)
    _, first = np.unique(states.reshape(len(states), -1), axis=0, return_index=True)
    order = np.sort(first)  # in the random order they came, not sorted by bytes
    pick = order[np.arange(count) % len(order)]
    return states[pick], lines[pick]


def play_match(game: Game, a: Any, b: Any, games: int, rng: np.random.Generator, *, opening_moves: int) -> MatchRecord:
    """Play `games` games (rounded up to even) of A against B from paired random openings."""
    started = time.monotonic()
    pairs = max(1, (games + 1) // 2)
    openings, lines = opening_lines(game, pairs, opening_moves, rng)
    states = np.repeat(openings, 2, axis=0)  # [G, S]: each opening twice in a row
    played = [list(map(int, line)) for line in np.repeat(lines, 2, axis=0)[:SAMPLE_GAMES]]
    first_colour = game.to_play(states)
    a_colour = np.where(np.arange(len(states)) % 2 == 0, first_colour, 1 - first_colour)  # [G]
    live = np.flatnonzero(np.isnan(game.terminal_value(states)))
    while len(live):
        a_turn = game.to_play(states[live]) == a_colour[live]
        for player, rows in ((a, live[a_turn]), (b, live[~a_turn])):
            if len(rows):
                actions = np.asarray(player.choose(states[rows], rng))
                states[rows] = game.play(states[rows], actions)
                for row, action in zip(rows, actions):
                    if row < len(played):
                        played[row].append(int(action))
        live = live[np.isnan(game.terminal_value(states[live]))]
    first_results = first_player_results(game, states).astype(np.int64)  # [G] +1: the first player won
    a_result = np.where(a_colour == 0, first_results, -first_results)
    a_first = a_colour == first_colour
    return MatchRecord(
        a=a.name,
        b=b.name,
        a_wins=int((a_result > 0).sum()),
        draws=int((a_result == 0).sum()),
        b_wins=int((a_result < 0).sum()),
        a_first_wins=int((a_result[a_first] > 0).sum()),
        a_first_draws=int((a_result[a_first] == 0).sum()),
        a_first_losses=int((a_result[a_first] < 0).sum()),
        openings=len({s.tobytes() for s in openings}),
        opening_moves=opening_moves,
        seconds=round(time.monotonic() - started, 2),
        sample_games=tuple(
            {"moves": moves, "a_first": bool(a_first[i]), "result": int(first_results[i])}
            for i, moves in enumerate(played)
        ),
    )

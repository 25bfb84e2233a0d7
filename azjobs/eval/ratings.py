"""Bradley-Terry ratings on the Elo scale, fitted over all match results, anchored on one player.

P(i beats j) = g_i / (g_i + g_j), a draw counting half a win to each side; the Elo rating is
400 log10(g_i), with the anchor (the random player) at 0. Every pair that has played also gets
`prior_draws` virtual draws, so a player who won every game gets a finite rating (BayesElo's
habit). Fitted by Hunter's MM iterations; the standard errors come from the Fisher information.
Players with no chain of games to the anchor are left unrated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

ANCHOR = "random"
ELO_PER_NAT = 400 / np.log(10)


@dataclass(frozen=True)
class Rating:
    elo: float
    se: float  # standard error of `elo`, 0 for the anchor
    games: int  # real games played (not the virtual draws)

    def to_dict(self) -> dict[str, Any]:
        return {"elo": round(self.elo, 1), "se": round(self.se, 1), "games": self.games}


@dataclass(frozen=True)
class Result:
    """One match: A's wins, the draws and B's wins."""

    a: str
    b: str
    a_wins: int
    draws: int
    b_wins: int


def fit(results: Iterable[Result], anchor: str = ANCHOR, prior_draws: float = 1.0,
        iterations: int = 10_000, tolerance: float = 1e-9) -> dict[str, Rating]:
    """Ratings of every player connected to `anchor` by games; {} if the anchor never played."""
    players, games, wins = _tables(results)
    if anchor not in players:
        return {}
    keep = _connected(games, players.index(anchor))
    players = [p for p, k in zip(players, keep) if k]
    games, wins = games[np.ix_(keep, keep)], wins[np.ix_(keep, keep)]
    real = games.sum(axis=1)
    prior = prior_draws * (games > 0)  # virtual draws, on the pairs that played only
    n = games + prior  # [P, P] games between each pair
    w = (wins + 0.5 * prior).sum(axis=1)  # [P] points of each player
    a = players.index(anchor)
    gamma = np.ones(len(players))
    for _ in range(iterations):
        denom = (n / (gamma[:, None] + gamma[None, :])).sum(axis=1)
        new = w / denom
        new /= new[a]
        done = np.max(np.abs(np.log(new) - np.log(gamma))) < tolerance
        gamma = new
        if done:
            break
    elo = ELO_PER_NAT * np.log(gamma)
    se = _standard_errors(n, gamma, a)
    return {p: Rating(float(elo[i]), float(se[i]), int(real[i])) for i, p in enumerate(players)}


def _tables(results: Iterable[Result]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Players, games between each pair `[P, P]`, and wins of row over column (draws as halves) `[P, P]`."""
    rows = list(results)
    players = sorted({r.a for r in rows} | {r.b for r in rows})
    index = {p: i for i, p in enumerate(players)}
    games = np.zeros((len(players), len(players)))
    wins = np.zeros_like(games)
    for r in rows:
        i, j = index[r.a], index[r.b]
        if i == j:
            continue  # a player against itself says nothing about its rating
        total = r.a_wins + r.draws + r.b_wins
        games[i, j] += total
        games[j, i] += total
        wins[i, j] += r.a_wins + 0.5 * r.draws
        wins[j, i] += r.b_wins + 0.5 * r.draws
    return players, games, wins


def _connected(games: np.ndarray, start: int) -> np.ndarray:
    """Which players are linked to `start` by a chain of games.  # [P] bool"""
    seen = np.zeros(len(games), bool)
    seen[start] = True
    frontier = [start]
    while frontier:
        linked = (games[frontier] > 0).any(axis=0) & ~seen
        seen |= linked
        frontier = list(np.flatnonzero(linked))
    return seen


def _standard_errors(n: np.ndarray, gamma: np.ndarray, anchor: int) -> np.ndarray:
    """From the inverse Fisher information of log-strengths, the anchor's held fixed.  # [P] Elo"""
    p = gamma[:, None] / (gamma[:, None] + gamma[None, :])  # [P, P] P(row beats column)
    info = -n * p * p.T
    np.fill_diagonal(info, 0.0)
    np.fill_diagonal(info, -info.sum(axis=1))
    others = np.flatnonzero(np.arange(len(gamma)) != anchor)
    se = np.zeros(len(gamma))
    if len(others):
        cov = np.linalg.pinv(info[np.ix_(others, others)])
        se[others] = np.sqrt(np.clip(np.diag(cov), 0, None)) * ELO_PER_NAT
    return se

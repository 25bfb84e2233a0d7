"""Bradley-Terry ratings on the Elo scale, fitted over all match results, anchored on one player.

P(i beats j) = g_i / (g_i + g_j), a draw counting half a win to each side; the Elo rating is
400 log10(g_i), with the anchor (the random player) at 0. Every pair that has played also gets
`prior_draws` virtual draws, so a player who won every game gets a finite rating (BayesElo's
habit). Fitted by Hunter's MM iterations; the standard errors come from the Fisher information.
Players with no chain of games to the anchor are left unrated. Over a long run, `fit_versions` fits
the newest RATED_WINDOW network versions (and every baseline) against older versions held at the
ratings they already have, so a refit's time and memory stay bounded however many versions exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


def fit(
    results: Iterable[Result],
    anchor: str = ANCHOR,
    prior_draws: float = 1.0,
    iterations: int = 10_000,
    tolerance: float = 1e-9,
    fixed: Mapping[str, Rating] | None = None,
) -> dict[str, Rating]:
    """Ratings of every player connected to `anchor` (or to a `fixed` player) by games; {} if the anchor
    never played. `fixed` players keep the rating given (their games are recounted): the others are
    fitted against them, and games between two fixed players are left out.

    Memory and each iteration's work grow with the pairs that played, not with players squared; only the
    standard errors take a matrix over the players fitted (see `fit_versions`, which bounds that)."""
    held = dict(fixed or {})
    held.pop(anchor, None)
    every = list(results)
    rows = [r for r in every if not (r.a in held and r.b in held)]
    players, i, j, games, wins_i, wins_j = _pairs(rows)
    if anchor not in players:
        return {}
    index = {p: k for k, p in enumerate(players)}
    a = index[anchor]
    pinned = np.zeros(len(players), bool)
    pinned[a] = True
    for name in held:
        if name in index:
            pinned[index[name]] = True
    keep = _connected(len(players), i, j, pinned)
    real = np.bincount(i, games, len(players)) + np.bincount(j, games, len(players))
    n = games + prior_draws  # [E] games of each pair, with the virtual draws
    w = np.bincount(i, wins_i + 0.5 * prior_draws, len(players)) + np.bincount(
        j, wins_j + 0.5 * prior_draws, len(players)
    )  # [P] points
    gamma = np.ones(len(players))
    for name, rating in held.items():
        if name in index:
            gamma[index[name]] = np.exp(rating.elo / ELO_PER_NAT)
    free = keep & ~pinned
    for _ in range(iterations):
        t = n / (gamma[i] + gamma[j])  # [E]
        denom = np.bincount(i, t, len(players)) + np.bincount(j, t, len(players))
        new = np.where(free, w / np.maximum(denom, 1e-300), gamma)
        if not held:
            new /= new[a]  # the anchor takes part in the updates, then everything is scaled to it
        done = np.max(np.abs(np.log(new[keep]) - np.log(gamma[keep]))) < tolerance
        gamma = new
        if done:
            break
    elo = ELO_PER_NAT * np.log(gamma)
    se = _standard_errors(len(players), i, j, n, gamma, np.flatnonzero(free))
    out = {
        p: Rating(float(elo[k]), float(se[k]), int(real[k])) for k, p in enumerate(players) if keep[k] and p not in held
    }
    played = dict.fromkeys(held, 0)
    for r in every:
        for name in {r.a, r.b} & played.keys():
            played[name] += r.a_wins + r.draws + r.b_wins
    out.update({p: Rating(r.elo, r.se, played[p]) for p, r in held.items()})
    return out


RATED_WINDOW = 200  # network versions fitted together; older ones keep the rating they had


def fit_versions(
    results: Iterable[Result],
    known: Mapping[str, Rating] | None = None,
    window: int = RATED_WINDOW,
    anchor: str = ANCHOR,
) -> dict[str, Rating]:
    """`fit` with the work bounded over a long run: the newest `window` network versions (`net:N`) and
    every other player are fitted together, against older versions held at their `known` ratings
    (those without one are fitted first, oldest first, `window` at a time, against the ones before them).
    With at most `window` versions this is `fit` itself."""
    rows = list(results)
    numbered = {p: v for r in rows for p in (r.a, r.b) if (v := _version(p)) is not None}
    versions = sorted(numbered, key=numbered.__getitem__)
    old = versions[:-window] if len(versions) > window else []
    held = {p: known[p] for p in old if known and p in known}
    todo = [p for p in old if p not in held]
    others = {p for r in rows for p in (r.a, r.b) if _version(p) is None}
    for start in range(0, len(todo), window):
        chunk = set(todo[start : start + window])
        allowed = chunk | held.keys() | others
        fitted = fit([r for r in rows if r.a in allowed and r.b in allowed], anchor=anchor, fixed=held)
        held.update({p: fitted[p] for p in chunk if p in fitted})
    return fit(rows, anchor=anchor, fixed=held)


def _version(player: str) -> int | None:
    """The number of a `net:N` player; None for every other player."""
    prefix, _, number = player.partition(":")
    return int(number) if prefix == "net" and number.isdigit() else None


def _pairs(rows: list[Result]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Players, and per pair that played (i < j): i, j, games, i's and j's wins (draws as halves).  # [E]"""
    players = sorted({r.a for r in rows} | {r.b for r in rows})
    index = {p: k for k, p in enumerate(players)}
    pairs: dict[tuple[int, int], list[float]] = {}
    for r in rows:
        x, y = index[r.a], index[r.b]
        total = r.a_wins + r.draws + r.b_wins
        if x == y or total == 0:
            continue  # a player against itself says nothing about its rating
        x_wins, y_wins = r.a_wins + 0.5 * r.draws, r.b_wins + 0.5 * r.draws
        if x > y:
            x, y, x_wins, y_wins = y, x, y_wins, x_wins
        entry = pairs.setdefault((x, y), [0.0, 0.0, 0.0])
        entry[0] += total
        entry[1] += x_wins
        entry[2] += y_wins
    ij = np.array(list(pairs), dtype=np.int64).reshape(-1, 2)
    values = np.array(list(pairs.values()), dtype=np.float64).reshape(-1, 3)
    return players, ij[:, 0], ij[:, 1], values[:, 0], values[:, 1], values[:, 2]


def _connected(count: int, i: np.ndarray, j: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Which players are linked to a `start` player by a chain of games (union-find).  # [P] bool"""
    parent = list(range(count))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for x, y in zip(i.tolist(), j.tolist()):
        parent[root(x)] = root(y)
    roots = {root(int(k)) for k in np.flatnonzero(start)}
    return np.array([root(k) in roots for k in range(count)], dtype=bool)


def _standard_errors(
    count: int, i: np.ndarray, j: np.ndarray, n: np.ndarray, gamma: np.ndarray, free: np.ndarray
) -> np.ndarray:
    """From the inverse Fisher information of the `free` players' log-strengths, the others' held fixed.
    # [P] Elo, 0 for the players held"""
    se = np.zeros(count)
    if not len(free):
        return se
    q = n * gamma[i] * gamma[j] / (gamma[i] + gamma[j]) ** 2  # [E] information of each pair
    at = np.full(count, -1)
    at[free] = np.arange(len(free))
    info = np.zeros((len(free), len(free)))
    np.add.at(info, (at[i], at[i]), np.where(at[i] >= 0, q, 0.0))
    np.add.at(info, (at[j], at[j]), np.where(at[j] >= 0, q, 0.0))
    both = (at[i] >= 0) & (at[j] >= 0)
    np.add.at(info, (at[i][both], at[j][both]), -q[both])
    np.add.at(info, (at[j][both], at[i][both]), -q[both])
    cov = np.linalg.pinv(info)
    se[free] = np.sqrt(np.clip(np.diag(cov), 0, None)) * ELO_PER_NAT
    return se

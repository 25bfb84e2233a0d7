"""Bradley-Terry ratings: known strengths come back, the anchor is 0, no game means no rating."""

from __future__ import annotations

import numpy as np
import pytest

from azjobs.eval.ratings import Result, fit

TRUE = {"random": 0.0, "oneply": 250.0, "net:1": 500.0, "net:11": 900.0, "alphabeta:4": 1200.0}


def simulated(games_per_pair: int, seed: int = 0, draw_share: float = 0.0) -> list[Result]:
    """Every pair of TRUE plays; results drawn from the Elo model (draws taken from both sides alike)."""
    rng = np.random.default_rng(seed)
    names = list(TRUE)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            p = 1 / (1 + 10 ** ((TRUE[b] - TRUE[a]) / 400))
            outcome = rng.random(games_per_pair)
            draws = int((outcome < draw_share).sum())
            decided = outcome[outcome >= draw_share]
            a_wins = int((rng.random(len(decided)) < p).sum())
            out.append(Result(a, b, a_wins, draws, len(decided) - a_wins))
    return out


def test_known_strengths_come_back() -> None:
    ratings = fit(simulated(400))
    assert ratings["random"].elo == 0 and ratings["random"].se == 0
    for name, elo in TRUE.items():
        # The virtual draws pull the extremes in a little; well within a few standard errors here.
        assert ratings[name].elo == pytest.approx(elo, abs=max(3 * ratings[name].se, 1e-9) + 30), name
        assert ratings[name].games == 400 * (len(TRUE) - 1)
    order = sorted(ratings, key=lambda n: ratings[n].elo)
    assert order == list(TRUE)


def test_more_games_narrow_the_error() -> None:
    few, many = fit(simulated(20, seed=1)), fit(simulated(500, seed=1))
    assert all(many[n].se < few[n].se for n in TRUE if n != "random")


def test_draws_are_half_a_win() -> None:
    even = fit([Result("random", "a", 0, 10, 0), Result("a", "b", 5, 0, 5)])
    assert even["a"].elo == pytest.approx(0, abs=1e-6) and even["b"].elo == pytest.approx(0, abs=1e-6)
    swapped = fit([Result("a", "random", 7, 2, 1)])
    assert swapped["a"].elo == pytest.approx(fit([Result("random", "a", 1, 2, 7)])["a"].elo)
    assert swapped["a"].elo > 0


def test_a_clean_sweep_has_a_finite_rating_that_grows_with_the_games() -> None:
    ten, hundred = fit([Result("random", "x", 0, 0, 10)]), fit([Result("random", "x", 0, 0, 100)])
    assert 0 < ten["x"].elo < hundred["x"].elo < 2000


def test_only_players_linked_to_the_anchor_are_rated() -> None:
    ratings = fit([Result("random", "a", 3, 0, 7), Result("b", "c", 5, 0, 5), Result("a", "a", 4, 0, 4)])
    assert set(ratings) == {"random", "a"}
    assert fit([Result("b", "c", 5, 0, 5)]) == {}
    assert fit([]) == {}

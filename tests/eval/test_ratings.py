"""Bradley-Terry ratings: known strengths come back, the anchor is 0, no game means no rating."""

from __future__ import annotations

import numpy as np
import pytest

from azjobs.eval.ratings import Rating, Result, fit, fit_versions

TRUE = {"random": 0.0, "oneply": 250.0, "net:1": 500.0, "net:11": 900.0, "alphabeta:4": 1200.0}


def simulated(games_per_pair: int, seed: int = 0, draw_share: float = 0.0) -> list[Result]:
    """Every pair of TRUE plays; results drawn from the Elo model (draws taken from both sides alike)."""
    rng = np.random.default_rng(seed)
    names = list(TRUE)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
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


def chain(versions: int, seed: int = 0) -> list[Result]:
    """A run's schedule: every version plays random, oneply and the version before it."""
    rng = np.random.default_rng(seed)
    out = [Result("oneply", "random", 15, 2, 3)]
    for v in range(1, versions + 1):
        out.append(Result(f"net:{v}", "random", 18, 1, 1))
        out.append(Result(f"net:{v}", "oneply", int(rng.integers(8, 14)), 3, 5))
        if v > 1:
            out.append(Result(f"net:{v}", f"net:{v - 1}", int(rng.integers(5, 15)), 2, 3))
    return out


def test_fit_versions_within_its_window_is_the_fit() -> None:
    results = chain(30)
    whole, windowed = fit(results), fit_versions(results, window=30)
    assert set(whole) == set(windowed)
    for name in whole:
        assert windowed[name] == whole[name]


def test_older_versions_keep_the_rating_they_were_given() -> None:
    results = chain(30)
    known = {f"net:{v}": Rating(100.0 + v, 7.0, 0) for v in range(1, 21)}
    fitted = fit_versions(results, known=known, window=10)
    for v in range(1, 21):
        assert (fitted[f"net:{v}"].elo, fitted[f"net:{v}"].se) == (100.0 + v, 7.0)
        assert fitted[f"net:{v}"].games == sum(
            r.a_wins + r.draws + r.b_wins for r in results if f"net:{v}" in (r.a, r.b)
        )
    newest = fit(results, fixed=known)
    for v in range(21, 31):
        assert fitted[f"net:{v}"] == newest[f"net:{v}"]
        assert fitted[f"net:{v}"].se > 0


def test_versions_without_a_rating_are_fitted_oldest_first_in_windows() -> None:
    results = chain(40, seed=3)
    whole, windowed = fit(results), fit_versions(results, window=10)
    assert set(whole) == set(windowed)
    # Held versions only see the games of their own window and before it: close to the whole fit.
    for name in whole:
        assert windowed[name].elo == pytest.approx(whole[name].elo, abs=3 * whole[name].se + 1e-9), name


def test_a_held_player_anchors_the_players_fitted_against_it() -> None:
    held = {"strong": Rating(800.0, 20.0, 0)}
    fitted = fit([Result("random", "weak", 9, 0, 1), Result("strong", "new", 5, 0, 5)], fixed=held)
    assert fitted["new"].elo == pytest.approx(800.0, abs=1e-6)  # even with the held player
    assert fitted["strong"].elo == 800.0 and fitted["strong"].games == 10
    assert fitted["weak"].elo < 0

"""The web app of `azjobs web`: JSON endpoints over `Site`, and one HTML page that polls them.

Read-only: no route writes to Redis or the storage root. Playing a game (POST /api/play) computes a
reply and keeps nothing. With a password every request wants it, as HTTP basic auth (user `azjobs`), a
`?token=` in the URL, or the cookie that a good token sets so the page's own requests carry it.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from typing import Any, Callable

import redis
from flask import Flask, Response, jsonify, request, send_from_directory

from azjobs.cluster.dashboard import check_exposure
from azjobs.errors import AzjobsError
from azjobs.web.data import Site, default_opponent, shipped_games

STATIC = Path(__file__).parent / "static"
TOKEN_COOKIE = "azjobs_token"
PASSWORD_ENV = "AZJOBS_WEB_PASSWORD"
PLAY_LIMIT = 1000  # moves in one request: more than any shipped game lasts


def make_app(
    run_dir: Path,
    connect: Callable[[], redis.Redis] | None,
    *,
    password: str | None = None,
    dashboard_url: str | None = None,
    tensorboard_url: str | None = None,
) -> Flask:
    """The page and its JSON for the run in `run_dir` (Redis from `connect`; None: the files alone)."""
    site = Site(run_dir, connect)
    app = Flask("azjobs.web", static_folder=None)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.before_request(lambda: _guard(password))
    app.after_request(lambda response: _remember(response, password))
    app.add_url_rule("/", "index", lambda: send_from_directory(STATIC, "index.html"))
    app.add_url_rule("/static/<path:name>", "static_file", lambda name: send_from_directory(STATIC, name))
    app.add_url_rule("/api/info", "info", lambda: _info(site, dashboard_url, tensorboard_url))
    app.add_url_rule("/api/overview", "overview", lambda: jsonify(site.overview()))
    app.add_url_rule("/api/networks", "networks", lambda: jsonify(site.networks()))
    app.add_url_rule("/api/games", "games", lambda: jsonify(site.games()))
    app.add_url_rule("/api/game/<kind>/<path:game_id>", "replay", lambda kind, game_id: _replay(site, kind, game_id))
    app.add_url_rule("/api/play", "play", lambda: _play(site), methods=["POST"])
    return app


def _remember(response: Response, password: str | None) -> Response:
    """Runs after every request: a good `?token=` becomes a cookie, so the page's own requests carry it."""
    token = request.args.get("token")
    if password and token and _same(token, password):
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
    response.headers["Cache-Control"] = "no-store"
    return response


def _info(site: Site, dashboard_url: str | None, tensorboard_url: str | None) -> Response:
    settings = site.settings()
    host = request.host.rsplit(":", 1)[0] if not request.host.startswith("[") else request.host.split("]")[0] + "]"
    return jsonify(
        run=site.name,
        game=settings.game,
        games=shipped_games(),
        default_opponent=default_opponent(site.run_dir),
        simulations=settings.num_simulations,
        read_only=True,
        dashboard_url=dashboard_url or f"http://{host}:9181/",
        tensorboard_url=tensorboard_url or f"http://{host}:6006/",
        run_dir=str(site.run_dir),
    )


def _replay(site: Site, kind: str, game_id: str) -> Response | tuple[Response, int]:
    try:
        return jsonify(site.replay(kind, game_id))
    except KeyError:
        return jsonify(error=f"no {kind} game {game_id}"), 404


def _play(site: Site) -> Response | tuple[Response, int]:
    """The opponent's reply to the moves so far (nothing kept)."""
    body: dict[str, Any] = request.get_json(silent=True) or {}
    moves, side = body.get("moves", []), body.get("side", 0)
    if (
        not isinstance(moves, list)
        or len(moves) > PLAY_LIMIT
        or not all(isinstance(m, int) for m in moves)
        or side not in (0, 1)
    ):
        return jsonify(error="moves must be a list of actions (integers) and side 0 or 1"), 400
    game = body.get("game") or None
    try:
        return jsonify(site.play(str(body.get("opponent") or default_opponent(site.run_dir)), moves, game, side))
    except (ValueError, AzjobsError) as e:
        return jsonify(error=str(e)), 400


def _same(given: str, password: str) -> bool:
    return hmac.compare_digest(given.encode(), password.encode())


def _guard(password: str | None) -> Response | None:
    """Runs before every request: the password when one is set; then GET, HEAD and the play route only."""
    if password:
        auth = request.authorization
        given = [
            (auth.password or "") if auth is not None and auth.type == "basic" else "",
            request.args.get("token", ""),
            request.cookies.get(TOKEN_COOKIE, ""),
        ]
        if not any(g and _same(g, password) for g in given):
            return Response(
                "azjobs web: password required (basic auth, user azjobs, or ?token=PASSWORD)\n",
                401,
                {"WWW-Authenticate": 'Basic realm="azjobs web"'},
            )
    if request.method not in ("GET", "HEAD") and request.path != "/api/play":
        return Response("azjobs web is read-only\n", 405)
    return None


def run(
    run_dir: Path,
    connect: Callable[[], redis.Redis] | None,
    *,
    bind: str = "127.0.0.1",
    port: int = 8080,
    password: str | None = None,
    dashboard_url: str | None = None,
    tensorboard_url: str | None = None,
) -> None:
    """Serve the page until interrupted (threads: one slow request, a game's reply, holds up no other)."""
    check_exposure(bind, password, what="the web page", env=PASSWORD_ENV)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = make_app(run_dir, connect, password=password, dashboard_url=dashboard_url, tensorboard_url=tensorboard_url)
    app.run(host=bind, port=port, threaded=True)

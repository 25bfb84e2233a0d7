"""`azjobs dashboard`: rq-dashboard on the run's Redis, read-only and pickle-free unless told otherwise.

rq-dashboard (0.9.0) fetches some jobs, registries and workers without a serializer, so RQ would
pickle-load what it finds in Redis: whoever can write there could run code in the dashboard. This
process makes JSON RQ's default and pickle's `loads` a refusal. Write actions (delete, requeue, empty,
compact) answer 403 unless allowed, and a password (HTTP basic auth) guards every page when given.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import rq.serializers
from flask import Flask, Response, request
from rq.serializers import JSONSerializer

from azjobs.cluster import connection
from azjobs.errors import AzjobsError

USER = "azjobs"  # the basic-auth user name; only the password is checked
PORT = 9181  # `azjobs dashboard --port`'s default, and scripts/start_head.sh's
PASSWORD_ENV = "AZJOBS_DASHBOARD_PASSWORD"
# rq-dashboard's routes that change Redis; requeue_all answers GET too.
WRITE_ENDPOINTS = frozenset(
    {
        "rq_dashboard.delete_job_view",
        "rq_dashboard.requeue_job_view",
        "rq_dashboard.requeue_all",
        "rq_dashboard.empty_queue",
        "rq_dashboard.compact_queue",
    }
)


class UnpicklingRefused(Exception):
    """Something in this process tried to unpickle data read from Redis."""


def _refuse_pickle(data: bytes, /) -> Any:
    raise UnpicklingRefused("azjobs dashboard never unpickles data from Redis (azjobs' jobs are JSON)")


def refuse_pickle() -> None:
    """In this process, RQ objects made without a serializer read JSON, and pickle's loads refuses.

    RQ resolves a missing serializer to `rq.serializers.PickleSerializer` at each call, so every Job,
    Queue, registry, Result and Worker that rq-dashboard makes without one reads JSON; any code that
    names `DefaultSerializer` itself gets a `loads` that raises (RQ then shows the field as unreadable).
    """
    rq.serializers.DefaultSerializer.loads = staticmethod(_refuse_pickle)
    setattr(rq.serializers, "PickleSerializer", JSONSerializer)  # a module global swapped, not a subclass
    rq.serializers.SERIALIZER_ALIASES["pickle"] = JSONSerializer


def is_loopback(bind: str) -> bool:
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def on_redis_host(redis_url: str | None) -> str | None:
    """Where a page served here links rq-dashboard when the run's Redis is on another machine: that
    machine, port PORT (scripts/start_head.sh starts the dashboard beside Redis). None when Redis is on
    this machine (a unix socket, loopback, or one of this machine's addresses): the page's own host then."""
    host = urlparse(redis_url or "").hostname
    if not host or is_loopback(host) or is_this_machine(host):
        return None
    return f"http://{f'[{host}]' if ':' in host else host}:{PORT}/"


def is_this_machine(host: str) -> bool:
    """Whether `host` names an address of this machine (one a socket here can bind)."""
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False  # unknown here: another machine's name
    for family, kind, proto, _, address in found:
        with socket.socket(family, kind, proto) as s:
            try:
                s.bind((address[0], 0, *address[2:]))
                return True
            except OSError:
                continue
    return False


def read_password(password_file: Path | None) -> str | None:
    """The dashboard's password: the file's first line, else $AZJOBS_DASHBOARD_PASSWORD, else none."""
    return connection.read_password(password_file, env=PASSWORD_ENV, what="the dashboard's password file")


def check_exposure(bind: str, password: str | None, *, what: str = "the dashboard", env: str = PASSWORD_ENV) -> None:
    """Refuse to serve beyond loopback without a password (the rule of every azjobs web server)."""
    if not password and not is_loopback(bind):
        raise AzjobsError(
            f"refusing to serve {what} on {bind} without a password: pass --password-file FILE or set "
            f"${env} (or keep --bind 127.0.0.1 and reach it with ssh -L)"
        )


def make_app(redis_url: str, *, password: str | None = None, allow_actions: bool = False) -> Flask:
    """The rq-dashboard web app on `redis_url`: JSON only, write actions off unless `allow_actions`,
    every request wanting `password` (user `azjobs`) when one is given."""
    from rq_dashboard import cli as dashboard_cli
    from rq_dashboard import web

    refuse_pickle()
    web.config.serializer = JSONSerializer
    app = dashboard_cli.make_flask_app(None, None, None, "")
    app.config["RQ_DASHBOARD_REDIS_URL"] = redis_url
    app.config["DEPRECATED_OPTIONS"] = []
    app.config["RQ_DASHBOARD_DISABLE_DELETE"] = not allow_actions  # hides the buttons too
    web.setup_rq_connection(app)
    app.before_request(lambda: _guard(password, allow_actions))
    return app


def _guard(password: str | None, allow_actions: bool) -> Response | None:
    """Runs before every request: basic auth when a password is set, then no write action unless allowed."""
    if password:
        auth = request.authorization
        given = (auth.password or "") if auth is not None and auth.type == "basic" else ""
        if not hmac.compare_digest(given.encode(), password.encode()):
            return Response(
                "azjobs dashboard: password required\n", 401, {"WWW-Authenticate": 'Basic realm="azjobs dashboard"'}
            )
    if not allow_actions and (request.endpoint in WRITE_ENDPOINTS or request.method not in ("GET", "HEAD")):
        return Response("azjobs dashboard: write actions are off (start it with --allow-actions)\n", 403)
    return None


def run(
    redis_url: str,
    *,
    bind: str = "127.0.0.1",
    port: int = 9181,
    password: str | None = None,
    allow_actions: bool = False,
) -> None:
    """Serve rq-dashboard until interrupted (the URL stays in-process: no password on a command line)."""
    check_exposure(bind, password)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    make_app(redis_url, password=password, allow_actions=allow_actions).run(host=bind, port=port)

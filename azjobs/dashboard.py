"""`azjobs dashboard`: rq-dashboard on the run's Redis, set up for azjobs' JSON jobs.

rq-dashboard's `--json` reads jobs with the JSON serializer, but its workers view (0.9.0)
lists workers with RQ's default serializer, so a worker busy with a JSON job breaks the
page. We hand it a Worker class that lists workers with the JSON serializer.
"""

from __future__ import annotations

import logging
from typing import Any

import rq
from flask import Flask
from rq.serializers import JSONSerializer


class JsonWorker(rq.Worker):
    """rq's Worker, listed with the serializer azjobs' jobs use."""

    @classmethod
    def all(cls, *args: Any, **kwargs: Any) -> list:  # type: ignore[override]
        kwargs.setdefault("serializer", JSONSerializer)
        return super().all(*args, **kwargs)


def make_app(redis_url: str) -> Flask:
    """The rq-dashboard web app on `redis_url`, reading jobs and workers as JSON."""
    from rq_dashboard import cli as dashboard_cli
    from rq_dashboard import web

    web.Worker = JsonWorker
    web.config.serializer = JSONSerializer
    app = dashboard_cli.make_flask_app(None, None, None, "")
    app.config["RQ_DASHBOARD_REDIS_URL"] = redis_url
    app.config["DEPRECATED_OPTIONS"] = []
    web.setup_rq_connection(app)
    return app


def run(redis_url: str, *, bind: str = "127.0.0.1", port: int = 9181) -> None:
    """Serve rq-dashboard until interrupted (the URL stays in-process: no password on a command line)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    make_app(redis_url).run(host=bind, port=port)

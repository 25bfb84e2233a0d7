"""What the page shows, as JSON-ready dicts: read from the run's Redis (machines, counters, queues) and
its folder on the storage root (versions, evaluation records, shards). Nothing here writes anywhere.

Files that never change once landed (weights versions, shards) are read once and kept; the evaluation
summary is read again only when `evals/` lists other files.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

import numpy as np
import redis

from azjobs.cluster import status
from azjobs.errors import AzjobsError
from azjobs.eval import plot
from azjobs.eval.records import MatchRecord, evals_dir, from_json
from azjobs.eval.standing import standings
from azjobs.games import get_game, load_games
from azjobs.games.base import Game
from azjobs.net.weights import read_metadata
from azjobs.players.specs import PlayerSpec
from azjobs.run import read_file
from azjobs.settings import Settings
from azjobs.storage.replay import replay_dir, shard_names
from azjobs.storage.shards import ShardError, open_for_reading, read_shard
from azjobs.storage.weights import WEIGHTS_DIR, file_name, latest_file, versions_in
from azjobs.web import boards

RECONNECT_S = 5.0  # between tries to reach the run's Redis
HISTORY_EVERY_S = 2.0  # one point of the throughput chart per this many seconds, at most
HISTORY_POINTS = 900  # half an hour of them
NEWEST_SHARDS = 2  # self-play games listed: those of the newest shards
GAMES_LISTED = 12  # of each kind


def default_opponent(run_dir: Path) -> str:
    """`net:best` once the run's records rate or score a version, else `net` (the newest)."""
    return "net:best" if standings(run_dir) else "net"


class Site:
    """One run as the page sees it: `run_dir` on this machine, and its Redis when one is reachable
    (`connect` is tried again every RECONNECT_S while it fails: a local run's Redis comes and goes)."""

    def __init__(self, run_dir: Path, connect: Callable[[], redis.Redis] | None) -> None:
        self.run_dir, self.connect = Path(run_dir), connect
        self.client: redis.Redis | None = None
        self._tried = -RECONNECT_S
        self.name = self.run_dir.resolve().name
        self._lock = threading.Lock()
        self._history: deque[dict[str, float]] = deque(maxlen=HISTORY_POINTS)
        self._versions: dict[int, dict[str, Any]] = {}  # version -> what its file's metadata says
        self._shard_games: dict[str, dict[int, int]] = {}  # shard -> {version: games it began}
        self._summary: tuple[tuple[str, ...], plot.Summary] | None = None
        self._players: dict[tuple[str, str, int | None], Any] = {}

    # The run.

    def settings(self) -> Settings:
        found = read_file(self.run_dir)
        if found is None:
            raise AzjobsError(f"no run at {self.run_dir} (no settings.toml): pass the --run-dir of a run")
        return found

    def game(self) -> Game:
        return get_game(self.settings().game)

    def snapshot(self) -> status.Snapshot | None:
        if self.client is None and self.connect is not None and time.monotonic() - self._tried >= RECONNECT_S:
            self._tried = time.monotonic()
            try:
                self.client = self.connect()
            except (AzjobsError, redis.RedisError):
                self.client = None
        if self.client is None:
            return None
        try:
            return status.collect(self.client, self.name)
        except redis.RedisError:
            self.client = None  # connect again (a restarted `azjobs run` has a new socket)
            return None

    def overview(self) -> dict[str, Any]:
        """The machines table, the counters, queues, and the throughput since the page's server started."""
        snap = self.snapshot()
        settings = read_file(self.run_dir)
        out: dict[str, Any] = {
            "run": self.name,
            "game": settings.game if settings is not None else None,
            "redis": snap is not None,
            "time": time.time(),
        }
        if snap is None:
            return {**out, "machines": [], "history": list(self._history)}
        servers = [p for p in snap.processes if p.get("role") == "gpu-serve" and p.get("alive") == "True"]
        point = {
            "time": snap.time,
            "games": float(snap.stats.get("games", 0)),
            "positions": float(snap.stats.get("positions", 0)),
            "step": float(snap.trainer.get("step", 0) or 0),
            "evals_per_s": sum(float(p.get("evals_per_s", 0) or 0) for p in servers),
        }
        with self._lock:
            if not self._history or point["time"] - self._history[-1]["time"] >= HISTORY_EVERY_S:
                self._history.append(point)
            history = list(self._history)
        return {
            **out,
            "machines": status.machines(snap),
            "stats": snap.stats,
            "trainer": snap.trainer,
            "weights_version": snap.weights_version,
            "queues": {name.rsplit(":", 1)[-1]: counts for name, counts in snap.queues.items()},
            "pending_requests": snap.pending_requests,
            "history": history,
        }

    # The networks.

    def _version_info(self, version: int) -> dict[str, Any]:
        if version not in self._versions:
            path = self.run_dir / WEIGHTS_DIR / file_name(version)
            with open(path, "rb") as f:  # the header alone: the metadata, not the tensors
                head = f.read(8)
                size = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
                meta = read_metadata(head + f.read(size))
            self._versions[version] = {
                "version": version,
                "step": int(meta.get("step", 0)),
                "samples_trained": int(meta.get("samples_trained", 0)),
                "train_seconds": float(meta.get("train_seconds", 0.0)),
            }
        return self._versions[version]

    def _selfplay_games(self) -> dict[int, int]:
        """Self-play games by the weights version that made their first move, over every shard."""
        folder = replay_dir(self.run_dir)
        for name in shard_names(folder):
            if name not in self._shard_games:
                try:
                    with open_for_reading(folder / name) as f:
                        lengths = np.asarray(f["game_lengths_G"][()])
                        versions = np.asarray(f["weights_version_N"][()])
                except (OSError, KeyError, ValueError):
                    continue  # landing, or damaged (the trainer sets it aside): tried again next time
                firsts = versions[np.cumsum(lengths) - lengths] if len(lengths) else versions[:0]
                found, times = np.unique(firsts, return_counts=True)
                self._shard_games[name] = {int(v): int(c) for v, c in zip(found, times)}
        total: dict[int, int] = {}
        for per_version in self._shard_games.values():
            for version, games in per_version.items():
                total[version] = total.get(version, 0) + games
        return total

    def summary(self) -> plot.Summary:
        """`azjobs plot`'s data, read again when the files in evals/ change."""
        try:
            names = tuple(sorted(os.listdir(evals_dir(self.run_dir))))
        except FileNotFoundError:
            names = ()
        if self._summary is None or self._summary[0] != names:
            self._summary = (names, plot.summarize(self.run_dir))
        return self._summary[1]

    def networks(self) -> dict[str, Any]:
        """One row per weights version (steps, training time, games, rating ± error, accuracy), the
        baselines' ratings, and the chart's points: the same data as `azjobs plot`."""
        with self._lock:
            summary = self.summary()
            games = self._selfplay_games()
            rows = []
            for version in versions_in(self.run_dir / WEIGHTS_DIR):
                try:
                    info = dict(self._version_info(version))
                except (OSError, AzjobsError):
                    continue
                player = f"net:{version}"
                rating = summary.ratings.get(player)
                info["selfplay_games"] = games.get(version, 0)
                info["rating"] = rating.to_dict() if rating is not None else None
                info["accuracy"] = [
                    {"sims": a.sims, "weak": a.weak_accuracy, "strong": a.strong_accuracy}
                    for a in sorted(summary.accuracy, key=lambda a: -a.sims)
                    if a.player == player
                ]
                rows.append(info)
        chart = summary.to_dict()
        chart["rating_points"] = [
            {"player": p, "elo": r.elo, "se": r.se, **summary.versions[p]}
            for p, r in summary.ratings.items()
            if p in summary.versions
        ]
        chart["baselines"] = {p: r.to_dict() for p, r in summary.ratings.items() if not p.startswith("net")}
        if summary.accuracy:
            chart["random_weak_accuracy"] = summary.accuracy[0].random_weak_accuracy
        return {"versions": rows, "chart": chart}

    # The games.

    def games(self) -> dict[str, Any]:
        """The newest self-play games (from the newest shards) and evaluation games (from match records)."""
        selfplay: list[dict[str, Any]] = []
        folder = replay_dir(self.run_dir)
        for name in reversed(shard_names(folder)[-NEWEST_SHARDS:]):
            try:
                with open_for_reading(folder / name) as f:
                    lengths = np.asarray(f["game_lengths_G"][()])
                    results = np.asarray(f["results_G"][()])
                    created = float(f.attrs.get("created", 0.0))
            except (OSError, KeyError, ValueError):
                continue
            for i in reversed(range(len(lengths))):
                selfplay.append(
                    {
                        "id": f"{name}:{i}",
                        "title": f"game {i + 1} of the job done {time.strftime('%H:%M:%S', time.localtime(created))}",
                        "moves": int(lengths[i]),
                        "result": int(results[i]),
                        "time": created,
                    }
                )
        evaluation: list[dict[str, Any]] = []
        for record in self._newest_matches():
            for i, sample in enumerate(record.sample_games):
                first, second = (record.a, record.b) if sample.get("a_first") else (record.b, record.a)
                evaluation.append(
                    {
                        "id": f"{record.id}:{i}",
                        "title": f"{first} vs {second} ({record.purpose})",
                        "moves": len(sample.get("moves", [])),
                        "result": int(sample.get("result", 0)),
                        "time": record.time,
                    }
                )
        return {"selfplay": selfplay[:GAMES_LISTED], "evaluation": evaluation[:GAMES_LISTED]}

    def _newest_matches(self) -> list[MatchRecord]:
        folder = evals_dir(self.run_dir)
        try:
            names = [n for n in os.listdir(folder) if n.startswith("match-") and n.endswith(".json")]
        except FileNotFoundError:
            return []
        found = []
        for name in sorted(names, reverse=True)[:GAMES_LISTED]:
            try:
                found.append(from_json(MatchRecord, (folder / name).read_bytes()))
            except (OSError, ValueError, TypeError):
                continue
        return found

    def replay(self, kind: str, game_id: str) -> dict[str, Any]:
        """One game, move by move: its boards, and for a self-play game the shard's own last board."""
        game = self.game()
        source, _, index_text = game_id.rpartition(":")
        if not index_text.isdigit() or not source or "/" in source or source.startswith("."):
            raise KeyError(game_id)
        index = int(index_text)
        if kind == "selfplay":
            try:
                records = read_shard(
                    replay_dir(self.run_dir) / source,
                    game=game.name,
                    planes_shape=game.planes_shape,
                    num_actions=game.num_actions,
                )
            except ShardError:
                raise KeyError(game_id) from None
            if index >= records.games:
                raise KeyError(game_id)
            return boards.replay_stored(game, records, index).to_dict(game)
        if kind == "evaluation":
            for record in self._newest_matches():
                if record.id == source and index < len(record.sample_games):
                    sample = record.sample_games[index]
                    return _replay_moves(game, [int(a) for a in sample["moves"]], int(sample["result"]))
        raise KeyError(game_id)

    # Play.

    def play(self, spec: str, moves: list[int], game_name: str | None, side: int = 0) -> dict[str, Any]:
        """The position after `moves`, and the opponent's replies while it is to move (the person plays
        `side`: 0 first, 1 second); for a network the run's game, for a baseline any game this install
        knows. ValueError on an illegal move."""
        game, player = self._player(spec, game_name)
        state = game.state_after(moves)
        moves = list(moves)
        replies = []
        while not game.is_terminal(state) and int(game.to_play(state[None])[0]) != side:
            action = int(np.asarray(player.choose(state[None], np.random.default_rng()))[0])
            moves.append(action)
            state = game.play(state[None], np.array([action]))[0]
            replies.append({"action": action, "label": game.action_to_str(action)})
        return {
            "game": game.name,
            "opponent": player.name,
            "side": side,
            "moves": [{"action": a, "label": game.action_to_str(a)} for a in moves],
            "replies": replies,
            "board": boards.board(game, state),
            "legal": boards.legal_moves(game, state),
            "to_play": int(game.to_play(state[None])[0]),
            "result": boards.outcome(game, state),
        }

    def _player(self, spec: str, game_name: str | None) -> tuple[Game, Any]:
        from azjobs.players import load_player

        parsed = PlayerSpec.parse(spec)
        run_game = read_file(self.run_dir)
        if not parsed.is_baseline or game_name is None:
            game_name = None  # a network plays the run's game
        newest = latest_file(self.run_dir)
        key = (spec, game_name or "", newest[0] if newest is not None else None)
        if key not in self._players:
            if game_name is not None and (run_game is None or game_name != run_game.game):
                self._players[key] = load_player(spec, game=game_name)
            else:
                self._players[key] = load_player(spec, run_dir=self.run_dir)
        return self._players[key]


def _replay_moves(game: Game, moves: list[int], result: int) -> dict[str, Any]:
    state = game.initial_state()
    shown = [boards.board(game, state)]
    for action in moves:
        state = game.play(state[None], np.array([action]))[0]
        shown.append(boards.board(game, state))
    return boards.Replay(moves, shown, shown[-1], result).to_dict(game)


def shipped_games() -> list[str]:
    return sorted(load_games())

"""`azjobs web`'s JSON endpoints through Flask's test client, on a hand-made run folder and a real Redis:
machines from heartbeats, versions with ratings, games replayed from a shard and from match records,
a game played to the end in every shipped game, and the password rule."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import redis
import torch
from click.testing import CliRunner
from flask.testing import FlaskClient

from azjobs import keys
from azjobs.cli import main
from azjobs.cluster import heartbeat
from azjobs.eval import records
from azjobs.eval.match import play_match
from azjobs.game_records import GameRecords
from azjobs.games import get_game, load_games
from azjobs.net import build_model, to_bytes
from azjobs.players.baselines import OnePlyPlayer, RandomPlayer
from azjobs.run import write_file
from azjobs.settings import Settings
from azjobs.storage.replay import replay_dir
from azjobs.storage.shards import write_shard
from azjobs.storage.weights import WEIGHTS_DIR, file_name, write_atomic
from azjobs.web import boards
from azjobs.web.app import make_app

RUN = "webrun"
GAME = get_game("tictactoe")
SETTINGS = Settings(game="tictactoe", net_blocks=1, net_channels=8, num_simulations=4)


def random_games(count: int, seed: int) -> tuple[GameRecords, list[list[int]]]:
    """`count` random games of tic-tac-toe as a shard stores them, and the moves that were played."""
    rng = np.random.default_rng(seed)
    planes, policy, values, lengths, results, lines = [], [], [], [], [], []
    for _ in range(count):
        state, line = GAME.initial_state(), []
        while not GAME.is_terminal(state):
            legal = GAME.legal_mask(state[None])[0]
            planes.append(GAME.encode(state[None])[0])
            policy.append(legal / legal.sum())
            action = int(rng.choice(np.flatnonzero(legal)))
            line.append(action)
            state = GAME.play(state[None], np.array([action]))[0]
        result = boards.outcome(GAME, state)
        assert result is not None
        values.extend(result * (1 if i % 2 == 0 else -1) for i in range(len(line)))
        lengths.append(len(line))
        results.append(result)
        lines.append(line)
    n = len(values)
    records_ = GameRecords(
        planes=np.stack(planes).astype(np.uint8),
        policy=np.stack(policy).astype(np.float32),
        value=np.array(values, np.float32),
        weights_version=np.full(n, 2, np.int32),
        results=np.array(results, np.int8),
        game_lengths=np.array(lengths, np.int32),
    )
    return records_, lines


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    folder = tmp_path / RUN
    write_file(folder, SETTINGS)
    torch.manual_seed(0)
    for version in (1, 2):
        meta = {"version": version, "step": 50 * (version - 1), "train_seconds": 60.0 * version, "game": GAME.name}
        write_atomic(folder / WEIGHTS_DIR / file_name(version), to_bytes(build_model(GAME, SETTINGS), meta))
    return folder


@pytest.fixture
def shard_lines(run_dir: Path) -> tuple[str, list[list[int]]]:
    found, lines = random_games(5, seed=3)
    info = write_shard(
        replay_dir(run_dir),
        found,
        game=GAME.name,
        job_id="j1",
        worker="w",
        planes_shape=GAME.planes_shape,
        num_actions=GAME.num_actions,
    )
    return info.name, lines


@pytest.fixture
def client(run_dir: Path, redis_url: str) -> FlaskClient:
    app = make_app(run_dir, lambda: redis.Redis.from_url(redis_url))
    return app.test_client()


def test_machines_show_every_role_with_host_device_and_figures(client: FlaskClient, redis_client: redis.Redis) -> None:
    heartbeat.FACTS.clear()
    heartbeat.beat(
        redis_client,
        RUN,
        "gpu-serve",
        "gpu-1",
        {
            "device": "cuda:0",
            "cuda": "NVIDIA H200",
            "gpu_memory_mb": 1024,
            "gpu_memory_total_mb": 143771,
            "batches_per_s": 12.5,
            "batch_fill": 0.9,
            "evals_per_s": 1500,
        },
    )
    heartbeat.beat(
        redis_client, RUN, "trainer", "gpu-1", {"device": "cpu", "step": 120, "version": 3, "policy_loss": 1.25}
    )
    heartbeat.beat(redis_client, RUN, "worker", f"{RUN}.cpu-7", {"evaluator": "remote", "jobs_done": 4, "job": ""})
    redis_client.hset(keys.stats(RUN), mapping={"games": 40, "positions": 300})
    redis_client.set(keys.weights_latest(RUN), 2)
    found = client.get("/api/overview").get_json()
    assert found["redis"] is True and found["stats"]["games"] == "40" and found["weights_version"] == 2
    rows = {m["role"]: m for m in found["machines"]}
    assert set(rows) == {"gpu-serve", "trainer", "worker"}
    server = rows["gpu-serve"]
    assert server["device"] == "NVIDIA H200 (cuda:0), 1,024 of 143,771 MiB" and server["state"] == "alive"
    for figure in ("12.5 batches/s", "fill 0.90", "1,500 evals/s"):
        assert figure in server["figures"]
    assert rows["trainer"]["device"] == "cpu" and "step 120" in rows["trainer"]["figures"]
    assert "loss 1.250" in rows["trainer"]["figures"]
    assert rows["worker"]["device"] == "cpu" and "jobs done 4" in rows["worker"]["figures"]
    for row in rows.values():  # every beat carries this process's own CPU and memory
        assert row["host"] and row["memory"].endswith(" MiB") and row["cpu"].endswith("%")
    assert set(found["queues"]) == {"selfplay", "eval"}
    assert found["history"][-1]["games"] == 40


def test_status_prints_the_same_machines(redis_client: redis.Redis) -> None:
    from rich.console import Console

    from azjobs.cluster import status

    fields = {"device": "cuda:1", "cuda": "NVIDIA H200", "gpu_memory_mb": 2048, "gpu_memory_total_mb": 143771}
    heartbeat.beat(redis_client, RUN, "gpu-serve", "gpu-1", fields)
    console = Console(record=True, width=200, color_system=None)
    console.print(status.render(status.collect(redis_client, RUN)))
    text = console.export_text()
    assert "machines" in text and "device NVIDIA H200 (cuda:1), 2,048 of 143,771 MiB" in text
    [row] = status.machines(status.collect(redis_client, RUN))
    assert f"{row['host']}  CPU {row['cpu']}  memory {row['memory']}" in text


def test_overview_without_redis_still_answers(run_dir: Path) -> None:
    def unreachable() -> redis.Redis:
        raise redis.ConnectionError("no Redis here")

    found = make_app(run_dir, unreachable).test_client().get("/api/overview").get_json()
    assert found["redis"] is False and found["machines"] == [] and found["game"] == "tictactoe"


def test_networks_list_versions_with_ratings_and_games(
    client: FlaskClient, run_dir: Path, shard_lines: tuple[str, list[list[int]]]
) -> None:
    rng = np.random.default_rng(0)
    result = play_match(GAME, OnePlyPlayer(GAME), RandomPlayer(GAME), 8, rng, opening_moves=1)
    result = type(result)(**{**result.__dict__, "a": "net:2"})  # as if version 2 had played
    versions = {"net:2": {"version": 2, "step": 50, "train_seconds": 120.0}}
    records.save(None, RUN, run_dir, dataclasses.replace(result, purpose="schedule", sims=4, versions=versions))
    found = client.get("/api/networks").get_json()
    rows = {v["version"]: v for v in found["versions"]}
    assert set(rows) == {1, 2}
    assert rows[2]["step"] == 50 and rows[2]["train_seconds"] == 120.0 and rows[2]["selfplay_games"] == 5
    assert rows[1]["rating"] is None and rows[2]["rating"]["games"] == 8 and rows[2]["rating"]["se"] > 0
    assert [p["player"] for p in found["chart"]["rating_points"]] == ["net:2"]
    assert "random" in found["chart"]["baselines"]


def test_selfplay_game_replays_to_the_shards_positions(
    client: FlaskClient, shard_lines: tuple[str, list[list[int]]]
) -> None:
    name, lines = shard_lines
    listed = client.get("/api/games").get_json()["selfplay"]
    assert len(listed) == 5 and listed[0]["id"] == f"{name}:4"  # newest first
    for index, line in enumerate(lines):
        replay = client.get(f"/api/game/selfplay/{name}:{index}").get_json()
        found = [m["action"] for m in replay["moves"]]
        assert found[:-1] == line[:-1]  # a shard keeps positions: every move but the last is certain
        assert boards.outcome(GAME, GAME.state_after(found)) == replay["result"]  # the last: one that ends it so
        assert replay["boards"][-2] == replay["stored_final"]  # before the last move: the shard's last position
        assert replay["boards"][-2] == boards.board(GAME, GAME.state_after(line[:-1]))
    assert client.get(f"/api/game/selfplay/{name}:9").status_code == 404
    assert client.get("/api/game/selfplay/..%2Fsettings.toml:0").status_code == 404


def test_evaluation_games_replay_from_match_records(client: FlaskClient, run_dir: Path) -> None:
    rng = np.random.default_rng(1)
    result = play_match(GAME, OnePlyPlayer(GAME), RandomPlayer(GAME), 6, rng, opening_moves=2)
    record = dataclasses.replace(result, purpose="manual", sims=0, versions={})
    records.save(None, RUN, run_dir, record)
    listed = client.get("/api/games").get_json()["evaluation"]
    assert len(listed) == 4 and listed[0]["title"] in ("oneply vs random (manual)", "random vs oneply (manual)")
    for entry, sample in zip(listed, result.sample_games):
        replay = client.get(f"/api/game/evaluation/{entry['id']}").get_json()
        assert [m["action"] for m in replay["moves"]] == sample["moves"]
        final = GAME.state_after(sample["moves"])
        assert boards.outcome(GAME, final) == sample["result"] == replay["result"]


@pytest.mark.parametrize("game_name", sorted(load_games()))
def test_a_game_played_to_the_end_in_every_shipped_game(client: FlaskClient, game_name: str) -> None:
    game = get_game(game_name)
    moves: list[int] = []
    for _ in range(game.num_actions * 2):
        body = client.post("/api/play", json={"game": game_name, "opponent": "random", "moves": moves}).get_json()
        assert body["game"] == game_name and len(body["board"]) == game.planes_shape[1]
        moves = [m["action"] for m in body["moves"]]
        if body["result"] is not None:
            break
        assert body["legal"] and body["to_play"] == 0
        on_board = [m for m in body["legal"] if m["cell"] is not None]
        assert on_board or game_name.startswith("othello")  # othello's pass is the only move off the board
        moves.append((on_board or body["legal"])[0]["action"])
    assert body["result"] is not None and body["legal"] == []
    assert boards.outcome(game, game.state_after(moves)) == body["result"]


def test_play_against_the_network_and_refusals(client: FlaskClient) -> None:
    body = client.post("/api/play", json={"moves": [], "side": 1}).get_json()  # the network moves first
    assert body["opponent"] == "net:2" and len(body["moves"]) == 1 and body["to_play"] == 1
    assert client.post("/api/play", json={"moves": [4, 4]}).status_code == 400  # illegal
    assert client.post("/api/play", json={"moves": "4"}).status_code == 400
    refused = client.post("/api/play", json={"moves": [], "game": "connect4", "opponent": "net"})
    assert refused.get_json()["game"] == "tictactoe"  # a network plays its run's game


def test_password_guards_every_route_and_only_play_is_posted(run_dir: Path, redis_url: str) -> None:
    app = make_app(run_dir, lambda: redis.Redis.from_url(redis_url), password="pw-1")
    web = app.test_client()
    assert web.get("/").status_code == 401 and web.get("/api/info").status_code == 401
    assert web.get("/api/info?token=wrong").status_code == 401
    auth = {"Authorization": "Basic " + base64.b64encode(b"azjobs:pw-1").decode()}
    assert web.get("/api/info", headers=auth).status_code == 200
    assert web.get("/?token=pw-1").status_code == 200
    assert web.get("/static/app.js").status_code == 200  # the cookie the token set
    assert web.post("/api/info", headers=auth).status_code == 405
    assert web.delete("/api/overview", headers=auth).status_code == 405


def test_page_and_assets_ship_in_the_package(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    assert 'src="static/app.js"' in page and "http" not in page.replace('"http://www.w3.org', "")
    for asset in ("app.js", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200


def test_web_command_refuses_the_lan_without_a_password(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZJOBS_WEB_PASSWORD", raising=False)
    result = CliRunner().invoke(main, ["web", "--run-dir", str(run_dir), "--bind", "0.0.0.0"])
    assert result.exit_code != 0
    assert "refusing to serve the web page on 0.0.0.0 without a password" in result.output
    assert "AZJOBS_WEB_PASSWORD" in result.output

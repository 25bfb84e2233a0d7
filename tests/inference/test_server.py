"""The inference server in a thread against a real Redis, with remote clients and a local oracle."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import redis
import torch

from azjobs import keys, wire
from azjobs.cluster import heartbeat
from azjobs.cluster.clock import RedisClock
from azjobs.errors import AzjobsError
from azjobs.games.tictactoe import TICTACTOE
from azjobs.inference import server
from azjobs.inference.client import InferenceClient
from azjobs.inference.local import LocalEvaluator
from azjobs.inference.runner import NullRunner, RunnerOptions
from azjobs.net import build_model, to_bytes
from azjobs.run import Run
from azjobs.settings import Settings
from azjobs.storage.weights import WeightStore
from azjobs.wire import encode_request

RUN = "srv"
FP32 = RunnerOptions(precision="fp32", channels_last="off")  # the same arithmetic as the local oracle
SETTINGS = Settings(
    game="tictactoe",
    net_blocks=1,
    net_channels=8,
    inference_batch_size=8,
    inference_wait_ms=5.0,
    max_request_positions=64,
)


def _weights(seed: int, version: int) -> bytes:
    torch.manual_seed(seed)
    return to_bytes(build_model(TICTACTOE, SETTINGS), {"version": version})


def _planes(k: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, size=(k, *TICTACTOE.planes_shape), dtype=np.uint8)


def _assert_same(got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray]) -> None:
    # Batches of other sizes may take other conv kernels: equal up to float rounding.
    for g, w in zip(got, want):
        assert g.dtype == np.float32 and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


@pytest.fixture
def store(redis_client: redis.Redis, tmp_path: Path) -> WeightStore:
    weights = WeightStore(redis_client, RUN, tmp_path, keep_in_redis=3)
    weights.publish(1, _weights(seed=1, version=1))
    return weights


@contextmanager
def serving(
    url: str,
    run_dir: Path,
    settings: Settings = SETTINGS,
    max_batches: int | None = None,
    options: RunnerOptions = FP32,
    name: str | None = None,
) -> Iterator[list[str]]:
    """The server running in a thread with its own connection; yields its log lines."""
    lines: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    client = redis.Redis.from_url(url)

    def target() -> None:
        try:
            server.run(
                settings,
                Run(RUN, run_dir, client),
                device="cpu",
                options=options,
                stop=stop,
                max_batches=max_batches,
                log=lines.append,
                name=name,
            )
        except BaseException as e:  # handed to the test thread below
            errors.append(e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield lines
    finally:
        if max_batches is None:
            stop.set()
        thread.join(timeout=10)
        client.close()
    assert not thread.is_alive(), "server did not stop"
    if errors:
        raise errors[0]


def _gpu_serve_beat(client: redis.Redis) -> dict[str, str]:
    (beat,) = [b for b in heartbeat.read_all(client, RUN) if b["role"] == server.ROLE]
    return beat


def test_clients_in_threads_get_their_own_answers(
    redis_url: str, redis_client: redis.Redis, store: WeightStore, tmp_path: Path
) -> None:
    oracle = LocalEvaluator.from_bytes(TICTACTOE, store.load(1))
    failures: list[BaseException] = []
    clients = [InferenceClient(redis.Redis.from_url(redis_url), RUN, client_id=f"c{i}") for i in range(3)]

    def work(i: int) -> None:
        try:
            for step in range(4):
                planes = _planes(1 + (i + step) % 5, seed=10 * i + step)
                _assert_same(clients[i].evaluate(planes), oracle.evaluate(planes))
                assert clients[i].last_version == 1
        except BaseException as e:
            failures.append(e)

    with serving(redis_url, tmp_path):
        threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
    assert not failures, failures[0]
    for c in clients:  # nothing stray left on anyone's reply list
        assert redis_client.llen(keys.reply(RUN, c.client_id)) == 0 and c.dropped == 0
        c.close()
        c.redis.close()


def test_replies_go_to_their_sender_only(
    redis_url: str, redis_client: redis.Redis, store: WeightStore, tmp_path: Path
) -> None:
    oracle = LocalEvaluator.from_bytes(TICTACTOE, store.load(1))
    mine = InferenceClient(redis_client, RUN, client_id="mine")
    other = InferenceClient(redis_client, RUN, client_id="other")
    theirs = _planes(4, seed=9)
    their_id = other.submit(theirs)
    with serving(redis_url, tmp_path):
        for seed in (1, 2):
            planes = _planes(3, seed=seed)
            _assert_same(mine.evaluate(planes), oracle.evaluate(planes))
        assert redis_client.llen(keys.reply(RUN, "other")) <= 1  # its own answer, nothing of mine
        _assert_same(other.receive(their_id), oracle.evaluate(theirs))
    assert redis_client.llen(keys.reply(RUN, "other")) == 0 and other.dropped == 0 and mine.dropped == 0
    redis_client.rpush(keys.reply(RUN, "mine"), b"left over")
    mine.close()  # deletes its reply list
    assert not redis_client.exists(keys.reply(RUN, "mine"))
    other.close()


def test_reply_lists_expire(redis_url: str, redis_client: redis.Redis, store: WeightStore, tmp_path: Path) -> None:
    client = InferenceClient(redis_client, RUN, client_id="gone")
    client.submit(_planes(1, seed=1))
    with serving(redis_url, tmp_path, max_batches=1):
        pass
    ttl = redis_client.ttl(keys.reply(RUN, "gone"))  # nobody read it: it goes away by itself
    assert 0 < ttl <= server.REPLY_TTL_S


def test_a_reply_list_drained_and_created_again_keeps_its_expiry(
    redis_url: str, redis_client: redis.Redis, store: WeightStore, tmp_path: Path
) -> None:
    client = InferenceClient(redis_client, RUN, client_id="drains")
    reply_key = keys.reply(RUN, "drains")
    with serving(redis_url, tmp_path):
        client.evaluate(_planes(1, seed=1))  # its reply list is drained: Redis deletes the empty list
        assert not redis_client.exists(reply_key)
        client.submit(_planes(2, seed=2))  # answered by the same server, moments later; then the client dies
        _wait_for(lambda: redis_client.exists(reply_key), "the second reply")
    assert 0 < redis_client.ttl(reply_key) <= server.REPLY_TTL_S  # it goes away by itself


def test_malformed_requests_are_dropped_and_counted(
    redis_url: str, redis_client: redis.Redis, store: WeightStore, tmp_path: Path
) -> None:
    oracle = LocalEvaluator.from_bytes(TICTACTOE, store.load(1))
    requests = keys.requests(RUN)
    redis_client.rpush(requests, b"junk", encode_request(1, "x", np.zeros((1, 2, 6, 7), np.uint8)))
    client = InferenceClient(redis_client, RUN)
    with serving(redis_url, tmp_path) as lines:
        planes = _planes(4, seed=3)
        _assert_same(client.evaluate(planes), oracle.evaluate(planes))
        redis_client.rpush(requests, encode_request(2, "y", np.zeros((65, 2, 3, 3), np.uint8)))  # oversized
        _assert_same(client.evaluate(planes), oracle.evaluate(planes))
    assert _gpu_serve_beat(redis_client)["dropped"] == "3"
    drops = [line for line in lines if "dropped a malformed request" in line]
    assert len(drops) == 3 and all("\n" not in line for line in drops)


def test_new_weights_are_swapped_in_between_batches(
    redis_url: str, redis_client: redis.Redis, store: WeightStore, tmp_path: Path
) -> None:
    planes = _planes(5, seed=4)
    client = InferenceClient(redis_client, RUN)
    with serving(redis_url, tmp_path) as lines:
        first = LocalEvaluator.from_bytes(TICTACTOE, store.load(1))
        _assert_same(client.evaluate(planes), first.evaluate(planes))
        assert client.last_version == 1
        store.publish(2, _weights(seed=2, version=2))
        deadline = time.monotonic() + 10
        while client.last_version != 2 and time.monotonic() < deadline:
            got = client.evaluate(planes)
    assert client.last_version == 2
    _assert_same(got, LocalEvaluator.from_bytes(TICTACTOE, store.load(2)).evaluate(planes))
    assert any("version 2" in line for line in lines)
    assert _gpu_serve_beat(redis_client)["weights_version"] == "2"


def test_waiting_requests_are_served_in_one_batch(
    redis_url: str, redis_client: redis.Redis, store: WeightStore, tmp_path: Path
) -> None:
    settings = SETTINGS.replace(inference_batch_size=32, inference_wait_ms=500.0)
    clients = [InferenceClient(redis_client, RUN, client_id=f"b{i}") for i in range(4)]
    planes = [_planes(2 + i, seed=20 + i) for i in range(4)]
    ids = [c.submit(p) for c, p in zip(clients, planes)]
    with serving(redis_url, tmp_path, settings, max_batches=1):
        pass
    oracle = LocalEvaluator.from_bytes(TICTACTOE, store.load(1))
    for c, p, request_id in zip(clients, planes, ids):
        _assert_same(c.receive(request_id), oracle.evaluate(p))
    beat = _gpu_serve_beat(redis_client)
    assert (beat["batches"], beat["requests"], beat["positions"]) == ("1", "4", str(2 + 3 + 4 + 5))


def test_a_lost_request_is_resent_and_answered_once(
    redis_url: str, redis_client: redis.Redis, store: WeightStore, tmp_path: Path
) -> None:
    oracle = LocalEvaluator.from_bytes(TICTACTOE, store.load(1))
    client = InferenceClient(redis_client, RUN, resend_after_s=0.3)
    lost, doubled, last = _planes(3, seed=5), _planes(2, seed=6), _planes(1, seed=7)
    lost_id = client.submit(lost)
    assert redis_client.lpop(keys.requests(RUN)) is not None  # a server died holding it
    doubled_id = client.submit(doubled)
    # A request resent while a slow server still held it: both copies get answered.
    redis_client.rpush(keys.requests(RUN), redis_client.lindex(keys.requests(RUN), -1))
    # The lost request is resent while no server runs; from then on the server answers well within a
    # resend period, however slowly a loaded machine starts it (no second resend of either request).
    answers: list[tuple[np.ndarray, np.ndarray]] = []
    waiting = threading.Thread(target=lambda: answers.append(client.receive(lost_id)), daemon=True)
    waiting.start()
    _wait_for(lambda: client.resent == 1, "the lost request resent")
    client.resend_after_s = 10.0
    with serving(redis_url, tmp_path):
        waiting.join(timeout=20)
        assert not waiting.is_alive()
        _assert_same(answers[0], oracle.evaluate(lost))
        assert client.resent == 1
        _assert_same(client.receive(doubled_id), oracle.evaluate(doubled))
        _assert_same(client.evaluate(last), oracle.evaluate(last))
    assert client.dropped == 1  # the second answer to the doubled request
    assert redis_client.llen(keys.reply(RUN, client.client_id)) == 0
    with pytest.raises(ValueError):
        client.receive(doubled_id)  # already received


def test_while_no_server_runs_each_request_waits_once_and_a_late_server_answers_live_ones_only(
    redis_url: str, redis_client: redis.Redis, store: WeightStore, tmp_path: Path
) -> None:
    oracle = LocalEvaluator.from_bytes(TICTACTOE, store.load(1))
    requests = keys.requests(RUN)
    # A sender that is gone: its request was stamped two minutes ago on Redis' clock and never again.
    gone = RedisClock(redis_client).now_us() - 120_000_000
    redis_client.rpush(requests, encode_request(1, "gone", _planes(2, seed=1), sent_us=gone))
    client = InferenceClient(redis.Redis.from_url(redis_url), RUN, client_id="live", resend_after_s=0.05)
    planes = [_planes(k, seed=50 + k) for k in (1, 2, 3)]
    ids = [client.submit(p) for p in planes]
    answers: list[tuple[np.ndarray, np.ndarray]] = []
    waiting = threading.Thread(target=lambda: answers.extend(client.receive(i) for i in ids), daemon=True)
    waiting.start()
    _wait_for(lambda: client.refreshed >= 3 * 20, "twenty resend periods without a server")
    assert redis_client.llen(requests) == 1 + 3  # one copy of each request, however long nobody serves
    assert client.resent == 0
    client.resend_after_s = 10.0  # from now on a server answers well within a resend period
    with serving(redis_url, tmp_path) as lines:
        waiting.join(timeout=20)
        assert not waiting.is_alive()
        _wait_for(
            lambda: any(b.get("stale") == "1" for b in heartbeat.read_all(redis_client, RUN)),
            "the stale request counted",
        )
    for got, p in zip(answers, planes):
        _assert_same(got, oracle.evaluate(p))
    beat = _gpu_serve_beat(redis_client)
    assert (beat["requests"], beat["stale"]) == ("3", "1")
    assert not redis_client.exists(keys.reply(RUN, "gone"))  # nothing answered to nobody
    assert any("dropped 1 stale request" in line for line in lines)
    assert client.dropped == 0 and redis_client.llen(requests) == 0


def test_a_skewed_host_clock_does_not_make_requests_stale(
    redis_url: str, redis_client: redis.Redis, store: WeightStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests are stamped on Redis' clock: a host whose wall clock is ten minutes behind is served."""
    true_ns = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: true_ns() - 600 * 10**9)
    monkeypatch.setattr(time, "time", lambda: time.time_ns() / 1e9)
    oracle = LocalEvaluator.from_bytes(TICTACTOE, store.load(1))
    client = InferenceClient(redis_client, RUN, timeout_s=20)
    planes = _planes(2, seed=61)
    with serving(redis_url, tmp_path):
        _assert_same(client.evaluate(planes), oracle.evaluate(planes))
    assert _gpu_serve_beat(redis_client)["stale"] == "0"


def test_pipelined_requests_are_received_in_any_order(
    redis_url: str, redis_client: redis.Redis, store: WeightStore, tmp_path: Path
) -> None:
    oracle = LocalEvaluator.from_bytes(TICTACTOE, store.load(1))
    client = InferenceClient(redis_client, RUN)
    planes = [_planes(k, seed=30 + k) for k in (1, 2, 3)]
    with serving(redis_url, tmp_path):
        ids = [client.submit(p) for p in planes]
        for request_id, p in reversed(list(zip(ids, planes))):
            _assert_same(client.receive(request_id), oracle.evaluate(p))


def test_server_waits_for_the_first_weights(redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    client = InferenceClient(redis_client, RUN, timeout_s=10)
    with serving(redis_url, tmp_path) as lines:
        request_id = client.submit(_planes(1, seed=7))
        deadline = time.monotonic() + 5
        while not lines and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "waiting for the first weights" in lines[0]
        WeightStore(redis_client, RUN, tmp_path).publish(3, _weights(seed=3, version=3))
        client.receive(request_id)
    assert client.last_version == 3


def test_no_server_is_a_clear_timeout(redis_client: redis.Redis) -> None:
    client = InferenceClient(redis_client, RUN, timeout_s=0.2, resend_after_s=0.1)
    with pytest.raises(AzjobsError, match="gpu-serve"):
        client.evaluate(_planes(1, seed=8))
    # Its copy waited in the list all along: re-stamped in place, never pushed twice.
    assert client.refreshed >= 1 and client.resent == 0 and redis_client.llen(keys.requests(RUN)) == 1


def _wait_for(condition, what: str, timeout_s: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_several_servers_drain_one_list(
    redis_url: str, redis_client: redis.Redis, store: WeightStore, tmp_path: Path
) -> None:
    oracle = LocalEvaluator.from_bytes(TICTACTOE, store.load(1))
    settings = SETTINGS.replace(inference_batch_size=2, inference_wait_ms=0.0)
    client = InferenceClient(redis_client, RUN)
    planes = [_planes(2, seed=100 + i) for i in range(30)]
    ids = [client.submit(p) for p in planes]  # one batch each, all waiting before any server runs
    with serving(redis_url, tmp_path, settings, max_batches=3, name="first"):
        _wait_for(lambda: redis_client.llen(keys.requests(RUN)) < 30, "the first server to start")
        with serving(redis_url, tmp_path, settings, name="second"):
            for request_id, p in zip(ids, planes):
                _assert_same(client.receive(request_id), oracle.evaluate(p))
    beats = {b["id"]: b for b in heartbeat.read_all(redis_client, RUN) if b["role"] == server.ROLE}
    assert beats["first"]["requests"] == "3"  # it stopped after 3 batches; the other served the rest
    assert beats["second"]["requests"] == "27"
    assert client.dropped == 0 and client.resent == 0 and redis_client.llen(keys.reply(RUN, client.client_id)) == 0


def test_a_request_that_overflows_the_batch_waits_for_the_next(
    redis_url: str, redis_client: redis.Redis, store: WeightStore, tmp_path: Path
) -> None:
    oracle = LocalEvaluator.from_bytes(TICTACTOE, store.load(1))
    settings = SETTINGS.replace(inference_batch_size=8, inference_wait_ms=500.0)
    client = InferenceClient(redis_client, RUN)
    planes = [_planes(3, seed=40 + i) for i in range(5)]
    ids = [client.submit(p) for p in planes]
    with serving(redis_url, tmp_path, settings, max_batches=2):
        pass
    beat = _gpu_serve_beat(redis_client)
    # 3 + 3 fit a batch of 8, the third request waits for the next batch; the server stopped
    # after two batches and gave back the one it held, at the head of the list, untouched.
    assert (beat["batches"], beat["requests"], beat["positions"]) == ("2", "4", "12")
    assert float(beat["batch_fill"]) == pytest.approx(0.75)
    assert redis_client.llen(keys.requests(RUN)) == 1
    with serving(redis_url, tmp_path, settings):
        for request_id, p in zip(ids, planes):
            _assert_same(client.receive(request_id), oracle.evaluate(p))
    assert client.resent == 0


def test_queue_wait_is_measured_from_the_send_time(
    redis_url: str, redis_client: redis.Redis, store: WeightStore, tmp_path: Path
) -> None:
    sent = wire.now_us() - 2_000_000  # a request that has waited two seconds in the list
    redis_client.rpush(keys.requests(RUN), encode_request(1, "waiter", _planes(1, seed=1), sent_us=sent))
    with serving(redis_url, tmp_path, max_batches=1):
        pass
    beat = _gpu_serve_beat(redis_client)
    assert 2000 <= float(beat["queue_wait_ms"]) < 60_000
    assert float(beat["forward_cpu_s"]) > 0 and float(beat["cpu_s"]) >= float(beat["forward_cpu_s"])


def test_precision_and_layout_are_chosen_by_timing_and_logged(
    redis_url: str, redis_client: redis.Redis, store: WeightStore, tmp_path: Path
) -> None:
    oracle = LocalEvaluator.from_bytes(TICTACTOE, store.load(1))
    client = InferenceClient(redis_client, RUN)
    planes = _planes(6, seed=12)
    with serving(redis_url, tmp_path, options=RunnerOptions()) as lines:
        logits, values = client.evaluate(planes)
    (chosen,) = [line for line in lines if "chosen by timing" in line]
    for candidate in ("fp32 ", "fp32+channels_last", "bf16 ", "bf16+channels_last"):
        assert candidate in chosen
    want_logits, want_values = oracle.evaluate(planes)  # bf16 keeps about 3 significant digits
    np.testing.assert_allclose(logits, want_logits, rtol=0.05, atol=0.05)
    np.testing.assert_allclose(values, want_values, rtol=0.05, atol=0.05)
    assert _gpu_serve_beat(redis_client)["precision"] in chosen


def test_many_clients_over_many_batches_get_each_answer_once(
    redis_url: str, redis_client: redis.Redis, store: WeightStore, tmp_path: Path
) -> None:
    """The collector, the forward thread and the sender each hold a batch at times: every request is still
    answered exactly once, with its own rows."""
    oracle = LocalEvaluator.from_bytes(TICTACTOE, store.load(1))
    settings = SETTINGS.replace(inference_batch_size=8, inference_wait_ms=1.0)
    clients = [InferenceClient(redis.Redis.from_url(redis_url), RUN, client_id=f"m{i}") for i in range(4)]
    planes = {(i, j): _planes(1 + (i + j) % 4, seed=1000 + 10 * i + j) for i in range(4) for j in range(12)}
    with serving(redis_url, tmp_path, settings):
        ids = {key: clients[key[0]].submit(p) for key, p in planes.items()}  # all in flight at once
        for key, request_id in ids.items():
            _assert_same(clients[key[0]].receive(request_id), oracle.evaluate(planes[key]))
    beat = _gpu_serve_beat(redis_client)
    assert beat["requests"] == str(len(planes)) and int(beat["batches"]) > 1
    for c in clients:
        assert c.dropped == 0 and c.resent == 0 and redis_client.llen(keys.reply(RUN, c.client_id)) == 0
        c.close()
        c.redis.close()


class GatedRunner(NullRunner):
    """A stand-in network whose first forward pass lasts until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__(TICTACTOE.planes_shape, TICTACTOE.num_actions, 8, slots=server.SLOTS)
        self.entered, self.gate = threading.Event(), threading.Event()
        self.forwards: list[int] = []  # the slot of each pass, in order

    def forward(self, n: int, slot: int = 0) -> tuple[np.ndarray, np.ndarray]:
        self.entered.set()
        assert self.gate.wait(timeout=30), "the test never opened the gate"
        self.forwards.append(slot)
        return super().forward(n, slot)


@contextmanager
def serving_with(url: str, store: WeightStore, runner: GatedRunner, settings: Settings) -> Iterator[threading.Event]:
    stop, errors = threading.Event(), []
    client = redis.Redis.from_url(url)

    def target() -> None:
        try:
            server.serve(settings, client, RUN, store, runner, stop=stop, log=lambda line: None, name="gated")
        except BaseException as e:  # handed to the test thread below
            errors.append(e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        runner.gate.set()
        thread.join(timeout=10)
        client.close()
    assert not thread.is_alive() and not errors, errors


def _request_ids(raws: list[bytes]) -> list[int]:
    return [wire.decode_request(raw, max_positions=64, planes_shape=TICTACTOE.planes_shape).request_id for raw in raws]


def test_the_next_batches_are_collected_while_a_forward_pass_runs(
    redis_url: str, redis_client: redis.Redis, store: WeightStore
) -> None:
    runner = GatedRunner()
    settings = SETTINGS.replace(inference_batch_size=2, inference_wait_ms=0.0)
    client = InferenceClient(redis_client, RUN)
    planes = [_planes(2, seed=60 + i) for i in range(3)]  # one batch each
    with serving_with(redis_url, store, runner, settings):
        ids = [client.submit(p) for p in planes]
        assert runner.entered.wait(timeout=20)
        # The first pass has not ended, yet the other two requests are off the list, decoded into the other
        # two batch buffers.
        _wait_for(lambda: redis_client.llen(keys.requests(RUN)) == 0, "the collector to take the next batches")
        for p in planes[1:]:
            _wait_for(lambda p=p: any(np.array_equal(b[:2], p) for b in runner.buffers), "a collected batch")
        assert runner.forwards == []
        runner.gate.set()
        for request_id, p in zip(ids, planes):
            logits, values = client.receive(request_id)
            assert logits.shape == (2, TICTACTOE.num_actions) and values.shape == (2,)
        _wait_for(lambda: len(runner.forwards) == 3, "three forward passes")
    assert sorted(runner.forwards) == [0, 1, 2]  # each batch in a buffer of its own
    assert client.dropped == 0 and client.resent == 0
    beat = _gpu_serve_beat(redis_client)
    assert beat["batches"] == "3" and {"idle_ms", "send_ms", "forward_busy"} <= beat.keys()


def test_stopping_gives_back_collected_batches_in_order(
    redis_url: str, redis_client: redis.Redis, store: WeightStore
) -> None:
    runner = GatedRunner()
    settings = SETTINGS.replace(inference_batch_size=2, inference_wait_ms=0.0)
    client = InferenceClient(redis_client, RUN)
    planes = [_planes(2, seed=70 + i) for i in range(5)]
    with serving_with(redis_url, store, runner, settings) as stop:
        ids = [client.submit(p) for p in planes]
        assert runner.entered.wait(timeout=20)
        # One batch in the forward pass, two collected in the other buffers; the rest wait in the list.
        _wait_for(lambda: redis_client.llen(keys.requests(RUN)) == 2, "the collector to fill every buffer")
        stop.set()
        runner.gate.set()
        logits, _ = client.receive(ids[0])  # the batch that was running is still answered
        assert logits.shape == (2, TICTACTOE.num_actions)
    assert runner.forwards == [runner.forwards[0]]  # nothing else ran
    left = redis_client.lrange(keys.requests(RUN), 0, -1)
    assert _request_ids(left) == ids[1:]  # given back at the head of the list, in their order


def test_requests_as_bits_and_as_bytes_share_a_batch(
    redis_url: str, redis_client: redis.Redis, store: WeightStore, tmp_path: Path
) -> None:
    """Planes of 0/1 travel as bits, others as bytes (wire.PLANES_BITS / PLANES_RAW): the network sees the same."""
    oracle = LocalEvaluator.from_bytes(TICTACTOE, store.load(1))
    settings = SETTINGS.replace(inference_batch_size=32, inference_wait_ms=500.0)
    client = InferenceClient(redis_client, RUN)
    planes = [_planes(3, seed=80), np.full((2, *TICTACTOE.planes_shape), 2, np.uint8), _planes(4, seed=81)]
    ids = [client.submit(p) for p in planes]
    encodings = [
        wire.decode_request(raw, max_positions=64, planes_shape=TICTACTOE.planes_shape).encoding
        for raw in redis_client.lrange(keys.requests(RUN), 0, -1)
    ]
    assert encodings == [wire.PLANES_BITS, wire.PLANES_RAW, wire.PLANES_BITS]
    with serving(redis_url, tmp_path, settings, max_batches=1):
        pass
    for request_id, p in zip(ids, planes):
        _assert_same(client.receive(request_id), oracle.evaluate(p))
    assert _gpu_serve_beat(redis_client)["requests"] == "3"


def test_a_request_built_in_place_goes_out_with_the_next_receive(
    redis_url: str, redis_client: redis.Redis, store: WeightStore, tmp_path: Path
) -> None:
    oracle = LocalEvaluator.from_bytes(TICTACTOE, store.load(1))
    client = InferenceClient(redis_client, RUN, planes_shape=TICTACTOE.planes_shape)
    planes = [_planes(2, seed=90), _planes(3, seed=91)]
    for slot, p in enumerate(planes):
        client.planes_buffer(slot, len(p))[:] = p
    ids = [client.submit_buffer(slot, len(p)) for slot, p in enumerate(planes)]
    assert redis_client.llen(keys.requests(RUN)) == 0  # held: one write with the BLPOP that follows
    with serving(redis_url, tmp_path):
        for request_id, p in zip(ids, planes):
            logits, values, version = client.receive_reply(request_id)
            _assert_same((logits, values), oracle.evaluate(p))
            assert version == 1
    assert client.dropped == 0 and client.resent == 0


def test_an_asynchronous_runner_answers_each_request_once(
    redis_url: str, redis_client: redis.Redis, store: WeightStore
) -> None:
    """A runner that computes while the CPU works (CUDA; here a NullRunner with a forward time): every request
    is still answered once, with its own rows, and stopping pushes the replies of the last pass."""
    runner = NullRunner(TICTACTOE.planes_shape, TICTACTOE.num_actions, 8, slots=server.SLOTS, forward_s=0.002)
    assert runner.asynchronous
    settings = SETTINGS.replace(inference_batch_size=8, inference_wait_ms=1.0)
    clients = [InferenceClient(redis.Redis.from_url(redis_url), RUN, client_id=f"a{i}") for i in range(3)]
    sizes = {(i, j): 1 + (i + j) % 4 for i in range(3) for j in range(10)}
    stop, errors = threading.Event(), []
    serve_client = redis.Redis.from_url(redis_url)

    def target() -> None:
        try:
            server.serve(settings, serve_client, RUN, store, runner, stop=stop, log=lambda line: None, name="async")
        except BaseException as e:  # handed to the test thread below
            errors.append(e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        ids = {key: clients[key[0]].submit(_planes(k, seed=key[1])) for key, k in sizes.items()}
        for key, request_id in ids.items():
            logits, values = clients[key[0]].receive(request_id)
            assert logits.shape == (sizes[key], TICTACTOE.num_actions) and values.shape == (sizes[key],)
    finally:
        stop.set()
        thread.join(timeout=10)
        serve_client.close()
    assert not thread.is_alive() and not errors, errors
    assert _gpu_serve_beat(redis_client)["requests"] == str(len(sizes))
    for c in clients:
        assert c.dropped == 0 and c.resent == 0 and redis_client.llen(keys.reply(RUN, c.client_id)) == 0
        c.close()
        c.redis.close()

"""gpu-serve takes a weights version of another size (the run's network grew) and serves it."""

from __future__ import annotations

import time
from pathlib import Path

import redis
import torch
from test_server import RUN, _assert_same, _planes, _weights, serving

from azjobs.games.tictactoe import TICTACTOE
from azjobs.inference.client import InferenceClient
from azjobs.inference.local import LocalEvaluator
from azjobs.net.grow import grown
from azjobs.net.weights import model_from_bytes, to_bytes
from azjobs.storage.weights import WeightStore


def test_a_grown_version_is_served(redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    store = WeightStore(redis_client, RUN, tmp_path, keep_in_redis=3)
    store.publish(1, _weights(seed=1, version=1))
    small, _ = model_from_bytes(TICTACTOE, store.load(1))
    big = grown(small, 2, 16, seed=2)
    with torch.no_grad():  # trained on after the switch: no longer the small network's function
        for p in big.parameters():
            p.add_(0.05 * torch.randn_like(p))
    planes = _planes(5, seed=4)
    client = InferenceClient(redis_client, RUN)
    with serving(redis_url, tmp_path) as lines:
        _assert_same(client.evaluate(planes), LocalEvaluator.from_bytes(TICTACTOE, store.load(1)).evaluate(planes))
        store.publish(2, to_bytes(big, {"version": 2}))
        deadline = time.monotonic() + 10
        while client.last_version != 2 and time.monotonic() < deadline:
            got = client.evaluate(planes)
    assert client.last_version == 2
    _assert_same(got, LocalEvaluator.from_bytes(TICTACTOE, store.load(2)).evaluate(planes))
    assert "network is now 2 blocks x 16 channels" in lines
    assert any("now serving weights version 2" in line for line in lines)

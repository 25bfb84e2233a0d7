"""net_grow_schedule in the trainer: small versions before the mark, grown ones after, the switch keeping
the network's outputs, and a resume after it building the grown network from its checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import redis
import torch
from test_trainer import GAME, SETTINGS, add_shard, quiet_trainer, train

from azjobs.inference.local import LocalEvaluator
from azjobs.net import read_metadata
from azjobs.storage.weights import WeightStore, versions_in


def sizes(client: redis.Redis, run_dir: Path) -> dict[int, tuple[int, int]]:
    """Weights version -> (blocks, channels) its metadata names."""
    store = WeightStore(client, run_dir.name, run_dir)
    metas = {v: read_metadata(store.load(v)) for v in versions_in(run_dir / "weights")}
    return {v: (int(m["blocks"]), int(m["channels"])) for v, m in metas.items()}


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_the_network_grows_at_its_mark(redis_client: redis.Redis, tmp_path: Path, ema_decay: float) -> None:
    run_dir = tmp_path / "grow"
    first = add_shard(redis_client, run_dir, seed=0).positions
    settings = SETTINGS.replace(net_grow_schedule=f"{first + 1}:2x16", ema_decay=ema_decay)
    _, logs = train(redis_client, run_dir, settings, max_steps=6)
    assert sizes(redis_client, run_dir) == {1: (1, 8), 2: (1, 8), 3: (1, 8)}  # below the mark: as set
    assert not any("grows" in line for line in logs)

    # New games pass the mark: the next step trains the grown network, which starts as the last version.
    add_shard(redis_client, run_dir, seed=1)
    logs = []
    t = quiet_trainer(redis_client, run_dir, settings, logs)
    t.refresh()
    t.grow_if_due()  # what step() does first
    grew = f"trainer: the network grows from 1x8 to 2x16 at {t.counts().made} positions made"
    assert grew in logs and t.learner.size == (2, 16)
    if ema_decay:
        assert (t.learner.averaged_model.blocks, t.learner.averaged_model.channels) == (2, 16)
    planes = np.random.default_rng(0).integers(0, 2, size=(32, *GAME.planes_shape), dtype=np.uint8)
    last_small = LocalEvaluator.from_bytes(GAME, WeightStore(redis_client, run_dir.name, run_dir).load(3))
    with torch.no_grad():
        first_grown = [a.numpy() for a in t.learner.published.eval()(torch.from_numpy(planes))]
    for got, want in zip(first_grown, last_small.evaluate(planes)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    for _ in range(5):  # to step 11: version 4 at step 9, checkpoints at 10 and 11
        t.step()
    t.close()
    assert sizes(redis_client, run_dir) == {1: (1, 8), 2: (1, 8), 3: (1, 8), 4: (2, 16)}

    # A resume after the switch builds the grown network from the checkpoint and trains it on.
    state, logs = train(redis_client, run_dir, settings, max_steps=15)
    assert any(line.startswith("trainer: resumed from ckpt-000000011") for line in logs)
    assert not any("grows" in line for line in logs)
    assert state.step == 15 and sizes(redis_client, run_dir)[5] == (2, 16)

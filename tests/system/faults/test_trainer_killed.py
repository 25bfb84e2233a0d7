"""The trainer killed (SIGKILL) and started again: it resumes from its checkpoint with its optimizer
state, and the published weights versions only go up."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import redis
from harness import TINY, TRAINS, Roles, wait_until
from safetensors import safe_open

from azjobs import keys
from azjobs.storage.checkpoints import checkpoint_paths
from azjobs.storage.weights import versions_in


def checkpoint_steps(run_dir: Path) -> list[int]:
    return [int(re.search(r"(\d+)", p.name).group(1)) for p in checkpoint_paths(run_dir)]


def optimizer_steps(path: Path) -> set[float]:
    """AdamW's own step counter of every parameter, as stored in a checkpoint."""
    with safe_open(str(path), framework="pt") as f:
        return {float(f.get_tensor(name).item()) for name in f.keys() if re.fullmatch(r"optim\.\d+\.step", name)}


def test_trainer_killed_and_restarted(roles: Roles, tmp_path: Path, redis_client: redis.Redis) -> None:
    run_dir = tmp_path / "storage" / "tk"
    common = ["--run-dir", str(run_dir)]
    seen: list[int] = []
    watching = threading.Event()

    def watch_latest() -> None:  # every value weights:latest takes, in order
        while not watching.wait(0.05):
            raw = redis_client.get(keys.weights_latest("tk"))
            if raw is not None and (not seen or seen[-1] != int(raw)):
                seen.append(int(raw))

    watcher = threading.Thread(target=watch_latest, daemon=True)
    watcher.start()
    first = roles.start("trainer-1", ["train", *common, *TINY, *TRAINS])
    roles.start("worker", ["worker", *common, "--evaluator", "local"])
    wait_until(
        lambda: [s for s in checkpoint_steps(run_dir) if s >= 20], "a checkpoint at step 20 or later", timeout_s=150
    )
    first.kill()
    before_kill = versions_in(run_dir / "weights")[-1]
    resume_step = checkpoint_steps(run_dir)[-1]
    assert optimizer_steps(checkpoint_paths(run_dir)[-1]) == {float(resume_step)}

    second = roles.start("trainer-2", ["train", *common, *TINY, *TRAINS])
    second.wait_for(f"resumed from ckpt-{resume_step:09d}.safetensors (step {resume_step},")
    wait_until(
        lambda: versions_in(run_dir / "weights")[-1] >= before_kill + 2,
        "two more versions after the restart",
        timeout_s=150,
    )
    assert second.stop() == 0
    watching.set()
    watcher.join()

    # Versions only go up: in Redis as it happened, in the log of the second trainer, on disk.
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    published = [int(v) for v in re.findall(r"published weights version (\d+)", second.text())]
    assert published and min(published) > before_kill
    assert versions_in(run_dir / "weights") == list(range(1, max(published) + 1))
    # The checkpoint on exit: AdamW's step counter went on from the resumed one, not from zero.
    final = checkpoint_paths(run_dir)[-1]
    final_step = int(re.search(r"stopped at step (\d+)", second.text()).group(1))
    assert final.name == f"ckpt-{final_step:09d}.safetensors" and final_step > resume_step
    assert optimizer_steps(final) == {float(final_step)}

"""Where a network runs and in which precision: one home for the choice, always asked of the device in
use (`cuda:1` is asked about cuda:1, never GPU 0), for gpu-serve, the trainer and `azjobs bench gpu`.
"""

from __future__ import annotations

import torch

from azjobs.errors import AzjobsError

PRECISIONS = ("auto", "fp32", "tf32", "bf16", "fp16")  # tf32: fp32 tensors, TF32 tensor-core matmuls/convs
BF16_FROM = (8, 0)  # Ampere and later compute bf16 on tensor cores; older cards emulate it with slow kernels
TF32_FROM = (8, 0)  # TF32 exists from Ampere on; earlier cards compute fp32 whatever the flags say
DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve(requested: str | torch.device | None = None) -> torch.device:
    """The device asked for (default: the current CUDA device if any, else the CPU), its CUDA index
    explicit; AzjobsError naming the fix when that GPU does not exist here."""
    if requested is None or str(requested) == "":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except RuntimeError as e:
        raise AzjobsError(f"unknown device {requested!r} ({e}): use cpu, cuda or cuda:N") from None
    if device.type != "cuda":
        return device
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise AzjobsError(
            f"--device {requested}: CUDA is not visible here; use --device cpu, or install a CUDA "
            "build of torch and check nvidia-smi"
        )
    index = torch.cuda.current_device() if device.index is None else device.index
    if index >= count:
        raise AzjobsError(
            f"--device {requested}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}; "
            "pick one of them (CUDA_VISIBLE_DEVICES may hide the others)"
        )
    return torch.device("cuda", index)


def capability(device: torch.device) -> tuple[int, int] | None:
    """(major, minor) compute capability of a CUDA device; None on the CPU."""
    if device.type != "cuda":
        return None
    major, minor = torch.cuda.get_device_capability(device)
    return int(major), int(minor)


def auto_cuda_precision(cap: tuple[int, int]) -> str:
    """bf16 from compute capability 8.0 (same range as fp32, tensor cores), fp16 below (T4, V100, RTX 20xx:
    fast fp16 tensor cores, bf16 only emulated)."""
    return "bf16" if cap >= BF16_FROM else "fp16"


def serving_candidates(requested: str, device_type: str, cap: tuple[int, int] | None) -> list[str]:
    """The precisions gpu-serve may run in: the one asked for, or under "auto" the capability's choice on
    CUDA and, on a CPU, fp32 and bf16 (timed at start: bf16 pays only with bf16 instructions)."""
    _check(requested, device_type)
    if requested != "auto":
        return [requested]
    if device_type == "cuda":
        return [auto_cuda_precision(cap or (0, 0))]
    return ["fp32", "bf16"]


def training_precision(requested: str, device_type: str, cap: tuple[int, int] | None) -> str:
    """The trainer's autocast precision: fp32 on a CPU, the capability's choice on CUDA under "auto"."""
    _check(requested, device_type)
    if requested != "auto":
        return requested
    return auto_cuda_precision(cap or (0, 0)) if device_type == "cuda" else "fp32"


def _check(requested: str, device_type: str) -> None:
    if requested not in PRECISIONS:
        raise AzjobsError(f"unknown precision {requested!r}: use one of {', '.join(PRECISIONS)}")
    if requested == "fp16" and device_type != "cuda":
        raise AzjobsError("fp16 runs on CUDA only: on a CPU use --precision bf16 or fp32")


def set_tf32(device: torch.device, precision: str) -> bool:
    """Let cuBLAS and cuDNN use TF32 for fp32 work exactly when `precision` is tf32 (process-wide flags:
    PyTorch lets cuDNN use TF32 by default, which would make "fp32" differ from a CPU by about 1e-3);
    True when TF32 is in use."""
    if device.type != "cuda":
        return False
    allowed = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = allowed
    torch.backends.cudnn.allow_tf32 = allowed
    return allowed and (capability(device) or (0, 0)) >= TF32_FROM


def facts(device: torch.device) -> dict[str, str]:
    """What `azjobs doctor` shows of the device a role uses: its name and compute capability."""
    if device.type != "cuda":
        return {"cuda_device": str(device)}
    major, minor = capability(device) or (0, 0)
    return {
        "cuda_device": str(device),
        "cuda": torch.cuda.get_device_name(device),
        "cuda_capability": f"{major}.{minor}",
    }


def where(device: torch.device) -> str:
    """The device for a log line: 'cpu', or 'cuda:1 (NVIDIA A100-SXM4-80GB, capability 8.0)'."""
    if device.type != "cuda":
        return str(device)
    found = facts(device)
    return f"{device} ({found['cuda']}, capability {found['cuda_capability']})"

"""Marks for tests that need a GPU: `@cuda` (and `@gpus(2)`) run under the `cuda` marker and skip,
saying why, on a machine without enough CUDA devices."""

from __future__ import annotations

from typing import Callable, TypeVar

import pytest
import torch

T = TypeVar("T", bound=Callable)


def gpus(count: int) -> Callable[[T], T]:
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0

    def mark(test: T) -> T:
        reason = (
            f"needs {count} CUDA GPU(s); {visible} visible here"
            if visible
            else "needs a CUDA GPU: torch.cuda.is_available() is False here"
        )
        return pytest.mark.cuda(pytest.mark.skipif(visible < count, reason=reason)(test))

    return mark


cuda = gpus(1)

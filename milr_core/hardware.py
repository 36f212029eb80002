"""Device, dtype and batch-size choices from what the machine has."""

from __future__ import annotations

import os

import torch


def pick_device(preferred: str | None = None) -> torch.device:
    if preferred and preferred != "auto":
        return torch.device(preferred)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def pick_dtype(device: torch.device, preferred: str | None = None) -> torch.dtype:
    """bfloat16 where the GPU supports it, float32 elsewhere (CPU half math is slow and lossy)."""
    if preferred and preferred != "auto":
        try:
            return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[preferred]
        except KeyError:
            raise ValueError(f"unknown dtype {preferred!r}; use auto, float32, bfloat16 or float16") from None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def pick_compile(device: torch.device, preferred: bool | None = None) -> bool:
    """Compile decoder calls with TorchInductor? Only on CUDA, and only when asked
    (argument, or MILR_COMPILE=1): each decoder size costs a compile of up to a
    minute, which pays off over a benchmark, not over one short `milr generate`."""
    if preferred is None:
        preferred = os.environ.get("MILR_COMPILE", "0").strip().lower() in ("1", "true", "yes", "on")
    return bool(preferred) and device.type == "cuda"


def free_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free
    return None


def rows_that_fit(device: torch.device, bytes_per_row: int, cap: int, headroom: float = 0.8) -> int:
    """How many rows of `bytes_per_row` fit in the free memory (at least 1, at most `cap`).

    On the CPU the answer is `cap`: memory is rarely the limit there and the
    engine halves the batch if an allocation fails anyway.
    """
    free = free_bytes(device)
    if free is None:
        return cap
    return max(1, min(cap, int(free * headroom) // max(1, bytes_per_row)))


def pool_searches(device: torch.device) -> bool:
    """Merge many searches' rows into shared model calls? On GPUs, yes: one decoder call
    costs about the same for 2 rows as for 64. On the CPU, no: the cost grows with the rows,
    and there floating-point sums depend on the batch's shape (row count, padding), so one
    search per call keeps every output byte-identical to a one-search-at-a-time run."""
    return device.type == "cuda"

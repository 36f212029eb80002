"""torchrun support: who am I, which prompts are mine, wait for the others.

Under `torchrun` (env RANK, WORLD_SIZE, LOCAL_RANK) the process group uses NCCL
on GPUs and gloo on CPUs; prompts are dealt round-robin (index % world == rank),
which depends on nothing but the index, so any number of ranks writes the same
files as one process. Ranks exchange nothing but barriers: every result goes
through the shared output folder.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

# Ranks finish their shards at different times (MILR stops early on some prompts), and the
# barrier at the end waits for the slowest; the default 10-30 minute timeout is too short.
BARRIER_TIMEOUT = datetime.timedelta(hours=48)


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Dist:
        """Join the process group when started by torchrun with more than one process."""
        env = os.environ
        dist = cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))
        if dist.world > 1:
            import torch
            import torch.distributed as td

            if torch.cuda.is_available():
                torch.cuda.set_device(dist.local_rank)
                td.init_process_group("nccl", timeout=BARRIER_TIMEOUT, device_id=torch.device("cuda", dist.local_rank))
            else:
                td.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
        return dist

    @property
    def main(self) -> bool:
        return self.rank == 0

    def device(self, requested: str | None) -> str | None:
        """This rank's GPU when the user asked for CUDA or left the device open."""
        import torch

        if "LOCAL_RANK" in os.environ and torch.cuda.is_available() and requested in (None, "auto", "cuda"):
            return f"cuda:{self.local_rank}"
        return requested

    def shard(self, indices: list[int]) -> list[int]:
        return [i for i in indices if i % self.world == self.rank]

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as td

            td.barrier()

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as td

            if td.is_initialized():
                td.destroy_process_group()

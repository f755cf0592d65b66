"""Several GPUs (or CPU processes) through ``torchrun``: DistributedDataParallel.

Under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set, world size > 1) each process
joins a process group (``nccl`` on CUDA, ``gloo`` on the CPU), takes the GPU of its local
rank, and reads its share of each epoch through a ``DistributedSampler``. Only rank 0 logs,
evaluates and saves; the others wait at barriers. Without torchrun: one process, no group.

Normalisation statistics are per process (no SyncBatchNorm: tdBN and BNTT are our own
modules), as with plain DDP on torchvision models.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world() -> DistInfo:
    """The torchrun environment (rank 0 of 1 without it)."""
    return DistInfo(
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def init_distributed(device: torch.device) -> DistInfo:
    """Join the torchrun process group when there is one; returns this process's place."""
    info = env_world()
    if not info.enabled:
        return info
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def device_for(requested: str, info: DistInfo) -> torch.device:
    """``auto``/``cpu``/``cuda``; under torchrun with CUDA, the local rank's GPU."""
    from dvsapp.errors import ConfigError

    if requested not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda, got {requested!r}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device available")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", info.local_rank if info.enabled else 0)


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """Sum a few numbers over the processes (as they are without a group)."""
    if not info.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def end_process(info: DistInfo, code: int = 0) -> None:
    """Under torchrun, end this process now with ``code`` (stdio flushed) rather than through
    the interpreter's teardown; without a group, return.

    torch 2.13's DistributedDataParallel keeps the gloo process group alive after
    ``destroy_process_group`` (its two ``pt_gloo_runloop`` threads and ``gloo_tcp_loop`` still
    run; a plain ``all_reduce`` without DDP leaves none). Tearing the interpreter down with
    them running aborted a finished run (SIGABRT, "terminate called without an active
    exception") in 1 of 30 two-rank runs on a loaded 2-core machine, and torchrun then
    reports the whole run failed. Call it only when everything is written."""
    if not info.enabled:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

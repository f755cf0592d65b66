"""Training for both SNN families (tdBN ResNets, BNTT VGGs): datasets binned by our own binner,
the BPTT loop (resumable, TensorBoard, DDP through torchrun), IIR, and early-exit evaluation.

Heavy pieces (torch, tensorboard, matplotlib, tonic, the synthetic generator) are imported
lazily: ``dvsapp`` registers the ``train`` command without importing torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainConfig", "TrainResult", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from dvsapp.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'dvsapp.train' has no attribute {name!r}")

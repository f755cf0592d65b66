"""What the GUI needs of the pipeline, and the process-wide choices made for it."""

from __future__ import annotations

import os
from typing import Any, Protocol

from dvsapp.pipeline import ModelInfo, PipelineSettings, PipelineStats


class PipelineLike(Protocol):
    """What the window uses of :class:`dvsapp.pipeline.Pipeline`."""

    mailbox: Any
    settings: PipelineSettings

    def start(self) -> None: ...
    def stop(self, timeout: float = 5.0) -> None: ...
    def play(self) -> None: ...
    def pause(self) -> None: ...
    def step_once(self) -> None: ...
    def seek(self, t_us: int) -> None: ...
    def configure(self, settings: PipelineSettings) -> None: ...
    def open_recording(self, path: Any) -> None: ...
    def open_source(self, source: Any) -> None: ...
    def load_model(self, checkpoint: Any, import_options: Any = None) -> None: ...
    def set_threshold_scale(self, layer: str, scale: float) -> None: ...
    def model_info(self, lane: int = 0) -> ModelInfo | None: ...
    def compare_model(self, checkpoint: Any, import_options: Any = None) -> None: ...
    def start_export(self, path: Any) -> None: ...
    def stop_export(self) -> None: ...
    def stats(self) -> PipelineStats: ...


def leave_a_core_to_the_gui() -> int | None:
    """Cap torch's CPU threads at one less than the cores, so the GUI thread keeps one.

    torch's intra-op pool spins at its barriers: with as many threads as cores and the GUI
    thread busy drawing, a small model's step went from ~1 ms to ~130 ms on 2 cores. The
    worker takes the thread count the caller has when the pipeline starts. Returns the
    count before, when it changed it.
    """
    import torch

    cores = os.cpu_count() or 1
    before = torch.get_num_threads()
    if before < cores or cores < 2:
        return None
    torch.set_num_threads(cores - 1)
    return before


def model_key(info: ModelInfo) -> tuple[object, ...]:
    """What identifies a loaded model's layout (a change means: lay the panels out anew)."""
    shapes = tuple((k, tuple(v)) for k, v in info.layer_shapes.items())
    return (
        info.name,
        info.arch,
        info.path,
        info.device,
        tuple(info.class_names),
        tuple(info.layer_names),
        shapes,
    )

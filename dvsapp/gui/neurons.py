"""Which neuron a raster row is: rows map to flat indices of the layer's neuron map."""

from __future__ import annotations

import math

from dvsapp.pipeline import ModelInfo, PipelineSettings


def raster_row_to_flat(
    info: ModelInfo, settings: PipelineSettings, layer: str, row: int, rows: int
) -> int | None:
    """The flat neuron index (into one sample's ``[C*H*W]`` map) of raster row ``row``, or
    None when it cannot be told (a raster from before a change of settings)."""
    if not 0 <= row < rows:
        return None
    index = info.raster_index.get(layer)
    if index is not None and len(index) == rows:
        return int(index[row])
    shape = info.layer_shapes.get(layer, ())
    if shape and rows == math.prod(shape):
        return row
    ch = settings.raster_channel.get(layer)
    if ch is not None and len(shape) == 3 and rows == shape[1] * shape[2]:
        return ch * shape[1] * shape[2] + row
    return None


def add_traced(neurons: list[tuple[str, int]], layer: str, flat: int) -> list[tuple[str, int]]:
    """``neurons`` with ``(layer, flat)`` traced last (moved there if it was traced already)."""
    return [n for n in neurons if n != (layer, flat)] + [(layer, flat)]


def traced_by_layer(neurons: list[tuple[str, int]]) -> dict[str, tuple[int, ...]]:
    """Traced neurons as ``PipelineSettings.vm_neurons`` holds them: layer -> flat indices."""
    out: dict[str, tuple[int, ...]] = {}
    for layer, idx in neurons:
        out[layer] = (*out.get(layer, ()), idx)
    return out

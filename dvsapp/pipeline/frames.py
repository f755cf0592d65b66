"""What the worker publishes, built from the session's lanes and steps: a lane's
:class:`ModelInfo` and a step's :class:`StepFrame`."""

from __future__ import annotations

import numpy as np

from dvsapp.pipeline.advice import input_text
from dvsapp.pipeline.records import ModelInfo, StepFrame
from dvsapp.session.core import Lane, LaneStep
from dvsapp.session.loading import model_source


def model_info(lane: Lane) -> ModelInfo:
    """What the GUI needs to lay out its panels for ``lane``'s model."""
    model, chain, tap = lane.model, lane.chain, lane.tap
    ckpt, cfg = model.ckpt, chain.binning
    layers = ckpt.model.spiking_layers()
    return ModelInfo(
        name=model.name,
        arch=ckpt.arch,
        family=ckpt.model.family,
        class_names=list(ckpt.class_names),
        layer_names=list(layers),
        layer_shapes=dict(model.shapes),
        thresholds={n: float(layer.threshold) for n, layer in layers.items()},
        window_steps=chain.stepper.window_steps,
        bin_us=cfg.time_window_us or 0,
        input_size=ckpt.config.input_size,
        sensor_size=cfg.sensor_size,
        device=str(chain.stepper.device),
        trained=model.trained,
        raster_index={} if tap is None else dict(tap.raster_index),
        vm_index={} if tap is None else dict(tap.vm_index),
        event_count=cfg.event_count,
        path=ckpt.path if model.trained else None,
        source=model_source(ckpt),
        trained_on=str(ckpt.trained_on or ""),
        trained_input=input_text(ckpt.binning.to_dict()),
        trained_bin_us=int(ckpt.binning.time_window_us or 0) if ckpt.binning.mode == "time" else 0,
        trained_window_steps=int(ckpt.config.time_steps or 0),
        lane=lane.index,
        synaptic_layers=lane.synaptic_layers,
    )


def step_frame(
    st: LaneStep,
    index: int,
    epoch: int,
    events_on: np.ndarray,
    events_off: np.ndarray,
    true_label: int | None,
    true_name: str | None,
) -> StepFrame:
    """The frame of one lane's step (``st.record`` must be set), with its event view and
    ground truth."""
    rec = st.record
    assert rec is not None
    return StepFrame(
        index=index,
        window=rec.window,
        step=rec.step,
        t_start_us=st.t_start_us,
        t_end_us=st.t_end_us,
        events_on=events_on,
        events_off=events_off,
        raster=st.raster,
        vm=st.vm,
        rates=rec.rates if rec.rates is not None else np.zeros(0, np.float32),
        probs=rec.probs,
        pred=rec.pred,
        exited=rec.exited,
        window_result=st.window_result,
        health=rec.health,
        latency_ms=rec.latency_ms,
        true_label=true_label,
        epoch=epoch,
        true_name=true_name,
        lane=st.lane,
        analysis=st.analysis,
        spike_map=st.spike_map,
    )

"""The live pipeline: source -> binner -> stepper in a worker thread, published to a mailbox.

Qt-free (DESIGN.md): the GUI reads it through :class:`Mailbox` and sends commands through
:class:`Pipeline` methods, which are thread-safe and never block on the model or the source.

* :mod:`~dvsapp.pipeline.records`: the contract (settings, model info, step frames, stats).
* :mod:`~dvsapp.pipeline.mailbox`: the bounded, latest-value hand-over to the GUI.
* :mod:`~dvsapp.pipeline.control`: :class:`Pipeline`, the caller's side.
* :mod:`~dvsapp.pipeline.worker`: the thread that owns the source and a
  :class:`dvsapp.session.Session` (the models' binners and steppers), and paces it.
* :mod:`~dvsapp.pipeline.meter`: what the worker counts. What it builds and taps is the
  session's (:mod:`dvsapp.session.loading`, :mod:`dvsapp.session.probes`).
"""

from dvsapp.pipeline.control import Pipeline
from dvsapp.pipeline.mailbox import Mailbox
from dvsapp.pipeline.records import ModelInfo, PipelineSettings, PipelineStats, StepFrame

__all__ = ["Mailbox", "ModelInfo", "Pipeline", "PipelineSettings", "PipelineStats", "StepFrame"]

"""The session core: one event source and one or more models stepped on the same events.

``dvsapp run`` (:mod:`~dvsapp.session.run`) and ``dvsapp play`` (:mod:`~dvsapp.session.play`)
drive a session synchronously to the end of a recording; the app's worker thread
(:mod:`dvsapp.pipeline.worker`) drives the same session at the replay's pace, between commands.

* :mod:`~dvsapp.session.core`: :class:`Session`, :class:`Lane` (one model: its binners,
  stepper, raster/Vm tap and in-depth probes) and :class:`LaneStep` (one step's record).
* :mod:`~dvsapp.session.loading`: opening recordings and models, :class:`LaneSettings`.
* :mod:`~dvsapp.session.probes`: the rasters' and Vm traces' tap.
* :mod:`~dvsapp.session.labels`: ground truth per window.
* :mod:`~dvsapp.session.rate_report`, :mod:`~dvsapp.session.window_stats`: per-window figures.
* :mod:`~dvsapp.session.export`: one row per step and model, as Parquet.

Nothing here imports the worker, the GUI or the CLI (tests/test_architecture.py).
"""

from dvsapp.session.core import Lane, LaneStep, Session
from dvsapp.session.loading import LaneSettings

__all__ = ["Lane", "LaneSettings", "LaneStep", "Session"]

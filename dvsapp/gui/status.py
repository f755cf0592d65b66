"""The status bar: state, events/s, step latency, real-time factor, dropped steps, flags."""

from __future__ import annotations

import math

from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from dvsapp.gui import theme
from dvsapp.gui.widgets import ElidedLabel
from dvsapp.pipeline import ModelInfo, PipelineStats
from dvsapp.snn.health import HealthReport


def _rate(eps: float) -> str:
    if eps >= 1e6:
        return f"{eps / 1e6:.2f} M ev/s"
    if eps >= 1e3:
        return f"{eps / 1e3:.1f} k ev/s"
    return f"{eps:.0f} ev/s"


class StatusBar(QStatusBar):
    """Permanent fields on the right, transient messages on the left."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = QLabel("starting")
        self.events = QLabel("-")
        self.latency = QLabel("-")
        self.realtime = QLabel("-")
        self.dropped = QLabel("-")
        self.health = ElidedLabel("-", max_hint_px=420)
        self.events.setToolTip("events per second reaching the binner")
        self.latency.setToolTip("mean model step latency over the last second")
        self.realtime.setToolTip("stream time advanced per wall second (1.0 = keeping up)")
        self.dropped.setToolTip("steps the GUI never saw (mailbox overflow)")
        self.health.setToolTip("layers flagged silent or saturated by the firing-rate watchdog")
        # No stretch: the permanent fields keep to the right, and transient messages
        # (showMessage) get the rest of the bar on the left. A stretching field took the
        # whole width and every transient message was set but never visible.
        # Each number field is as wide as its widest likely text, so the fields keep still
        # as the numbers change; the health flags elide (full list in the tooltip).
        for w, widest in (
            (self.state, "starting"),
            (self.events, "888.8 k ev/s"),
            (self.latency, "step 888.88 ms"),
            (self.realtime, "real time 88.88x"),
            (self.dropped, "dropped 88888"),
        ):
            w.setMinimumWidth(w.fontMetrics().horizontalAdvance(widest) + 14)
            self.addPermanentWidget(w)
        self.addPermanentWidget(self.health)
        self.last_error = ""

    def show_error(self, message: str) -> None:
        """An error, in red, until the next state change."""
        self.last_error = message
        self.state.setText(f"<span style='color:{theme.ERROR_COLOUR}'>error</span>")
        self.showMessage(message, 15000)

    def update_stats(
        self, st: PipelineStats, health: HealthReport | None, info: ModelInfo | None
    ) -> None:
        """Refresh every field from the pipeline's counters and the latest health report."""
        colour = theme.ERROR_COLOUR if st.state == "error" else theme.FOREGROUND
        self.state.setText(f"<span style='color:{colour}'>{st.state}</span>")
        self.events.setText(_rate(st.events_per_s))
        self.latency.setText(f"step {st.step_latency_ms:.2f} ms")
        rtf = st.realtime_factor
        ok = not math.isfinite(rtf) or rtf >= 0.95 or st.state != "running"
        rcol = theme.FOREGROUND if ok else theme.SATURATED_COLOUR
        shown = "-" if not math.isfinite(rtf) else f"{rtf:.2f}x"
        self.realtime.setText(f"<span style='color:{rcol}'>real time {shown}</span>")
        dcol = theme.FOREGROUND if st.dropped_steps == 0 else theme.SATURATED_COLOUR
        self.dropped.setText(f"<span style='color:{dcol}'>dropped {st.dropped_steps}</span>")
        if health is None or info is None:
            self.health.setText("")
            return
        if health.ok:
            self.health.setText(f"<span style='color:{theme.OK_COLOUR}'>all layers ok</span>")
            return
        parts = []
        for kind, names in (("silent", health.silent), ("saturated", health.saturated)):
            if names:
                shown_names = ", ".join(names[:3]) + (" …" if len(names) > 3 else "")
                parts.append(
                    f"<span style='color:{theme.status_colour(kind)}'>"
                    f"{len(names)} {kind}: {shown_names}</span>"
                )
        self.health.setText("  ".join(parts))

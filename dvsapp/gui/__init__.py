"""The desktop application (PySide6 + pyqtgraph): the only package of dvsapp that imports Qt.

* :mod:`~dvsapp.gui.app`: ``run_app``, what ``dvsapp gui`` and plain ``dvsapp`` call.
* :mod:`~dvsapp.gui.main_window`: panels, controls and status bar around one pipeline.
* :mod:`~dvsapp.gui.bridge`: the only cross-thread hand-over (mailbox -> one queued signal).
* :mod:`~dvsapp.gui.panels`: event view, spike rasters, Vm traces, firing rates, prediction.
"""

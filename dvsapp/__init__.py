"""dvsapp: watch a spiking neural network think on a live event-camera stream."""

__version__ = "0.1.0"

"""DVS emulation: a v2e/ESIM-style pixel model, and a source over webcams and video files.

``pixel_model`` needs only numpy (the synthetic training data uses it too); ``VideoSource``
needs OpenCV (the ``camera`` extra) and imports it when made.
"""

from dvsapp.events.emulator.pixel_model import DvsPixelModel, PixelModelConfig, to_luma
from dvsapp.events.emulator.video_source import VideoSource, parse_spec

__all__ = ["DvsPixelModel", "PixelModelConfig", "VideoSource", "parse_spec", "to_luma"]

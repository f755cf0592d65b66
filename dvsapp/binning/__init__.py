"""Streaming binner: event packets in, ``[N, C, H, W]`` frames out (numpy or torch).

The reference is tonic 1.7.0: for the same events, :func:`bin_events` equals
``ToFrame(sensor_size=(w', h', 2), time_window=w, include_incomplete=True)`` (or
``event_count=n``) applied after ``Downsample(sensor_size=..., target_size=(w', h'))``.
Downsampling is an event transform in tonic, so the reference downsamples the events and
then frames them at the reduced size. Streaming a recording in packets of any sizes gives
the same frames as one packet, on either back end.

``BinningConfig.denoise_us`` puts tonic's ``Denoise(filter_time=denoise_us)`` first, at the
sensor resolution, exactly as the pipeline ``Denoise -> Downsample -> ToFrame`` (the streaming
:class:`Denoiser`, :mod:`dvsapp.binning.denoise`, keeps the same events as tonic's whole-array
loop however the stream is split), so training, ``dvsapp run`` and the app see the same events.

Where tonic is odd, and what this module does:

* Last events exactly on a window boundary (``t[-1] - t0`` a non-zero multiple of the
  window): ToFrame drops them. We give them their own frame; ``flush(drop_boundary_tail=
  True)`` reproduces tonic.
* Empty input: ToFrame returns one float64 zero frame shaped ``(1, P, W, H)`` (W and H
  swapped). We return no frames, ``[0, C, H, W]``.
* ToFrame counts in int16 and wraps past 32767 events per pixel; we count in int64 (numpy)
  or float32 (torch, exact to 2**24) and saturate integer outputs.
* Downsample truncates ``x * (target / sensor)`` in float64, which for some sizes maps an
  exact multiple one pixel low (44 -> 30: x=22 gives 14); we keep tonic's mapping.
* ToFrame has no limit on empty frames; we cap runs of empty frames (``max_empty_frames``,
  1000 by default, ``None`` for tonic's behaviour).
* Events before ``start_time`` are dropped by ToFrame; late events here (before ``t0_us``
  or the open bin) are counted in the open bin. Only ``overlap=0`` exists here.
"""

from dvsapp.binning.config import BinningConfig, binning_for_recording
from dvsapp.binning.denoise import Denoiser, denoise_events
from dvsapp.binning.streaming import DEFAULT_MAX_EMPTY_FRAMES, Frames, StreamingBinner, bin_events

__all__ = [
    "DEFAULT_MAX_EMPTY_FRAMES",
    "BinningConfig",
    "Denoiser",
    "Frames",
    "StreamingBinner",
    "bin_events",
    "binning_for_recording",
    "denoise_events",
]

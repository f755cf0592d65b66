"""Networks from elsewhere as dvsapp checkpoints: ``dvsapp import`` and ``--model X.nir``.

:func:`import_nir` reads a ``.nir`` file into a :class:`~dvsapp.snn.checkpoint.Checkpoint`
in memory (the graph model plus everything needed to bin a stream the way the network was
fed); :func:`save_imported` writes it as an ordinary checkpoint (safetensors tensors + our
JSON metadata holding the graph), which then loads like any other: no unpickling, no code
from the source. :func:`open_model` opens either kind of file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dvsapp.binning import BinningConfig
from dvsapp.errors import ConfigError
from dvsapp.events.readers.atis_bin import NCALTECH101_CLASSES
from dvsapp.events.types import DVS_GESTURE_CLASSES
from dvsapp.snn.base import ModelConfig
from dvsapp.snn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from dvsapp.snn.graph.assemble import assemble
from dvsapp.snn.graph.model import GraphModel
from dvsapp.snn.graph.nir_reader import HDF5_MAGIC, NirError, read_nir
from dvsapp.snn.graph.spec import GraphSpec
from dvsapp.snn.registry import GRAPH_ARCH

#: Class-name sets a user can name with ``--classes``.
KNOWN_CLASSES: dict[str, tuple[str, ...]] = {
    "nmnist": tuple(str(d) for d in range(10)),
    "dvsgesture": DVS_GESTURE_CLASSES,
    "ncaltech101": NCALTECH101_CLASSES,
    "cifar10dvs": (
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    ),
}  # fmt: skip


@dataclass
class ImportOptions:
    """How to feed an imported network (``dvsapp import`` / ``--model X.nir`` flags).

    Sizes are (width, height); None takes them from the graph's input (the sensor defaults
    to the input size). ``classes``: None (the output size, named 0..K-1), a count, a comma
    list, or a key of :data:`KNOWN_CLASSES`.
    """

    sensor: tuple[int, int] | None = None
    input_size: tuple[int, int] | None = None
    bin_us: int | None = None
    bin_events: int | None = None
    time_steps: int = 300
    classes: str | None = None
    dt: float | None = None
    reset: str | None = None
    readout: str | None = None
    denoise_us: int | None = None

    def binning(self, channels: int, input_size: tuple[int, int]) -> BinningConfig:
        if self.bin_us is not None and self.bin_events is not None:
            raise ConfigError("give --bin-us or --bin-events, not both")
        sensor = self.sensor or input_size
        polarity = "split" if channels == 2 else "sum"
        if self.bin_events is not None:
            return BinningConfig(
                sensor, "count", event_count=self.bin_events, input_size=input_size,
                polarity=polarity, denoise_us=self.denoise_us,
            )  # fmt: skip
        window = 1000 if self.bin_us is None else self.bin_us
        return BinningConfig(
            sensor, "time", time_window_us=window, input_size=input_size, polarity=polarity,
            denoise_us=self.denoise_us,
        )  # fmt: skip


def class_names(spec: str | None, k: int) -> list[str]:
    """``--classes`` for a readout of ``k`` values (module docstring of :class:`ImportOptions`)."""
    if spec is None:
        return [str(i) for i in range(k)]
    text = spec.strip()
    if text.lower() in KNOWN_CLASSES:
        names = list(KNOWN_CLASSES[text.lower()])
    elif text.isdigit():
        names = [str(i) for i in range(int(text))]
    else:
        names = [n.strip() for n in text.split(",") if n.strip()]
    if len(names) != k:
        raise ConfigError(f"--classes gives {len(names)} classes but the network's readout has {k}")
    return names


def _frame_layout(
    shape: list[int], input_size: tuple[int, int] | None
) -> tuple[int, tuple[int, int]]:
    """(channels, (width, height)) of the event frames that feed a graph input ``shape``."""
    if len(shape) == 3:
        c, h, w = shape
        if input_size is not None and input_size != (w, h):
            raise ConfigError(
                f"--input-size {input_size[0]}x{input_size[1]} but the graph takes {c}x{h}x{w}"
            )
    elif len(shape) == 2:  # [C, L]: a one-row frame
        c, w, h = shape[0], shape[1], 1
    elif input_size is not None:  # [N]: flattened frames of C x H x W
        w, h = input_size
        c = shape[0] // (w * h) if shape[0] % (w * h) == 0 else 0
    else:
        raise ConfigError(
            f"the graph takes a flat input of {shape[0]} values: give --input-size WxH so that "
            "1 or 2 polarity channels x W x H equals it"
        )
    if c not in (1, 2):
        raise ConfigError(
            f"the graph's input {shape} cannot be fed event frames: it needs 1 (ON+OFF summed) "
            "or 2 (OFF, ON) polarity channels"
        )
    return c, (w, h)


def import_nir(
    path: str | os.PathLike[str], options: ImportOptions | None = None, device: Any = "cpu"
) -> Checkpoint:
    """A ``.nir`` file as a checkpoint in memory (eval mode, on ``device``)."""
    opts = options or ImportOptions()
    p = Path(path)
    spec, tensors = read_nir(p, dt=opts.dt, reset=opts.reset, readout=opts.readout)
    source = {
        "framework": "nir",
        "file": p.name,
        "dt_s": spec.dt,
        "readout": spec.readout,
        "reset": sorted({str(n.params["reset"]) for n in spec.nodes if "reset" in n.params}),
    }
    try:
        return _checkpoint(p, spec, tensors, opts, device, source)
    except ConfigError as e:
        raise NirError(p, str(e)) from None


def import_framework(
    weights: str | os.PathLike[str],
    framework: str,
    code: str,
    options: ImportOptions | None = None,
    device: Any = "cpu",
) -> Checkpoint:
    """A network from its framework: the model built by ``code`` (``FILE.py:NAME``, run
    once, here), its ``state_dict`` from ``weights`` (never unpickling objects), traced and
    converted into a graph model in memory. ``options.input_size`` is required (a model
    class does not say what it takes)."""
    import importlib

    from dvsapp.snn.graph.frameworks import FRAMEWORKS
    from dvsapp.snn.graph.frameworks.common import (
        FrameworkImportError,
        convert,
        fit_weights,
        load_user_model,
        load_weights,
        trace,
    )

    opts = options or ImportOptions()
    p = Path(weights)
    if framework not in FRAMEWORKS:
        raise ConfigError(f"--framework {framework!r}: known are nir, {', '.join(FRAMEWORKS)}")
    try:
        fw = importlib.import_module(FRAMEWORKS[framework])
        version = fw.check_version()
    except ImportError as e:
        raise ConfigError(f"importing from {framework} needs it installed ({e})") from None
    if opts.input_size is None:
        raise ConfigError("give --input-size WxH: the frames the network takes")
    state = load_weights(p)  # before running any user code: a refused file stops here
    model = load_user_model(code)
    prepare = getattr(fw, "prepare", None)  # the framework's own state, modes (see its module)
    if prepare is not None:
        try:
            state = prepare(model, state)
        except ConfigError as e:
            raise FrameworkImportError(code, str(e)) from None
    fit_weights(model, state, p)
    # a framework may keep more of its modules whole (leaf_types) and convert those that
    # are no neurons itself (convert_module); see dvsapp.snn.graph.frameworks
    graph = trace(model, getattr(fw, "leaf_types", fw.neuron_types)(), code)
    try:
        neuron = (fw.neuron_types(), fw.to_discrete)
        conv = convert(graph, model, neuron, code, getattr(fw, "convert_module", None))
        in_shape = (_in_channels(conv), opts.input_size[1], opts.input_size[0])
        spec, tensors = assemble(
            conv.specs, conv.values, conv.edges, conv.input_name, conv.output_name, in_shape,
            1.0, opts.readout, {},
        )  # fmt: skip
    except ConfigError as e:
        raise FrameworkImportError(code, str(e)) from None
    source = {
        "framework": framework,
        "version": version,
        "file": p.name,
        "code": f"{Path(code.rpartition(':')[0]).name}:{code.rpartition(':')[2]}",
        "readout": spec.readout,
    }
    spec.source = dict(source)
    try:
        return _checkpoint(p, spec, tensors, opts, device, source)
    except ConfigError as e:
        raise FrameworkImportError(p, str(e)) from None


def _in_channels(conv: Any) -> int:
    """Channels of the frames: the first layer's input channels (2 when it cannot say)."""
    first = next((b for a, b in conv.edges if a == conv.input_name), None)
    weight = conv.values.get(first, {}).get("weight") if first else None
    if weight is not None and conv.specs[first].type in ("Conv2d", "Conv1d"):
        return int(weight.shape[1])
    return 2


def _checkpoint(
    p: Path,
    spec: GraphSpec,
    tensors: dict[str, Any],
    opts: ImportOptions,
    device: Any,
    source: dict[str, Any],
) -> Checkpoint:
    channels, size = _frame_layout(spec.input_shape, opts.input_size)
    binning = opts.binning(channels, size)
    names = class_names(opts.classes, spec.output_shape[0])
    if opts.time_steps < 1:
        raise ConfigError(f"--time-steps must be >= 1, got {opts.time_steps}")
    config = ModelConfig(
        arch=GRAPH_ARCH,
        num_classes=len(names),
        in_channels=channels,
        input_size=size,
        width=0,
        time_steps=opts.time_steps,
        graph=spec.to_dict(),
    )
    model = GraphModel(config)
    model.load_state_dict(tensors, strict=True)
    from dvsapp.snn.stepper import resolve_device

    model.to(resolve_device(device)).eval()
    return Checkpoint(
        path=p,
        model=model,
        config=config,
        class_names=names,
        binning=binning,
        sensor_size=(*binning.sensor_size, 2),
        trained_on=f"unknown (imported from {source['framework']}: {p.name})",
        extra={"source": source},
    )


def save_imported(ckpt: Checkpoint, out: str | os.PathLike[str]) -> Path:
    """Write an imported network as a dvsapp checkpoint (atomically: nothing on failure)."""
    return save_checkpoint(
        out,
        ckpt.model,
        class_names=ckpt.class_names,
        binning=ckpt.binning,
        sensor_size=ckpt.sensor_size,
        trained_on=ckpt.trained_on,
        metrics=ckpt.metrics,
        extra=ckpt.extra,
    )


def is_nir_file(path: str | os.PathLike[str]) -> bool:
    """A ``.nir`` name or HDF5 content (what ``--model`` hands to the NIR reader)."""
    p = Path(path)
    if p.suffix.lower() == ".nir":
        return True
    try:
        with open(p, "rb") as f:
            return f.read(8) == HDF5_MAGIC
    except OSError:
        return False


def open_model(
    path: str | os.PathLike[str],
    device: Any = "cpu",
    options: ImportOptions | None = None,
) -> Checkpoint:
    """A dvsapp checkpoint, or a NIR graph imported on the fly with ``options``."""
    if is_nir_file(path):
        return import_nir(path, options, device)
    return load_checkpoint(path, device)

"""NIR graphs for ``bench_step.py``: the graphs, dvsapp's graph model and the peers that step them.

* ``nir_nmnist``: the N-MNIST CNN exported from sinabs (``cnn_sinabs_nmnist.nir``, 2x34x34).
* ``nir_128``: a graph of the same shape at 2x128x128 built here with ``nir`` (random
  weights, fixed seed), written to a temporary ``.nir`` file and read back by every reader:
  Conv2d 2->16 5x5/2, IF, Conv2d 16->32 3x3, IF, SumPool2d 2, Conv2d 32->32 3x3, IF,
  SumPool2d 2, Flatten, Affine 8192->256, IF, Affine 256->11, IF.

Peers, stepped one ``[1, C, H, W]`` frame per call (their neurons keep state between calls):
``sinabs.from_nir(graph, batch_size=1)`` (a nirtorch ``GraphExecutor`` of ``IAFSqueeze``
layers; ``sinabs.reset_states`` resets) and ``snntorch.import_nir.import_from_nir``.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

_SHARED_CNN = Path(__file__).resolve().parents[2] / "shared/models/nir/cnn_sinabs_nmnist.nir"
NMNIST_NIR = Path(os.environ.get("DVSAPP_NMNIST_NIR", _SHARED_CNN))
_SHARED = Path(__file__).resolve().parents[2] / "shared/models"
_EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: Networks imported from their framework (class + state_dict), stepped by dvsapp and by the
#: framework itself: NeuroBench's snnTorch DVS Gesture net and the README's two examples.
FRAMEWORK_NETS = ("snntorch_gesture", "sinabs_example", "sj_example")
GRAPHS = ("nir_nmnist", "nir_128", *FRAMEWORK_NETS)
LABELS = {
    "nir_nmnist": "N-MNIST sinabs",
    "nir_128": "built, nir",
    "snntorch_gesture": "NeuroBench snnTorch",
    "sinabs_example": "examples/ sinabs",
    "sj_example": "examples/ SpikingJelly",
}


def graph_128(seed: int = 0) -> Any:
    """The 2x128x128 graph (module docstring), random weights scaled to keep it firing."""
    import nir

    rng = np.random.default_rng(seed)

    def w(*shape: int) -> np.ndarray:
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) * 2.0 / np.sqrt(fan_in)).astype(np.float32)

    def b(n: int) -> np.ndarray:
        return np.zeros(n, np.float32)

    def if_(*shape: int) -> Any:
        ones = np.ones(shape, np.float32)
        return nir.IF(r=ones, v_threshold=ones, v_reset=np.zeros(shape, np.float32))

    def conv(c_in: int, c_out: int, k: int, stride: int, size: int) -> Any:
        return nir.Conv2d(
            input_shape=(size, size), weight=w(c_out, c_in, k, k), stride=(stride, stride),
            padding=(k // 2, k // 2), dilation=(1, 1), groups=1, bias=b(c_out),
        )  # fmt: skip

    def pool() -> Any:
        return nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                             padding=np.array([0, 0]))  # fmt: skip

    nodes = {
        "input": nir.Input(input_type={"input": np.array([2, 128, 128])}),
        "conv1": conv(2, 16, 5, 2, 128),
        "if1": if_(16, 64, 64),
        "conv2": conv(16, 32, 3, 1, 64),
        "if2": if_(32, 64, 64),
        "pool2": pool(),
        "conv3": conv(32, 32, 3, 1, 32),
        "if3": if_(32, 32, 32),
        "pool3": pool(),
        "flat": nir.Flatten(input_type={"input": np.array([32, 16, 16])}, start_dim=0, end_dim=-1),
        "fc1": nir.Affine(weight=w(256, 32 * 16 * 16), bias=b(256)),
        "if4": if_(256),
        "fc2": nir.Affine(weight=w(11, 256), bias=b(11)),
        "if5": if_(11),
        "output": nir.Output(output_type={"output": np.array([11])}),
    }
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(names)))


def load(name: str, tmp: Path, device: torch.device) -> tuple[Any, list[Peer]]:
    """dvsapp's model of graph ``name`` and the peers that step the same network."""
    if name in FRAMEWORK_NETS:
        return framework_net(name, tmp, device)
    path = nir_file(name, tmp)
    return dvsapp_model(path, device), peers(path, device)


def framework_net(name: str, tmp: Path, device: torch.device) -> tuple[Any, list[Peer]]:
    """A network from its framework: dvsapp imports its class and weights; the framework
    steps the very same module (state kept between calls)."""
    import importlib.util

    from dvsapp.snn.graph.importer import ImportOptions, import_framework

    if name == "snntorch_gesture":
        folder = _SHARED / "snntorch_dvs_gesture"
        code, weights, fw, size = folder / "snn.py", folder / "dvs_gesture_snn", "snntorch", 32
    else:
        fw = "sinabs" if name == "sinabs_example" else "spikingjelly"
        code = _EXAMPLES / ("sinabs_net.py" if fw == "sinabs" else "spikingjelly_net.py")
        weights, size = tmp / f"{name}.pt", 64
    spec = importlib.util.spec_from_file_location(f"bench_{name}", code)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    net = module.Net()
    if name == "snntorch_gesture":
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    else:
        torch.manual_seed(0)
        with torch.no_grad():  # trained-looking weights, so that layers fire
            for p in net.parameters():
                p.abs_().mul_(3.0) if fw == "sinabs" else p.mul_(3.0)
        torch.save(net.state_dict(), weights)
    net = net.to(device).eval()
    model = import_framework(
        weights, fw, f"{code}:Net", ImportOptions(input_size=(size, size)), device
    ).model
    return model, [(fw, *_framework_step(fw, net), "")]


def _framework_step(fw: str, net: Any) -> tuple[Callable[[torch.Tensor], Any], Callable[[], None]]:
    if fw == "snntorch":
        import snntorch

        def reset() -> None:
            for m in net.modules():
                if isinstance(m, snntorch.SpikingNeuron):
                    m.reset_mem()

        return net, reset
    if fw == "sinabs":
        import sinabs

        return net, lambda: sinabs.reset_states(net)
    from spikingjelly.activation_based import functional

    return (lambda x: net(x.unsqueeze(0))[0]), lambda: functional.reset_net(net)  # multi-step


def nir_file(name: str, tmp: Path) -> Path:
    """The ``.nir`` file of graph ``name`` (``nir_128`` is written into ``tmp``)."""
    if name == "nir_nmnist":
        if not NMNIST_NIR.is_file():
            raise FileNotFoundError(f"{NMNIST_NIR} (set DVSAPP_NMNIST_NIR)")
        return NMNIST_NIR
    import nir

    path = tmp / f"{name}.nir"
    nir.write(str(path), graph_128())
    return path


def read_graph(path: Path) -> Any:
    import nir

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nir.read(str(path))


def dvsapp_model(path: Path, device: torch.device) -> Any:
    """dvsapp's graph model of a ``.nir`` file (eval mode)."""
    from dvsapp.snn.graph.importer import ImportOptions, import_nir

    return import_nir(path, ImportOptions(bin_us=1000, time_steps=300), device).model


Peer = tuple[str, Callable[[torch.Tensor], Any] | None, Callable[[], None] | None, str]


def peers(path: Path, device: torch.device) -> list[Peer]:
    """(name, step, reset, why-not) per peer; step is None with the reason when it cannot be
    built. Each peer reads its own copy of the graph (readers may edit nodes in place)."""
    out: list[Peer] = []
    try:
        import sinabs

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = sinabs.from_nir(read_graph(path), batch_size=1).to(device).eval()
        out.append(("sinabs", net, lambda: sinabs.reset_states(net), ""))
    except Exception as exc:
        out.append(("sinabs", None, None, _why(exc)))
    try:
        from snntorch.import_nir import import_from_nir
        from snntorch.utils import reset as sn_reset

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sn = import_from_nir(read_graph(path)).to(device).eval()
        out.append(("snntorch", sn, lambda: sn_reset(sn), ""))
    except Exception as exc:
        out.append(("snntorch", None, None, _why(exc)))
    return out


def explain(name: str, why: str) -> str:
    """A peer's failure as a table note (with the cause where it is known)."""
    if name == "snntorch" and why.startswith("TypeError") and "got (tuple" in why:
        return (
            "TypeError: its IF (an snn.Leaky, beta 0.9, init_hidden=False) hands "
            "(spikes, membrane) to the next layer"
        )
    return why


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:160]


def spike_frames(shape: tuple[int, ...], n: int, density: float = 0.05) -> list[torch.Tensor]:
    """``n`` binary spike frames of the given density (fixed seed)."""
    gen = torch.Generator().manual_seed(0)
    return [(torch.rand(shape, generator=gen) < density).float() for _ in range(n)]


def temp_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="dvsapp_bench_nir_")

"""Tiny spiking models for the runtime tests (stepper, checkpoints, `dvsapp run`).

``toy``: 1x1 conv -> LIF (a [width, H, W] map) -> spatial mean -> linear -> LIF -> linear
head, tdBN-like (time-invariant). ``toy_bntt``: the same with a learned gain per step index
(like BNTT's per-step batch norm), so it must be reset every window. ``toy_wide``: the same
as ``toy`` with one more layer, for "tensors do not fit" cases.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from dvsapp.snn.base import ModelConfig, SpikingModel, SpikingNeuron
from dvsapp.snn.registry import register_architecture, unregister_architecture

TOY_ARCHS = ("toy", "toy_bntt", "toy_wide")


class ToyLIF(SpikingNeuron):
    """Hard-reset LIF: ``u = tau * u * (1 - o) + x``, ``o = u >= threshold``."""

    def __init__(self, threshold: float = 1.0, tau: float = 0.5) -> None:
        super().__init__(threshold)
        self.tau = tau

    def dynamics(
        self, x: torch.Tensor, v: torch.Tensor | None, o: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        u = x if v is None or o is None else self.tau * v * (1 - o) + x
        spikes = (u >= self.effective_threshold).to(x.dtype)
        return spikes, u, u


class ToyNet(SpikingModel):
    family = "tdbn"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        w = config.width
        th = config.neuron.get("threshold", 1.0)
        tau = config.neuron.get("tau", 0.5)
        self.conv = nn.Conv2d(config.in_channels, w, 1)
        self.lif1 = ToyLIF(th, tau)
        self.fc = nn.Linear(w, w)
        self.lif2 = ToyLIF(th, tau)
        self.head = nn.Linear(w, config.num_classes)

    def gain(self, t: int) -> torch.Tensor | float:
        return 1.0

    def _layer1(self, x: torch.Tensor, t: int) -> torch.Tensor:
        return self.conv(x) * self.gain(t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.stack([self._layer1(x_t, t) for t, x_t in enumerate(x)])
        s1 = self.lif1(a)
        s2 = self.lif2(self.fc(s1.mean((-2, -1))))
        return self.head(s2)

    def step(self, x_t: torch.Tensor) -> torch.Tensor:
        s1 = self.lif1.step(self._layer1(x_t, self.steps_taken))
        s2 = self.lif2.step(self.fc(s1.mean((-2, -1))))
        self.steps_taken += 1
        return self.head(s2)


class ToyBntt(ToyNet):
    family = "bntt"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.gamma = nn.Parameter(torch.linspace(1.5, 0.5, config.time_steps))

    def gain(self, t: int) -> torch.Tensor | float:
        return self.gamma[min(t, self.config.time_steps - 1)]


class ToyWide(ToyNet):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.extra = nn.Linear(config.width, config.width)


def toy_config(arch: str = "toy", **overrides: object) -> ModelConfig:
    base: dict[str, object] = {
        "num_classes": 3,
        "in_channels": 2,
        "input_size": (8, 8),
        "width": 8,
        "time_steps": 4,
        "neuron": {"threshold": 1.0, "tau": 0.5},
    }
    base.update(overrides)
    return ModelConfig(arch=arch, **base)  # type: ignore[arg-type]


def make_toy(arch: str = "toy", seed: int = 0, **overrides: object) -> ToyNet:
    torch.manual_seed(seed)
    cls = {"toy": ToyNet, "toy_bntt": ToyBntt, "toy_wide": ToyWide}[arch]
    model = cls(toy_config(arch, **overrides))
    with torch.no_grad():  # livelier than the default init: both LIF layers fire
        model.fc.weight.mul_(6.0)
        model.fc.bias.add_(0.5)
    return model


def make_polarity_detector(model: ToyNet) -> ToyNet:
    """Weights that make class 0 = mostly OFF events, 1 = mostly ON, 2 = no spikes."""
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.conv.weight[0, :, 0, 0] = torch.tensor([1.0, -1.0])
        model.conv.weight[1, :, 0, 0] = torch.tensor([-1.0, 1.0])
        model.fc.weight[0, 0] = model.fc.weight[1, 1] = 3.0
        model.head.weight[0, 0] = model.head.weight[1, 1] = 4.0
        model.head.bias[2] = 1.0
        if isinstance(model, ToyBntt):
            model.gamma.fill_(1.0)
    return model


@contextmanager
def single_thread() -> Iterator[None]:
    """One torch thread: tiny models gain nothing from more, and on a busy 2-core machine
    OpenMP's spinning threads make a 1 ms step take 100 ms."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def toy_architectures() -> Iterator[None]:
    """Register the toy archs for the duration of a test."""
    classes = {"toy": ToyNet, "toy_bntt": ToyBntt, "toy_wide": ToyWide}
    for arch, cls in classes.items():
        register_architecture(arch, cls, lambda a=arch, **kw: toy_config(a, **kw))
    try:
        yield
    finally:
        for arch in classes:
            unregister_architecture(arch)


#: Tiny configs of the shipped architectures (a few thousand weights, 16x16 input, T = 4).
REAL_SMALL: dict[str, dict[str, object]] = {
    "resnet_small": {"width": 4, "input_size": (16, 16), "num_classes": 3, "time_steps": 4},
    "vgg_small": {"width": 4, "input_size": (16, 16), "num_classes": 3, "time_steps": 4},
}


def small_real_model(arch: str, seed: int = 0) -> SpikingModel:
    """A tiny shipped-architecture model with perturbed weights and statistics (so that a
    wrong tensor shows in the outputs), in eval mode."""
    from dvsapp.snn.registry import build_model, default_config

    torch.manual_seed(seed)
    model = build_model(default_config(arch, **REAL_SMALL[arch]))  # type: ignore[arg-type]
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                t.normal_(0.0, 0.1)
            elif name.endswith("bntt.weight"):  # BNTT gammas: strong enough to fire by step 2
                t.uniform_(2.0, 3.0)
            else:
                t.mul_(1.0 + 0.3 * torch.randn_like(t))
    return model.eval()

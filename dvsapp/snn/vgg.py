"""BNTT VGG spiking networks (Kim & Panda 2020): ``vgg9``, ``vgg11`` and ``vgg_small``.

Layouts follow the official code (``Intelligent-Computing-Lab-Yale/BNTT-Batch-Normalization-
Through-Time``, ``model.py``: ``SNN_VGG9_BNTT``, ``SNN_VGG11_BNTT``), with the channel counts
scaled by ``width`` (64 gives the official networks). Every conv is 3x3, stride 1, padding
1, bias-free, followed by a per-step BN (:class:`BnttNorm`) and a :class:`BnttLIF`; a 2x2
average pool, where there is one, pools the spikes. Weights start Xavier-uniform with gain 2.

* vgg9:  w, w, A, 2w, 2w, A, 4w, 4w, 4w, A; fc (H/8 * W/8 * 4w -> 16w) BN LIF; fc (16w -> K)
* vgg11: w, A, 2w, A, 4w, 4w, A, 8w, 8w, A, 8w, 8w, global avg; fc (8w -> 64w) BN LIF; fc (-> K)
* vgg_small (ours, for real time on a small CPU): w, A, 2w, A, 2w, A; fc (H/8 * W/8 * 2w -> 8w)
  BN LIF; fc (8w -> K); default 2x32x32 input, w = 16.

The output layer is bias-free and never spikes: step ``t`` returns ``fc2(spikes_t)``, so the
mean of the per-step outputs equals the official integrated ``mem_fc2 / num_steps``. The
official code has no dropout, and neither do these networks.

Two modes over one set of weights (see :mod:`dvsapp.snn.base`): ``forward`` over
``[T, B, C, H, W]`` runs layer by layer with per-step batch statistics in training, and step
by step with the cached per-step affine BN in eval (the same kernels ``step`` uses, so T
calls of ``step`` reproduce it exactly); ``step`` picks ``BN_t`` by ``steps_taken``. Past
the trained T, ``beyond_t`` decides: ``"clamp"`` reuses the last step's BN, ``"error"``
raises :class:`BeyondTrainedStepsError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import torch
from torch import nn

from dvsapp.snn.base import ModelConfig, SpikingModel, SpikingNeuron
from dvsapp.snn.bntt import (
    BEYOND_T_POLICIES,
    BNTT_NEURON_DEFAULTS,
    BeyondTrainedStepsError,
    BnttLIF,
    BnttNorm,
)

VGG_ARCHS = ("vgg9", "vgg11", "vgg_small")

#: Per arch: conv channels as multiples of ``width``, "A" (2x2 avg pool) or "G" (global avg
#: pool) after the conv before it; and the hidden fc width as a multiple of ``width``.
_LAYOUTS: dict[str, tuple[tuple[int | str, ...], int]] = {
    "vgg9": ((1, 1, "A", 2, 2, "A", 4, 4, 4, "A"), 16),
    "vgg11": ((1, "A", 2, "A", 4, 4, "A", 8, 8, "A", 8, 8, "G"), 64),
    "vgg_small": ((1, "A", 2, "A", 2, "A"), 8),
}

#: Dataset settings of the paper for the two official networks (K classes, T, input).
BNTT_PRESETS: dict[str, dict[str, Any]] = {
    "cifar10": {"in_channels": 3, "num_classes": 10, "input_size": (32, 32), "time_steps": 25},
    # 64x64 (the 128x128 sensor halved) is our choice: it keeps vgg9's fc1 at 16.8M weights.
    "cifar10-dvs": {"in_channels": 2, "num_classes": 10, "input_size": (64, 64), "time_steps": 20},
}

_Fire = Callable[[int, SpikingNeuron, torch.Tensor], torch.Tensor]


class BnttConvBlock(nn.Module):
    """conv3x3 (no bias) -> per-step BN -> LIF -> optional pool."""

    def __init__(
        self, cin: int, cout: int, time_steps: int, neuron: dict[str, float], pool: nn.Module
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=False)
        self.bntt = BnttNorm(cout, time_steps)
        self.lif = BnttLIF(**neuron)
        self.pool = pool


class BnttLinearBlock(nn.Module):
    """fc (no bias) -> per-step BN -> LIF."""

    def __init__(self, fin: int, fout: int, time_steps: int, neuron: dict[str, float]) -> None:
        super().__init__()
        self.fc = nn.Linear(fin, fout, bias=False)
        self.bntt = BnttNorm(fout, time_steps)
        self.lif = BnttLIF(**neuron)


def _neuron_params(neuron: dict[str, float]) -> dict[str, float]:
    unknown = set(neuron) - set(BNTT_NEURON_DEFAULTS)
    if unknown:
        raise ValueError(
            f"unknown BNTT neuron parameters {sorted(unknown)}; "
            f"known: {sorted(BNTT_NEURON_DEFAULTS)}"
        )
    return {k: float(v) for k, v in {**BNTT_NEURON_DEFAULTS, **neuron}.items()}


class BnttVGG(SpikingModel):
    """A VGG of conv/BNTT/LIF blocks, one spiking fc layer and an integrating output fc."""

    family: ClassVar[str] = "bntt"

    def __init__(self, config: ModelConfig, beyond_t: str = "clamp") -> None:
        if config.arch not in _LAYOUTS:
            raise ValueError(f"unknown BNTT VGG arch {config.arch!r}; known: {VGG_ARCHS}")
        if config.norm not in ("default", "bntt"):
            raise ValueError(f"BNTT VGGs need their per-step normalisation (norm {config.norm!r})")
        config = replace(config, neuron=_neuron_params(config.neuron))
        super().__init__(config)
        self.beyond_t = beyond_t
        layout, hidden_mult = _LAYOUTS[config.arch]
        width, height = config.input_size
        n_pools = sum(1 for v in layout if v == "A")
        if min(width, height) < 2**n_pools:
            raise ValueError(f"{config.arch} needs an input of at least {2**n_pools} pixels")
        T, w = config.time_steps, config.width
        blocks: list[BnttConvBlock] = []
        cin = config.in_channels
        for i, v in enumerate(layout):
            if isinstance(v, str):
                continue
            nxt = layout[i + 1] if i + 1 < len(layout) else None
            pool: nn.Module = (
                nn.AvgPool2d(2) if nxt == "A" else nn.AdaptiveAvgPool2d(1) if nxt == "G"
                else nn.Identity()
            )  # fmt: skip
            blocks.append(BnttConvBlock(cin, v * w, T, config.neuron, pool))
            cin = v * w
        self.features = nn.ModuleList(blocks)
        spatial = 1 if layout[-1] == "G" else (height >> n_pools) * (width >> n_pools)
        self.fc1 = BnttLinearBlock(cin * spatial, hidden_mult * w, T, config.neuron)
        self.fc2 = nn.Linear(hidden_mult * w, config.num_classes, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.xavier_uniform_(m.weight, gain=2)
        self._input_shape = (config.in_channels, height, width)

    @property
    def time_steps(self) -> int:
        """The T the model was trained with (number of per-step BN statistics)."""
        return self.config.time_steps

    @property
    def beyond_t(self) -> str:
        """What a step past the trained T does: ``"clamp"`` (last BN) or ``"error"``."""
        return self._beyond_t

    @beyond_t.setter
    def beyond_t(self, policy: str) -> None:
        if policy not in BEYOND_T_POLICIES:
            raise ValueError(f"beyond_t must be one of {BEYOND_T_POLICIES}, got {policy!r}")
        self._beyond_t = policy

    def bn_index(self, t: int) -> int:
        """The BN statistics that serve 0-based step ``t`` under the ``beyond_t`` policy."""
        T = self.time_steps
        if t < T:
            return t
        if self.training or self._beyond_t == "error":
            why = "in training" if self.training else "with beyond_t='error'"
            raise BeyondTrainedStepsError(
                f"step {t + 1} is past the T={T} steps this model was trained with ({why}); "
                f"reset the model every {T} steps or use beyond_t='clamp'"
            )
        return T - 1

    def _check_frame(self, shape: Sequence[int]) -> None:
        if tuple(shape) != self._input_shape:
            raise ValueError(
                f"expected frames of shape [C, H, W] = {list(self._input_shape)}, got {list(shape)}"
            )

    def _step_impl(self, x: torch.Tensor, t: int, fire: _Fire) -> torch.Tensor:
        idx = self.bn_index(t)
        h = x
        for i, block in enumerate(self.features):
            h = block.pool(fire(i, block.lif, block.bntt.step(block.conv(h), idx)))
        fc1 = self.fc1
        h = fire(len(self.features), fc1.lif, fc1.bntt.step(fc1.fc(h.flatten(1)), idx))
        return self.fc2(h)

    def step(self, x_t: torch.Tensor) -> torch.Tensor:
        """One frame ``[B, C, H, W]`` -> this step's output ``[B, K]``; neurons keep state."""
        if x_t.dim() != 4:
            raise ValueError(f"step expects [B, C, H, W], got shape {list(x_t.shape)}")
        self._check_frame(x_t.shape[1:])
        out = self._step_impl(x_t, self.steps_taken, _fire_stateful)
        self.steps_taken += 1
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, C, H, W]`` -> per-step outputs ``[T, B, K]`` from a fresh state."""
        if x.dim() != 5:
            raise ValueError(f"forward expects [T, B, C, H, W], got shape {list(x.shape)}")
        self._check_frame(x.shape[2:])
        if self.training:
            return self._forward_layers(x)
        n_lif = len(self.features) + 1
        v: list[torch.Tensor | None] = [None] * n_lif
        o: list[torch.Tensor | None] = [None] * n_lif

        def fire(i: int, lif: SpikingNeuron, h: torch.Tensor) -> torch.Tensor:
            o[i], _, v[i] = lif.dynamics(h, v[i], o[i])
            return o[i]

        return torch.stack([self._step_impl(x_t, t, fire) for t, x_t in enumerate(x)])

    def _forward_layers(self, x: torch.Tensor) -> torch.Tensor:
        """Training: each layer over the whole sequence (convs batched over T and B)."""
        T, B = x.shape[:2]
        self.bn_index(T - 1)  # raises when T exceeds the trained steps
        h = x
        for block in self.features:
            y = block.conv(h.flatten(0, 1)).unflatten(0, (T, B))
            s = block.lif(block.bntt(y))
            h = block.pool(s.flatten(0, 1)).unflatten(0, (T, B))
        s = self.fc1.lif(self.fc1.bntt(self.fc1.fc(h.flatten(2))))
        return self.fc2(s)


def _fire_stateful(i: int, lif: SpikingNeuron, h: torch.Tensor) -> torch.Tensor:
    return lif.step(h)


#: Per arch: the builder's own defaults and its default preset.
_BUILDER_DEFAULTS: dict[str, tuple[dict[str, Any], str | None]] = {
    "vgg9": ({"width": 64}, "cifar10-dvs"),
    "vgg11": ({"width": 64}, "cifar10-dvs"),
    "vgg_small": (
        {"width": 16, "in_channels": 2, "num_classes": 11, "input_size": (32, 32),
         "time_steps": 20},
        None,
    ),
}  # fmt: skip

_UNSET: Any = object()


def default_config(arch: str, *, preset: str | None = _UNSET, **overrides: Any) -> ModelConfig:
    """The config that the builder ``arch(preset=..., **overrides)`` gives, without building
    it: builder defaults, then the preset, then ``overrides``; neuron parameters completed."""
    if arch not in _BUILDER_DEFAULTS:
        raise ValueError(f"unknown BNTT VGG arch {arch!r}; known: {VGG_ARCHS}")
    defaults, default_preset = _BUILDER_DEFAULTS[arch]
    preset = default_preset if preset is _UNSET else preset
    overrides.pop("beyond_t", None)  # a model attribute, not part of the config
    fields: dict[str, Any] = dict(defaults)
    if preset is not None:
        if preset not in BNTT_PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known: {sorted(BNTT_PRESETS)}")
        fields.update(BNTT_PRESETS[preset])
    fields.update(overrides)
    if "input_size" in fields:
        fields["input_size"] = tuple(fields["input_size"])
    fields["neuron"] = _neuron_params(fields.get("neuron", {}))
    return ModelConfig(arch=arch, **fields)


def _build(arch: str, preset: str | None, overrides: dict[str, Any]) -> BnttVGG:
    beyond_t = overrides.pop("beyond_t", "clamp")
    return BnttVGG(default_config(arch, preset=preset, **overrides), beyond_t=beyond_t)


def vgg9(*, preset: str | None = "cifar10-dvs", **overrides: Any) -> BnttVGG:
    """BNTT VGG9 (width 64). ``preset``: "cifar10-dvs" (2x64x64, T=20, 10 classes) or
    "cifar10" (3x32x32, T=25); ``overrides`` set any :class:`ModelConfig` field (``neuron``
    merges with leak 0.95, threshold 1.0, surrogate_factor 0.3) and ``beyond_t``."""
    return _build("vgg9", preset, overrides)


def vgg11(*, preset: str | None = "cifar10-dvs", **overrides: Any) -> BnttVGG:
    """BNTT VGG11 (width 64); presets and overrides as in :func:`vgg9`."""
    return _build("vgg11", preset, overrides)


def vgg_small(*, preset: str | None = None, **overrides: Any) -> BnttVGG:
    """A narrow BNTT VGG for real-time stepping on a small CPU: 2x32x32 input, width 16,
    11 classes (DVS-Gesture), T=20; overrides as in :func:`vgg9`."""
    return _build("vgg_small", preset, overrides)

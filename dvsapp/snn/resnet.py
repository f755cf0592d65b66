"""The tdBN ResNet-SNN family: ResNet-17 (DVS-Gesture), ResNet-19 (CIFAR-10, DVS-CIFAR10) and a
small member that steps in real time on a laptop CPU.

Every weighted layer but the classifier is followed by tdBN (convolutions) and a
:class:`~dvsapp.snn.tdbn.TdLIF`. The basic block is the tdBN paper's::

    x ─ conv3x3 ─ tdBN ─ LIF ─ conv3x3 ─ tdBN(α) ─┐
    └───────── identity, or conv1x1 ─ tdBN(α) ────┴─ + ─ LIF

with ``α = 1/sqrt(2)`` on the two branches that meet at the add and ``α = 1`` elsewhere.
The head averages the last spike maps over H and W, then ``Linear ─ LIF ─ Linear``: the last
layer does not spike, and its per-step outputs are the logits (the prediction after ``t``
steps is their mean).

Layouts (channels as multiples of ``ModelConfig.width``), and where they come from. The
authors published no code, and the paper's architecture table could not be read here, so
these follow third-party code that cites the paper:

* ``resnet19`` (width 128): stem conv3x3 128; blocks 128 x3, 256 x3 (stride 2),
  512 x2 (stride 2); average pool; fc 256; fc classes: 1 + 16 + 2 = 19 weighted layers.
  As in the ``ResNet(BasicBlock, [3, 3, 2])`` ResNet-19 of the TET-derived tdBN code and the
  ``Spiking_ResNet19_Zheng`` spec (channels ``[c,c,c,2c,2c,2c,4c,4c]``, strides
  ``[1,1,1,2,1,1,2,1]``, FC1 ``2c``, c = 128). The latter pools 2x2 and flattens before FC1;
  we pool globally, as the TET-derived code does.
* ``resnet17`` (width 64): stem conv3x3 64; blocks 64 x3 (the first stride 2), 128 x4 (the
  first stride 2); average pool; fc 256; fc classes: 1 + 14 + 2 = 17 weighted layers.
  From the ``Spiking_DVS_ResNet17_Zheng`` spec (channels ``[c,c,c,2c,2c,2c,2c]``, strides
  ``[2,1,1,2,1,1,1]``, FC1 ``4c``, c = 64). That code also inserts two spiking max-pools and
  an extra conv after the stem "for DVS data" (its own addition, which would make 18 layers)
  and pools 2x2 before FC1; we do neither and pool globally. At 128x128 input the stem runs at
  full resolution.
* ``resnet_small`` (width 16, ours): stem conv3x3 16 stride 2; blocks 16, 32 (stride 2),
  64 (stride 2), one each; average pool; fc 64; fc classes. 2x64x64 input by default.

The hidden FC has a bias and no normalisation (as in the TET-derived code); convolutions have
no bias (tdBN's shift replaces it).

Two execution modes over one set of weights (see :mod:`dvsapp.snn.base`):

* ``forward`` over ``[T, B, C, H, W]``: each conv runs once over the merged ``T*B`` batch, so
  tdBN's training statistics cover (T, B, H, W); each LIF layer then loops over time.
* ``step`` over ``[B, C, H, W]``: the state lives in the LIF layers. tdBN uses its running
  statistics (a single frame has no sequence statistics). In eval mode the statistics are
  folded into the conv weights and bias once and cached; the cache is dropped on ``train()``
  and recomputed when a weight, BN parameter or running statistic changes (data pointer or
  version counter), e.g. after an optimiser step, ``load_state_dict`` or ``to(device)``.
  ``forward`` in eval mode uses the same folded weights, so T steps equal one forward. Folded
  weights are detached unless grad mode is on and the conv weight requires grad (then the
  fold is recomputed, differentiably, on each call). Nothing in the network depends on the
  step index, so stepping can go on past the trained ``time_steps`` (free-running).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dvsapp.snn.base import ModelConfig, SpikingModel
from dvsapp.snn.tdbn import RESIDUAL_ALPHA, TDBN_NEURON_DEFAULTS, TdBatchNorm, TdLIF

__all__ = [
    "LAYOUTS",
    "RESNET_ARCHS",
    "BasicBlock",
    "ResNetLayout",
    "TdConvBN",
    "TdbnResNet",
    "conv1x1_bn",
    "conv3x3_bn",
    "default_config",
    "resnet17",
    "resnet19",
    "resnet_small",
]

RESNET_ARCHS = ("resnet17", "resnet19", "resnet_small")


@dataclass(frozen=True)
class ResNetLayout:
    """A channel plan, in multiples of ``ModelConfig.width``."""

    stem_stride: int
    #: (channel multiple, number of blocks, stride of the stage's first block) per stage
    stages: tuple[tuple[int, int, int], ...]
    #: hidden FC width as a multiple of ``width``
    hidden_multiple: int


LAYOUTS: dict[str, ResNetLayout] = {
    "resnet17": ResNetLayout(stem_stride=1, stages=((1, 3, 2), (2, 4, 2)), hidden_multiple=4),
    "resnet19": ResNetLayout(
        stem_stride=1, stages=((1, 3, 1), (2, 3, 2), (4, 2, 2)), hidden_multiple=2
    ),
    "resnet_small": ResNetLayout(
        stem_stride=2, stages=((1, 1, 1), (2, 1, 2), (4, 1, 2)), hidden_multiple=4
    ),
}

_DEFAULT_CONFIGS: dict[str, dict[str, Any]] = {
    # DVS-Gesture: 2x128x128, 11 classes, T = 40 (tdBN paper)
    "resnet17": {
        "num_classes": 11, "in_channels": 2, "input_size": (128, 128), "width": 64,
        "time_steps": 40,
    },
    # DVS-CIFAR10 downsampled to 48x48, T = 10 (tdBN paper: T = 10); CIFAR-10: in_channels=3,
    # input_size=(32, 32), time_steps=6
    "resnet19": {
        "num_classes": 10, "in_channels": 2, "input_size": (48, 48), "width": 128,
        "time_steps": 10,
    },
    "resnet_small": {
        "num_classes": 11, "in_channels": 2, "input_size": (64, 64), "width": 16,
        "time_steps": 16,
    },
}  # fmt: skip


class TdConvBN(nn.Module):
    """A bias-free convolution and its tdBN; folded into one conv in eval mode."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        v_th: float = TDBN_NEURON_DEFAULTS["threshold"],
        alpha: float = 1.0,
        norm: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False
        )
        #: None without normalisation (``ModelConfig.norm == "none"``): a plain convolution.
        self.bn = TdBatchNorm(out_channels, v_th=v_th, alpha=alpha) if norm else None
        # (key of the sources' data pointers and versions, folded weight, folded bias)
        self._fold_cache: tuple[tuple, torch.Tensor, torch.Tensor] | None = None

    def train(self, mode: bool = True) -> TdConvBN:
        self._fold_cache = None
        return super().train(mode)

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of conv + tdBN with the running statistics, as one conv."""
        if self.bn is None:
            return self.conv.weight, self.conv.bias
        if torch.is_grad_enabled() and self.conv.weight.requires_grad:
            return self.bn.fold(self.conv.weight, self.conv.bias)  # differentiable, uncached
        sources = (self.conv.weight, self.bn.weight, self.bn.bias, self.bn.running_mean,
                   self.bn.running_var)  # fmt: skip
        key = tuple((t.data_ptr(), t._version) for t in sources)
        if self._fold_cache is None or self._fold_cache[0] != key:
            # Plain tensors even inside inference_mode, so the cache stays usable outside it.
            with torch.inference_mode(False), torch.no_grad():
                weight, bias = self.bn.fold(self.conv.weight, self.conv.bias)
            self._fold_cache = (key, weight, bias)
        return self._fold_cache[1], self._fold_cache[2]

    def _folded_conv(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.folded()
        return F.conv2d(x, weight, bias, self.conv.stride, self.conv.padding)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        """``[T, B, C, H, W]``: one conv over the merged ``T*B`` batch, then tdBN."""
        x = x_seq.flatten(0, 1)
        # In eval, or without normalisation (folded() is then the conv itself): one conv.
        norm = self.training and self.bn is not None
        y = self.bn(self.conv(x)) if norm else self._folded_conv(x)
        return y.unflatten(0, x_seq.shape[:2])

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` with the running statistics (folded in eval mode)."""
        if self.training and self.bn is not None:
            return self.bn.infer(self.conv(x))
        return self._folded_conv(x)


def conv3x3_bn(
    in_channels: int,
    out_channels: int,
    stride: int = 1,
    v_th: float = 0.2,
    alpha: float = 1.0,
    norm: bool = True,
) -> TdConvBN:
    """3x3 convolution (padding 1) with tdBN (or without any, ``norm=False``)."""
    return TdConvBN(in_channels, out_channels, 3, stride, v_th, alpha, norm)


def conv1x1_bn(
    in_channels: int,
    out_channels: int,
    stride: int = 1,
    v_th: float = 0.2,
    alpha: float = 1.0,
    norm: bool = True,
) -> TdConvBN:
    """1x1 convolution with tdBN (the projection shortcut)."""
    return TdConvBN(in_channels, out_channels, 1, stride, v_th, alpha, norm)


class BasicBlock(nn.Module):
    """tdBN basic block: the spike layer comes after the residual add."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        neuron: dict[str, float],
        stride: int = 1,
        downsample: TdConvBN | None = None,
        norm: bool = True,
    ) -> None:
        super().__init__()
        v_th = neuron["threshold"]
        self.conv1 = conv3x3_bn(inplanes, planes, stride, v_th, norm=norm)
        self.lif1 = TdLIF(**neuron)
        self.conv2 = conv3x3_bn(planes, planes, 1, v_th, alpha=RESIDUAL_ALPHA, norm=norm)
        self.downsample = downsample
        self.lif2 = TdLIF(**neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.lif1(self.conv1(x)))
        return self.lif2(out + identity)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample.step(x)
        out = self.conv2.step(self.lif1.step(self.conv1.step(x)))
        return self.lif2.step(out + identity)


def _neuron_params(config: ModelConfig) -> dict[str, float]:
    unknown = set(config.neuron) - set(TDBN_NEURON_DEFAULTS)
    if unknown:
        raise ValueError(
            f"unknown tdBN neuron parameters {sorted(unknown)}; "
            f"expected {sorted(TDBN_NEURON_DEFAULTS)}"
        )
    return {**TDBN_NEURON_DEFAULTS, **{k: float(v) for k, v in config.neuron.items()}}


class TdbnResNet(SpikingModel):
    """A tdBN ResNet-SNN built from a :class:`ModelConfig` (``arch`` in :data:`RESNET_ARCHS`).

    Modules are named torchvision-style: ``conv1``/``lif1`` (stem), ``layer{i}.{j}`` (blocks),
    ``fc_hidden``/``lif_hidden`` and ``fc`` (classifier, no spikes).
    """

    family = "tdbn"

    def __init__(self, config: ModelConfig) -> None:
        if config.arch not in LAYOUTS:
            raise ValueError(f"unknown tdBN ResNet arch {config.arch!r}; expected {RESNET_ARCHS}")
        if config.norm not in ("default", "tdbn", "none"):
            raise ValueError(f"norm must be 'default', 'tdbn' or 'none', not {config.norm!r}")
        neuron = _neuron_params(config)
        super().__init__(dataclasses.replace(config, neuron=neuron))
        layout = LAYOUTS[config.arch]
        width, v_th = config.width, neuron["threshold"]
        self.norm = config.norm != "none"

        self.conv1 = conv3x3_bn(config.in_channels, width, layout.stem_stride, v_th, norm=self.norm)
        self.lif1 = TdLIF(**neuron)
        self.inplanes = width
        self.stage_names: tuple[str, ...] = ()
        for i, (multiple, blocks, stride) in enumerate(layout.stages, start=1):
            name = f"layer{i}"
            setattr(self, name, self._make_layer(width * multiple, blocks, stride, neuron))
            self.stage_names += (name,)
        hidden = width * layout.hidden_multiple
        self.fc_hidden = nn.Linear(self.inplanes, hidden)
        self.lif_hidden = TdLIF(**neuron)
        self.fc = nn.Linear(hidden, config.num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(
        self, planes: int, blocks: int, stride: int, neuron: dict[str, float]
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * BasicBlock.expansion:
            downsample = conv1x1_bn(
                self.inplanes, planes, stride, neuron["threshold"], RESIDUAL_ALPHA, self.norm
            )
        layers = [BasicBlock(self.inplanes, planes, neuron, stride, downsample, self.norm)]
        self.inplanes = planes * BasicBlock.expansion
        layers += [
            BasicBlock(self.inplanes, planes, neuron, norm=self.norm) for _ in range(1, blocks)
        ]
        return nn.Sequential(*layers)

    def stages(self) -> list[nn.Sequential]:
        """The residual stages in order (``layer1``, ``layer2``, ...)."""
        return [getattr(self, name) for name in self.stage_names]

    def _check_input(self, x: torch.Tensor, dims: int, what: str) -> None:
        if x.dim() != dims or x.shape[-3] != self.config.in_channels:
            raise ValueError(
                f"expected {what} with C={self.config.in_channels}, got shape {tuple(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, C, H, W]`` -> per-step logits ``[T, B, K]``, from a fresh state."""
        self._check_input(x, 5, "[T, B, C, H, W]")
        out = self.lif1(self.conv1(x))
        for stage in self.stages():
            out = stage(out)
        out = out.mean(dim=(-2, -1))
        return self.fc(self.lif_hidden(self.fc_hidden(out)))

    def step(self, x_t: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> this step's logits ``[B, K]``; the neuron state persists."""
        self._check_input(x_t, 4, "[B, C, H, W]")
        out = self.lif1.step(self.conv1.step(x_t))
        for stage in self.stages():
            for block in stage:
                out = block.step(out)
        out = out.mean(dim=(-2, -1))
        logits = self.fc(self.lif_hidden.step(self.fc_hidden(out)))
        self.steps_taken += 1
        return logits


def default_config(arch: str, **overrides: Any) -> ModelConfig:
    """The default :class:`ModelConfig` of ``arch`` with ``overrides`` applied.

    ``neuron`` overrides merge into the defaults (:data:`TDBN_NEURON_DEFAULTS`).
    """
    if arch not in _DEFAULT_CONFIGS:
        raise ValueError(f"unknown tdBN ResNet arch {arch!r}; expected {RESNET_ARCHS}")
    neuron = {**TDBN_NEURON_DEFAULTS, **overrides.pop("neuron", {})}
    fields = {**_DEFAULT_CONFIGS[arch], **overrides}
    fields["input_size"] = tuple(fields["input_size"])
    return ModelConfig(arch=arch, neuron=neuron, **fields)


def resnet17(**overrides: Any) -> TdbnResNet:
    """ResNet-17 for DVS-Gesture (2x128x128, 11 classes, width 64, T = 40)."""
    return TdbnResNet(default_config("resnet17", **overrides))


def resnet19(**overrides: Any) -> TdbnResNet:
    """ResNet-19 for DVS-CIFAR10 (2x48x48, 10 classes, width 128, T = 10) or CIFAR-10
    (``in_channels=3, input_size=(32, 32), time_steps=6``)."""
    return TdbnResNet(default_config("resnet19", **overrides))


def resnet_small(**overrides: Any) -> TdbnResNet:
    """A small real-time member (2x64x64, 11 classes, width 16, T = 16)."""
    return TdbnResNet(default_config("resnet_small", **overrides))

"""The tdBN ResNet-SNN family: ResNet-17 (DVS-Gesture), ResNet-19 (CIFAR-10, DVS-CIFAR10) and a
small member that steps in real time on a laptop CPU.

Every weighted layer but the classifier is followed by tdBN (convolutions) and a
:class:`~dvsapp.snn.tdbn.TdLIF`. The basic block is the tdBN paper's::

    x ─ conv3x3 ─ tdBN ─ LIF ─ conv3x3 ─ tdBN(α) ─┐
    └──── tdBN(α), or conv1x1 ─ tdBN(α) ──────────┴─ + ─ LIF

with ``α = 1/sqrt(2)`` on the two branches that meet at the add and ``α = 1`` elsewhere: the
paper replaces ReLU by LIF and BN by tdBN and modifies the shortcut with a tdBN before the
add, so both inputs of the add are normalised to ``α * Vth`` and (uncorrelated) their sum to
``Vth``, as after any other tdBN. Where the shapes agree the shortcut is the tdBN(α) alone,
or, in layout revision 1 and in ``resnet_small``, the identity (the spikes themselves).
The head averages the last spike maps over H and W, then ``Linear ─ LIF ─ Linear``: the last
layer does not spike, and its per-step outputs are the logits (the prediction after ``t``
steps is their mean).

Layout revisions (``ModelConfig.layout``; a config without the field is revision 1, so every
checkpoint written before it existed loads and computes exactly as before):

* **2** (the tdBN paper's; every builder and :func:`default_config` makes it): an identity
  shortcut of ``resnet17`` and ``resnet19`` carries a tdBN(α) (:class:`TdShortcutBN`), and
  ``resnet17``'s encoding layer downsamples with a stride-2 convolution, after which
  "channels double whenever the feature map halves" (the paper's architecture as our reading
  note of it describes it): its first stage keeps the stem's 64x64 map.
* **1** (the original layout): identity shortcuts add the spikes themselves; ``resnet17``'s
  stem runs at full resolution (128x128) and its first block halves the map with 64
  channels kept.

Layouts (channels as multiples of ``ModelConfig.width``), and where they come from. The
authors published no code, and the paper's architecture table could not be read here, so
the channel plans follow third-party code that cites the paper:

* ``resnet19`` (width 128): stem conv3x3 128 (stride 1); blocks 128 x3, 256 x3 (stride 2),
  512 x2 (stride 2); global average pool; fc 256; fc classes: 1 + 16 + 2 = 19 weighted
  layers, in both revisions (only the identity shortcuts differ). The stem and the blocks are
  those of MPBN's ``resnet19_cifar`` (``ResNet_Cifar(BasicBlock, [3, 3, 2])``, 128 planes
  from the stem) and of AutoSNN's ``Spiking_ResNet19_Zheng`` spec (stem ``c``, channels
  ``[c,c,c,2c,2c,2c,4c,4c]``, strides ``[1,1,1,2,1,1,2,1]``, c = 128); the global pool is
  MPBN's (AutoSNN pools 2x2 and flattens); the hidden fc 256 is AutoSNN's FC1 (``2c``; MPBN
  has none). TET's ``resnet19`` (the TET-derived tdBN code) differs: its stem has 64
  channels and its first block a 1x1 projection to 128; we do not follow it there.
* ``resnet17`` (width 64): stem conv3x3 64; blocks 64 x3, 128 x4 (the first stride 2);
  average pool; fc 256; fc classes: 1 + 14 + 2 = 17 weighted layers. The channel plan and
  FC1 come from AutoSNN's ``Spiking_DVS_ResNet17_Zheng`` spec (channels
  ``[c,c,c,2c,2c,2c,2c]``, FC1 ``4c``, c = 64). Revision 2: stem stride 2, first stage stride
  1 (maps 64x64, then 32x32 at 128x128 input). Revision 1: stem stride 1, first stage stride
  2, as that spec's strides ``[2,1,1,2,1,1,1]`` (maps 128x128 at the stem, then 64x64, 32x32).
  Both halve twice; revision 2 halves in the stem, as the paper says. The spec also inserts
  two spiking max-pools and an extra conv after the stem "for DVS data" (its own addition,
  which would make 18 layers) and pools 2x2 before FC1; we do neither and pool globally.
* ``resnet_small`` (width 16, ours): stem conv3x3 16 stride 2; blocks 16, 32 (stride 2),
  64 (stride 2), one each; average pool; fc 64; fc classes. 2x64x64 input by default. The
  same in both revisions. Its stem already downsamples and its channels already double at
  every halving, as the paper's rules say. Its one identity shortcut (``layer1.0``) keeps no
  tdBN: the paper's block rule would apply to it, but this member is ours, not the paper's,
  and the shipped ``resnet_small_synth*`` models and ``dvsapp train --init`` from them (which
  copies matching tensors into a freshly built model) rely on new builds having exactly their
  tensors; a shortcut tdBN would start fine-tuning from a different function.

The hidden FC has a bias and no normalisation (as in TET's code); convolutions have no bias
(tdBN's shift replaces it). SpikingJelly's tdBN stores gamma already multiplied by
``alpha * Vth``; :func:`load_spikingjelly_conv_bn` loads one into a :class:`TdConvBN`
(see :func:`dvsapp.snn.tdbn.load_spikingjelly_tdbn` for the rule).

Two execution modes over one set of weights (see :mod:`dvsapp.snn.base`):

* ``forward`` over ``[T, B, C, H, W]``: each conv runs once over the merged ``T*B`` batch, so
  tdBN's training statistics cover (T, B, H, W); each LIF layer then loops over time.
* ``step`` over ``[B, C, H, W]``: the state lives in the LIF layers. tdBN uses its running
  statistics (a single frame has no sequence statistics). In eval mode the statistics are
  folded into the conv weights and bias once and cached (a shortcut tdBN: into a per-channel
  scale and shift); the cache is dropped on ``train()`` and recomputed when a weight, BN
  parameter or running statistic changes (data pointer or version counter), e.g. after an
  optimiser step, ``load_state_dict`` or ``to(device)``. ``forward`` in eval mode uses the
  same folded weights, so T steps equal one forward. Folded weights are detached unless grad
  mode is on and the weight requires grad (then the fold is recomputed, differentiably, on
  each call). Nothing in the network depends on the step index, so stepping can go on past
  the trained ``time_steps`` (free-running).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dvsapp.snn.base import ModelConfig, SpikingModel
from dvsapp.snn.tdbn import (
    RESIDUAL_ALPHA,
    TDBN_NEURON_DEFAULTS,
    TdBatchNorm,
    TdLIF,
    load_spikingjelly_tdbn,
)

__all__ = [
    "CURRENT_LAYOUT",
    "LAYOUTS",
    "ORIGINAL_LAYOUT",
    "RESNET_ARCHS",
    "BasicBlock",
    "ResNetLayout",
    "TdConvBN",
    "TdShortcutBN",
    "TdbnResNet",
    "conv1x1_bn",
    "conv3x3_bn",
    "default_config",
    "load_spikingjelly_conv_bn",
    "resnet17",
    "resnet19",
    "resnet_small",
]

RESNET_ARCHS = ("resnet17", "resnet19", "resnet_small")


#: ``ModelConfig.layout`` of a config that does not name one: the original layout.
ORIGINAL_LAYOUT = 1
#: The layout the builders make: the tdBN paper's.
CURRENT_LAYOUT = 2


@dataclass(frozen=True)
class ResNetLayout:
    """A channel plan, in multiples of ``ModelConfig.width``."""

    stem_stride: int
    #: (channel multiple, number of blocks, stride of the stage's first block) per stage
    stages: tuple[tuple[int, int, int], ...]
    #: hidden FC width as a multiple of ``width``
    hidden_multiple: int
    #: a tdBN(alpha = 1/sqrt(2)) on identity shortcuts (the paper's block) or none
    shortcut_norm: bool = False


#: ``LAYOUTS[revision][arch]`` (revisions: see the module docstring).
LAYOUTS: dict[int, dict[str, ResNetLayout]] = {
    ORIGINAL_LAYOUT: {
        "resnet17": ResNetLayout(stem_stride=1, stages=((1, 3, 2), (2, 4, 2)), hidden_multiple=4),
        "resnet19": ResNetLayout(
            stem_stride=1, stages=((1, 3, 1), (2, 3, 2), (4, 2, 2)), hidden_multiple=2
        ),
        "resnet_small": ResNetLayout(
            stem_stride=2, stages=((1, 1, 1), (2, 1, 2), (4, 1, 2)), hidden_multiple=4
        ),
    },
    CURRENT_LAYOUT: {
        "resnet17": ResNetLayout(
            stem_stride=2, stages=((1, 3, 1), (2, 4, 2)), hidden_multiple=4, shortcut_norm=True
        ),
        "resnet19": ResNetLayout(
            stem_stride=1, stages=((1, 3, 1), (2, 3, 2), (4, 2, 2)), hidden_multiple=2,
            shortcut_norm=True,
        ),
        # unchanged: see the module docstring
        "resnet_small": ResNetLayout(
            stem_stride=2, stages=((1, 1, 1), (2, 1, 2), (4, 1, 2)), hidden_multiple=4
        ),
    },
}  # fmt: skip

_DEFAULT_CONFIGS: dict[str, dict[str, Any]] = {
    # DVS-Gesture: 2x128x128, 11 classes, T = 40 (tdBN paper)
    "resnet17": {
        "num_classes": 11, "in_channels": 2, "input_size": (128, 128), "width": 64,
        "time_steps": 40, "layout": CURRENT_LAYOUT,
    },
    # DVS-CIFAR10 downsampled to 48x48, T = 10 (tdBN paper: T = 10); CIFAR-10: in_channels=3,
    # input_size=(32, 32), time_steps=6
    "resnet19": {
        "num_classes": 10, "in_channels": 2, "input_size": (48, 48), "width": 128,
        "time_steps": 10, "layout": CURRENT_LAYOUT,
    },
    "resnet_small": {
        "num_classes": 11, "in_channels": 2, "input_size": (64, 64), "width": 16,
        "time_steps": 16, "layout": CURRENT_LAYOUT,
    },
}  # fmt: skip


def _cached_fold(
    module: TdConvBN | TdShortcutBN,
    sources: tuple[torch.Tensor, ...],
    compute: Callable[[], tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """``compute()`` (a pair of tensors) cached on ``module._fold_cache``, keyed by the data
    pointers and version counters of ``sources``."""
    key = tuple((t.data_ptr(), t._version) for t in sources)
    if module._fold_cache is None or module._fold_cache[0] != key:
        # Plain tensors even inside inference_mode, so the cache stays usable outside it.
        with torch.inference_mode(False), torch.no_grad():
            first, second = compute()
        module._fold_cache = (key, first, second)
    return module._fold_cache[1], module._fold_cache[2]


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
        bn = self.bn
        if bn is None:
            return self.conv.weight, self.conv.bias
        if torch.is_grad_enabled() and self.conv.weight.requires_grad:
            return bn.fold(self.conv.weight, self.conv.bias)  # differentiable, uncached
        sources = (self.conv.weight, bn.weight, bn.bias, bn.running_mean, bn.running_var)
        return _cached_fold(self, sources, lambda: bn.fold(self.conv.weight, self.conv.bias))

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


class TdShortcutBN(nn.Module):
    """The tdBN on an identity shortcut (no convolution): the paper's block normalises the
    shortcut before the add, like the residual branch (``alpha = 1/sqrt(2)`` on both).

    Training: tdBN over (T, B, H, W) of the spikes. Eval: the running statistics as one cached
    per-channel ``scale * x + shift``, in ``forward`` and ``step`` alike.
    """

    def __init__(
        self,
        channels: int,
        v_th: float = TDBN_NEURON_DEFAULTS["threshold"],
        alpha: float = RESIDUAL_ALPHA,
    ) -> None:
        super().__init__()
        self.bn = TdBatchNorm(channels, v_th=v_th, alpha=alpha)
        self._fold_cache: tuple[tuple, torch.Tensor, torch.Tensor] | None = None

    def train(self, mode: bool = True) -> TdShortcutBN:
        self._fold_cache = None
        return super().train(mode)

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift), each ``[C, 1, 1]``, of the tdBN with the running statistics."""

        def compute() -> tuple[torch.Tensor, torch.Tensor]:
            scale, shift = self.bn.scale_shift()
            return scale.reshape(-1, 1, 1), shift.reshape(-1, 1, 1)

        bn = self.bn
        if torch.is_grad_enabled() and bn.weight.requires_grad:
            return compute()  # differentiable, uncached
        sources = (bn.weight, bn.bias, bn.running_mean, bn.running_var)
        return _cached_fold(self, sources, compute)

    def _affine(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = self.folded()
        return torch.addcmul(shift, x, scale)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        """``[T, B, C, H, W]``: tdBN over the whole sequence (training), else the affine map."""
        return self.bn(x_seq) if self.training else self._affine(x_seq)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` with the running statistics."""
        return self.bn.infer(x) if self.training else self._affine(x)


@torch.no_grad()
def load_spikingjelly_conv_bn(unit: TdConvBN, conv: nn.Conv2d, bn: nn.Module) -> None:
    """Load a SpikingJelly ``layer.Conv2d`` + ``layer.ThresholdDependentBatchNorm2d`` pair
    into ``unit``: the conv weight as is; tdBN's gamma divided by our ``alpha * Vth``
    (:func:`~dvsapp.snn.tdbn.load_spikingjelly_tdbn`); a conv bias, if theirs has one, moved
    into the running mean (ours has none). Then ``unit`` computes what ``bn(conv(x))`` does,
    in training (batch statistics, the same running-statistics update) and in eval."""
    ours = unit.conv
    same = (conv.in_channels, conv.out_channels, tuple(conv.kernel_size), tuple(conv.stride),
            tuple(conv.padding), conv.groups, tuple(conv.dilation))  # fmt: skip
    mine = (ours.in_channels, ours.out_channels, tuple(ours.kernel_size), tuple(ours.stride),
            tuple(ours.padding), ours.groups, tuple(ours.dilation))  # fmt: skip
    if same != mine:
        raise ValueError(
            f"conv (in, out, kernel, stride, padding, groups, dilation) {same}, ours {mine}"
        )
    if unit.bn is None:
        raise ValueError("this unit has no tdBN (norm='none')")
    ours.weight.copy_(conv.weight)
    load_spikingjelly_tdbn(unit.bn, bn, conv.bias)
    unit._fold_cache = None


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
    """tdBN basic block: the spike layer comes after the residual add.

    The shortcut is ``downsample`` (conv1x1 + tdBN(α), when the shape changes), else
    ``shortcut`` (tdBN(α) alone, with ``shortcut_norm``: layout revision 2 of ``resnet17``
    and ``resnet19``), else the identity (revision 1, ``resnet_small``, or ``norm="none"``)."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        neuron: dict[str, float],
        stride: int = 1,
        downsample: TdConvBN | None = None,
        norm: bool = True,
        shortcut_norm: bool = False,
    ) -> None:
        super().__init__()
        v_th = neuron["threshold"]
        self.conv1 = conv3x3_bn(inplanes, planes, stride, v_th, norm=norm)
        self.lif1 = TdLIF(**neuron)
        self.conv2 = conv3x3_bn(planes, planes, 1, v_th, alpha=RESIDUAL_ALPHA, norm=norm)
        self.downsample = downsample
        self.shortcut = (
            TdShortcutBN(planes, v_th) if downsample is None and norm and shortcut_norm else None
        )
        self.lif2 = TdLIF(**neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            identity = self.downsample(x)
        elif self.shortcut is not None:
            identity = self.shortcut(x)
        else:
            identity = x
        out = self.conv2(self.lif1(self.conv1(x)))
        return self.lif2(out + identity)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            identity = self.downsample.step(x)
        elif self.shortcut is not None:
            identity = self.shortcut.step(x)
        else:
            identity = x
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

    Modules are named torchvision-style: ``conv1``/``lif1`` (stem), ``layer{i}.{j}`` (blocks,
    with ``.downsample`` or ``.shortcut`` on the shortcut), ``fc_hidden``/``lif_hidden`` and
    ``fc`` (classifier, no spikes). ``config.layout`` picks the layout revision.
    """

    family = "tdbn"

    def __init__(self, config: ModelConfig) -> None:
        if config.arch not in RESNET_ARCHS:
            raise ValueError(f"unknown tdBN ResNet arch {config.arch!r}; expected {RESNET_ARCHS}")
        if config.norm not in ("default", "tdbn", "none"):
            raise ValueError(f"norm must be 'default', 'tdbn' or 'none', not {config.norm!r}")
        if config.layout not in LAYOUTS:
            raise ValueError(
                f"unknown tdBN ResNet layout revision {config.layout!r}; expected one of "
                f"{sorted(LAYOUTS)} (this dvsapp may be older than the checkpoint)"
            )
        neuron = _neuron_params(config)
        super().__init__(dataclasses.replace(config, neuron=neuron))
        layout = LAYOUTS[config.layout][config.arch]
        #: the channel plan built (``LAYOUTS[config.layout][config.arch]``)
        self.plan = layout
        width, v_th = config.width, neuron["threshold"]
        self.norm = config.norm != "none"

        self.conv1 = conv3x3_bn(config.in_channels, width, layout.stem_stride, v_th, norm=self.norm)
        self.lif1 = TdLIF(**neuron)
        self.inplanes = width
        self.stage_names: tuple[str, ...] = ()
        for i, (multiple, blocks, stride) in enumerate(layout.stages, start=1):
            name = f"layer{i}"
            stage = self._make_layer(width * multiple, blocks, stride, neuron, layout.shortcut_norm)
            setattr(self, name, stage)
            self.stage_names += (name,)
        hidden = width * layout.hidden_multiple
        self.fc_hidden = nn.Linear(self.inplanes, hidden)
        self.lif_hidden = TdLIF(**neuron)
        self.fc = nn.Linear(hidden, config.num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(
        self, planes: int, blocks: int, stride: int, neuron: dict[str, float], shortcut_norm: bool
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * BasicBlock.expansion:
            downsample = conv1x1_bn(
                self.inplanes, planes, stride, neuron["threshold"], RESIDUAL_ALPHA, self.norm
            )
        layers = [
            BasicBlock(self.inplanes, planes, neuron, stride, downsample, self.norm, shortcut_norm)
        ]
        self.inplanes = planes * BasicBlock.expansion
        layers += [
            BasicBlock(self.inplanes, planes, neuron, norm=self.norm, shortcut_norm=shortcut_norm)
            for _ in range(1, blocks)
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

    ``neuron`` overrides merge into the defaults (:data:`TDBN_NEURON_DEFAULTS`). The layout
    is :data:`CURRENT_LAYOUT` unless ``layout`` says otherwise (``layout=1``: the original).
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

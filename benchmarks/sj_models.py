"""SpikingJelly equivalents of dvsapp's six architectures, for like-for-like step latency.

:func:`sj_equivalent` walks a dvsapp model (``resnet17``, ``resnet19``, ``resnet_small``,
``vgg9``, ``vgg11``, ``vgg_small``) and builds the same network, layer for layer (channels,
kernel sizes, strides, padding, pools, input size, module order), from SpikingJelly
single-step modules (``step_mode='s'``): ``layer.Conv2d``, ``layer.BatchNorm2d``,
``layer.BatchNormThroughTime1d/2d``, ``layer.AvgPool2d``, ``layer.AdaptiveAvgPool2d``,
``layer.Flatten``, ``layer.Linear``. The equivalent is stepped with ``net(x_t)`` and reset
with ``functional.reset_net(net)``.

Normalisation:

* tdBN: a ``layer.BatchNorm2d`` after each conv, and on each identity shortcut of a layout-2
  ResNet (the tdBN paper's block: ``TdShortcutBN``), its weight holding
  ``gamma * alpha * Vth`` as SpikingJelly's ``ThresholdDependentBatchNorm2d`` stores it
  (:func:`dvsapp.snn.tdbn.spikingjelly_gamma`; that class itself runs multi-step only, and
  :func:`dvsapp.snn.resnet.load_spikingjelly_conv_bn` loads one into ours). SpikingJelly does
  not fold it into the conv at inference; dvsapp does. The layout (stem stride, shortcuts) is
  read off the dvsapp model, so either layout revision gets its own equivalent.
* BNTT: ``layer.BatchNormThroughTime2d`` / ``1d`` (one bias-free BN per step, picked by its
  own step counter; past its T it raises, so a stream resets every T steps).

Neurons (``neuron=``):

* ``"lif"`` (default, for latency: SpikingJelly's stock, optimised path): ``neuron.LIFNode``
  with ``decay_input=False`` and ``tau = 1 / (1 - decay)``, so ``H = decay * V + X``; hard
  reset to 0 for tdBN (``V = H * (1 - S)``, our ``(1 - o)`` factor), soft reset for BNTT.
  Equal to ours up to the rounding of ``V - V / tau`` and firing at ``H == Vth`` too.
* ``"exact"``: :class:`TdLIFNode` / :class:`BnttLIFNode`, ``SimpleBaseNode`` subclasses with
  our charge rule and strict firing: with :func:`copy_weights` the outputs equal ours.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from spikingjelly.activation_based.neuron.base_node import SimpleBaseNode
from torch import nn

from dvsapp.snn.base import SpikingModel
from dvsapp.snn.bntt import BnttLIF, BnttNorm
from dvsapp.snn.resnet import BasicBlock, TdbnResNet, TdConvBN, TdShortcutBN
from dvsapp.snn.tdbn import TdBatchNorm, TdLIF, spikingjelly_gamma
from dvsapp.snn.vgg import BnttVGG

__all__ = [
    "NEURONS",
    "BnttLIFNode",
    "SJBasicBlock",
    "SJBnttVGG",
    "SJResNet",
    "TdLIFNode",
    "copy_weights",
    "reset",
    "sj_equivalent",
]

NEURONS = ("lif", "exact")


class TdLIFNode(SimpleBaseNode):
    """tdBN's LIF as a SpikingJelly node: ``H = tau_decay * V + X``, ``S = [H > Vth]``,
    hard reset to 0 (``V = H * (1 - S)``), i.e. ``u_t = tau * u_{t-1} * (1 - o_{t-1}) + x_t``."""

    def __init__(self, tau_decay: float, threshold: float, surrogate_width: float) -> None:
        super().__init__(threshold, 0.0, surrogate.Rect(alpha=0.5 / surrogate_width))
        self.tau_decay = tau_decay

    def neuronal_charge(self, x: torch.Tensor) -> None:
        self.v = self.tau_decay * self.v + x

    def neuronal_fire(self) -> torch.Tensor:
        if torch.is_grad_enabled():
            return self.surrogate_function(self.v - self.v_threshold)
        return (self.v - self.v_threshold > 0).to(self.v.dtype)


class BnttLIFNode(SimpleBaseNode):
    """BNTT's LIF as a SpikingJelly node: ``H = leak * V + X``, ``S = [H / Vth > 1]``,
    soft reset ``V = H - Vth * S``."""

    def __init__(self, leak: float, threshold: float) -> None:
        super().__init__(threshold, None, surrogate.Rect())
        self.leak = leak

    def neuronal_charge(self, x: torch.Tensor) -> None:
        self.v = self.leak * self.v + x

    def neuronal_fire(self) -> torch.Tensor:
        q = self.v if self.v_threshold == 1.0 else self.v / self.v_threshold
        return (q > 1.0).to(self.v.dtype)


def _node(ours: nn.Module, kind: str) -> nn.Module:
    if kind not in NEURONS:
        raise ValueError(f"neuron must be one of {NEURONS}, got {kind!r}")
    if isinstance(ours, TdLIF):
        if kind == "exact":
            return TdLIFNode(ours.tau_decay, ours.threshold, ours.surrogate_width)
        return neuron.LIFNode(
            tau=1.0 / (1.0 - ours.tau_decay), decay_input=False, v_threshold=ours.threshold,
            v_reset=0.0, surrogate_function=surrogate.Rect(alpha=0.5 / ours.surrogate_width),
            step_mode="s",
        )  # fmt: skip
    if isinstance(ours, BnttLIF):
        if kind == "exact":
            return BnttLIFNode(ours.leak, ours.threshold)
        return neuron.LIFNode(
            tau=1.0 / (1.0 - ours.leak), decay_input=False, v_threshold=ours.threshold,
            v_reset=None, surrogate_function=surrogate.Rect(), step_mode="s",
        )  # fmt: skip
    raise TypeError(f"no SpikingJelly equivalent for {type(ours).__name__}")


def _bn(ours: TdBatchNorm) -> nn.Module:
    bn = layer.BatchNorm2d(ours.num_features, eps=ours.eps, momentum=ours.momentum)
    nn.init.constant_(bn.weight, ours.gain)  # tdBN's initial alpha * Vth
    return bn


def _conv_bn(ours: TdConvBN) -> nn.Sequential:
    c = ours.conv
    conv = layer.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding,
                        bias=False, step_mode="s")  # fmt: skip
    return nn.Sequential(conv, _bn(ours.bn))


class SJBasicBlock(nn.Module):
    """The tdBN basic block: conv-BN-LIF-conv-BN, plus conv1x1-BN, BN (layout 2) or the
    identity (layout 1) on the shortcut, then LIF."""

    def __init__(self, ours: BasicBlock, kind: str) -> None:
        super().__init__()
        self.conv1 = _conv_bn(ours.conv1)
        self.lif1 = _node(ours.lif1, kind)
        self.conv2 = _conv_bn(ours.conv2)
        self.downsample = None if ours.downsample is None else _conv_bn(ours.downsample)
        self.shortcut = None if ours.shortcut is None else _bn(ours.shortcut.bn)
        self.lif2 = _node(ours.lif2, kind)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            identity = self.downsample(x)
        elif self.shortcut is not None:
            identity = self.shortcut(x)
        else:
            identity = x
        out = self.conv2(self.lif1(self.conv1(x)))
        return self.lif2(out + identity)


class SJResNet(nn.Module):
    """A tdBN ResNet-SNN in SpikingJelly modules; ``forward`` is one step."""

    def __init__(self, ours: TdbnResNet, kind: str = "lif") -> None:
        super().__init__()
        self.conv1 = _conv_bn(ours.conv1)
        self.lif1 = _node(ours.lif1, kind)
        self.stage_names = ours.stage_names
        for name, stage in zip(ours.stage_names, ours.stages(), strict=True):
            setattr(self, name, nn.Sequential(*(SJBasicBlock(b, kind) for b in stage)))
        self.pool = layer.AdaptiveAvgPool2d((1, 1), step_mode="s")
        self.flatten = layer.Flatten(step_mode="s")
        h = ours.fc_hidden
        self.fc_hidden = layer.Linear(h.in_features, h.out_features, step_mode="s")
        self.lif_hidden = _node(ours.lif_hidden, kind)
        self.fc = layer.Linear(ours.fc.in_features, ours.fc.out_features, step_mode="s")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lif1(self.conv1(x))
        for name in self.stage_names:
            out = getattr(self, name)(out)
        out = self.flatten(self.pool(out))
        return self.fc(self.lif_hidden(self.fc_hidden(out)))


def _pool(ours: nn.Module) -> nn.Module:
    if isinstance(ours, nn.AvgPool2d):
        return layer.AvgPool2d(ours.kernel_size, step_mode="s")
    if isinstance(ours, nn.AdaptiveAvgPool2d):
        return layer.AdaptiveAvgPool2d(ours.output_size, step_mode="s")
    return nn.Identity()


def _bntt(ours: BnttNorm, dims: int) -> nn.Module:
    cls = layer.BatchNormThroughTime2d if dims == 2 else layer.BatchNormThroughTime1d
    return cls(ours.time_steps, ours.num_features, eps=ours.eps, momentum=ours.momentum)


class SJBnttVGG(nn.Module):
    """A BNTT VGG in SpikingJelly modules; ``forward`` is one step (reset every T steps)."""

    def __init__(self, ours: BnttVGG, kind: str = "lif") -> None:
        super().__init__()
        blocks = []
        for b in ours.features:
            c = b.conv
            block = nn.Module()
            block.conv = layer.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride,
                                      c.padding, bias=False, step_mode="s")  # fmt: skip
            block.bntt = _bntt(b.bntt, 2)
            block.lif = _node(b.lif, kind)
            block.pool = _pool(b.pool)
            blocks.append(block)
        self.features = nn.ModuleList(blocks)
        self.flatten = layer.Flatten(step_mode="s")
        fc = ours.fc1.fc
        self.fc1 = nn.Module()
        self.fc1.fc = layer.Linear(fc.in_features, fc.out_features, bias=False, step_mode="s")
        self.fc1.bntt = _bntt(ours.fc1.bntt, 1)
        self.fc1.lif = _node(ours.fc1.lif, kind)
        self.fc2 = layer.Linear(ours.fc2.in_features, ours.fc2.out_features, bias=False,
                                step_mode="s")  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.features:
            x = b.pool(b.lif(b.bntt(b.conv(x))))
        x = self.fc1.lif(self.fc1.bntt(self.fc1.fc(self.flatten(x))))
        return self.fc2(x)


def sj_equivalent(model: SpikingModel, neuron: str = "lif", weights: bool = True) -> nn.Module:
    """The SpikingJelly network equal in layout to ``model``, on its device and in its mode;
    with ``weights`` its parameters and statistics copied across (:func:`copy_weights`)."""
    if isinstance(model, TdbnResNet):
        net: nn.Module = SJResNet(model, neuron)
    elif isinstance(model, BnttVGG):
        net = SJBnttVGG(model, neuron)
    else:
        raise TypeError(f"no SpikingJelly equivalent for {type(model).__name__}")
    device = next(model.parameters()).device
    net = net.to(device).train(model.training)
    if weights:
        copy_weights(net, model)
    return net


def _pairs(net: nn.Module, model: SpikingModel) -> Iterator[tuple[nn.Module, nn.Module]]:
    """(ours, theirs) for every weighted layer."""
    if isinstance(model, TdbnResNet):
        assert isinstance(net, SJResNet)
        yield model.conv1, net.conv1
        for name in model.stage_names:
            for a, b in zip(getattr(model, name), getattr(net, name), strict=True):
                yield a.conv1, b.conv1
                yield a.conv2, b.conv2
                if a.downsample is not None:
                    yield a.downsample, b.downsample
                if a.shortcut is not None:
                    yield a.shortcut, b.shortcut
        yield model.fc_hidden, net.fc_hidden
        yield model.fc, net.fc
    elif isinstance(model, BnttVGG):
        assert isinstance(net, SJBnttVGG)
        for a, b in zip(model.features, net.features, strict=True):
            yield a.conv, b.conv
            yield a.bntt, b.bntt
        yield model.fc1.fc, net.fc1.fc
        yield model.fc1.bntt, net.fc1.bntt
        yield model.fc2, net.fc2


@torch.no_grad()
def copy_weights(net: nn.Module, model: SpikingModel) -> None:
    """Copy every weight and BN statistic of ``model`` into its equivalent ``net``."""
    for a, b in _pairs(net, model):
        if isinstance(a, TdConvBN):
            b[0].weight.copy_(a.conv.weight)
            _copy_tdbn(a.bn, b[1])
        elif isinstance(a, TdShortcutBN):
            _copy_tdbn(a.bn, b)
        elif isinstance(a, BnttNorm):
            for t, bn in enumerate(b.bn_list):
                bn.weight.copy_(a.weight[t])
                bn.running_mean.copy_(a.running_mean[t])
                bn.running_var.copy_(a.running_var[t])
                bn.eps = a.eps
        else:
            b.weight.copy_(a.weight)
            if a.bias is not None:
                b.bias.copy_(a.bias)


def _copy_tdbn(ours: TdBatchNorm, bn: nn.Module) -> None:
    bn.weight.copy_(spikingjelly_gamma(ours))  # the product tdBN computes
    bn.bias.copy_(ours.bias)
    bn.running_mean.copy_(ours.running_mean)
    bn.running_var.copy_(ours.running_var)
    bn.eps = ours.eps


def reset(net: nn.Module) -> None:
    """Reset every SpikingJelly memory (neuron potentials, BNTT step counters)."""
    functional.reset_net(net)

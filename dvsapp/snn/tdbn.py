"""tdBN building blocks (Zheng et al., AAAI 2021): the iterative LIF neuron, its rectangular
surrogate gradient, and threshold-dependent batch normalisation.

Neuron (STBP's iterative LIF, hard reset through the ``(1 - o)`` factor)::

    u_t = tau_decay * u_{t-1} * (1 - o_{t-1}) + x_t
    o_t = H(u_t - Vth)                      (H(0) = 0, as ``torch.gt`` in the reference code)
    do/du ~= 1 / (2a)  where |u - Vth| < a  (a = ``surrogate_width``, the half-width)

The paper writes the rectangle as ``(1/a) * sign(|u - Vth| < a/2)``; our ``a`` is half of
the paper's. The gradient also flows through the reset factor ``(1 - o_{t-1})``, as in the
reference code.

tdBN normalises each channel over (time, batch, H, W) of a whole sequence and scales to
``alpha * Vth``: ``y = alpha * Vth * (x - mean) / sqrt(var + eps) * weight + bias``. It keeps
PyTorch's running statistics (momentum, unbiased running variance) for inference, where it is
a per-channel affine map that folds into the preceding convolution (:meth:`TdBatchNorm.fold`).

Defaults (:data:`TDBN_NEURON_DEFAULTS`) follow the public third-party tdBN code, since the
authors released none: thiswinex/STBP-simple (``tdBN.py``: tau 0.25; ``layers.py``: Vth 0.2,
``aa = 0.5`` for the rectangle's half-width) and its forks, which keep tau 0.25, Vth 0.2,
half-width 0.5. STBP-simple's first ``SpikeAct`` compares ``u - Vth`` with Vth again (a bug);
we compare ``u`` with Vth once. Every value is configurable through ``ModelConfig.neuron``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dvsapp.snn.base import SpikingNeuron

#: Neuron parameters of the tdBN family (``ModelConfig.neuron`` keys).
TDBN_NEURON_DEFAULTS: dict[str, float] = {
    "tau_decay": 0.25,
    "threshold": 0.2,
    "surrogate_width": 0.5,
}

#: tdBN's alpha on the two branches that meet at a residual add.
RESIDUAL_ALPHA = 1.0 / math.sqrt(2.0)


class RectangleSpike(torch.autograd.Function):
    """Heaviside forward, rectangular surrogate backward: ``1/(2a)`` on ``|x| < a``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, width: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.width = width
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        window = (x.abs() < ctx.width).to(grad_out.dtype)
        return grad_out * window / (2.0 * ctx.width), None


def rectangle_spike(x: torch.Tensor, width: float) -> torch.Tensor:
    """Spikes ``H(x)`` (x = u - Vth) with the rectangular surrogate of half-width ``width``."""
    if x.requires_grad:
        return RectangleSpike.apply(x, width)
    return (x > 0).to(x.dtype)  # no graph wanted: skip the autograd.Function overhead


class TdLIF(SpikingNeuron):
    """Iterative LIF neuron of STBP-tdBN (see the module docstring for the equations)."""

    def __init__(
        self,
        tau_decay: float = TDBN_NEURON_DEFAULTS["tau_decay"],
        threshold: float = TDBN_NEURON_DEFAULTS["threshold"],
        surrogate_width: float = TDBN_NEURON_DEFAULTS["surrogate_width"],
    ) -> None:
        super().__init__(threshold)
        if surrogate_width <= 0:
            raise ValueError(f"surrogate_width must be > 0, got {surrogate_width}")
        self.tau_decay = float(tau_decay)
        self.surrogate_width = float(surrogate_width)

    def dynamics(
        self, x: torch.Tensor, v: torch.Tensor | None, o: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        u = x if v is None or o is None else self.tau_decay * v * (1.0 - o) + x
        spikes = rectangle_spike(u - self.effective_threshold, self.surrogate_width)
        # The reset lives in the next step's (1 - o) factor: the state kept is u itself.
        return spikes, u, u

    def extra_repr(self) -> str:
        return (
            f"tau_decay={self.tau_decay}, threshold={self.threshold}, "
            f"surrogate_width={self.surrogate_width}"
        )


class TdBatchNorm(nn.BatchNorm2d):
    """Threshold-dependent BatchNorm over ``[T*B, C, H, W]`` or ``[T, B, C, H, W]``.

    Training: statistics per channel over (T, B, H, W) of the whole sequence, output scaled
    to ``alpha * v_th``. Eval: the running statistics, i.e. a fixed per-channel affine map.
    Always affine and tracking running statistics; state-dict keys are BatchNorm2d's.
    """

    def __init__(
        self,
        num_features: int,
        v_th: float = TDBN_NEURON_DEFAULTS["threshold"],
        alpha: float = 1.0,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
    ) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.v_th = float(v_th)
        self.alpha = float(alpha)

    @property
    def gain(self) -> float:
        """The fixed scale ``alpha * v_th`` applied on top of the learnable weight."""
        return self.alpha * self.v_th

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:  # [T, B, C, H, W]: statistics over T and B together
            return self.forward(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        self._check_input_dim(x)
        factor = 0.0
        if self.training:
            self.num_batches_tracked.add_(1)
            factor = (
                1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            )
        return F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight * self.gain,
            self.bias,
            self.training,
            factor,
            self.eps,
        )

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise with the running statistics, whatever the mode; updates nothing."""
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight * self.gain, self.bias,
            False, 0.0, self.eps,
        )  # fmt: skip

    def scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-channel ``(scale, shift)`` of this BN in eval mode: ``y = scale * x + shift``."""
        scale = self.weight * self.gain / torch.sqrt(self.running_var + self.eps)
        return scale, self.bias - self.running_mean * scale

    def fold(
        self, weight: torch.Tensor, bias: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The (weight, bias) of a conv followed by this BN in eval mode, as one conv."""
        scale, shift = self.scale_shift()
        if bias is not None:
            shift = shift + bias * scale
        return weight * scale.reshape(-1, *([1] * (weight.dim() - 1))), shift

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, v_th={self.v_th}, alpha={self.alpha:.6g}"


# -- SpikingJelly's tdBN ----------------------------------------------------------------------
# SpikingJelly's ``layer.ThresholdDependentBatchNorm2d(alpha, v_th, C)`` is a plain BatchNorm
# whose weight is *initialised* to ``alpha * v_th`` and then learned: its gamma already holds
# the product. Ours keeps ``alpha * v_th`` as a fixed factor (``TdBatchNorm.gain``) on a
# learnable weight initialised to 1. The same layer in both::
#
#     gamma_sj = weight_ours * alpha_ours * v_th_ours        (bias, running statistics equal)
#
# SpikingJelly's own ``alpha`` and ``v_th`` attributes only set that initial value; the
# product is all that counts, so the rule holds whatever they were.


def spikingjelly_gamma(bn: TdBatchNorm) -> torch.Tensor:
    """Our tdBN's weight as SpikingJelly's tdBN stores it: ``weight * alpha * v_th``."""
    return bn.weight * bn.gain


@torch.no_grad()
def load_spikingjelly_tdbn(
    bn: TdBatchNorm, source: nn.modules.batchnorm._BatchNorm, conv_bias: torch.Tensor | None = None
) -> None:
    """Load a SpikingJelly tdBN (or any affine BatchNorm holding the product
    ``gamma = weight * alpha * v_th``) into ``bn``: ``weight = gamma / (alpha * v_th)`` with
    *our* alpha and v_th; bias, running statistics, batch count, eps and momentum copied.

    ``conv_bias``: the bias of the convolution that feeds ``source``, if it had one. Our
    convolutions have none; a BatchNorm removes a constant per-channel offset anyway, so it
    goes into the running mean (``running_mean - conv_bias``), in training and in eval.
    """
    if not (source.affine and source.track_running_stats):
        raise ValueError("a tdBN must be affine and track running statistics")
    if source.num_features != bn.num_features:
        raise ValueError(f"{source.num_features} channels in the source, {bn.num_features} in ours")
    if bn.gain == 0:
        raise ValueError("alpha * v_th is 0: gamma cannot be rescaled")
    bn.weight.copy_(source.weight / bn.gain)
    bn.bias.copy_(source.bias)
    mean = source.running_mean if conv_bias is None else source.running_mean - conv_bias
    bn.running_mean.copy_(mean)
    bn.running_var.copy_(source.running_var)
    bn.num_batches_tracked.copy_(source.num_batches_tracked)
    bn.eps, bn.momentum = source.eps, source.momentum

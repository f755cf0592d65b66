"""BNTT building blocks (Kim & Panda 2020): the LIF neuron with its triangle surrogate, the
per-time-step BatchNorm, and the gamma-based temporal early exit.

Followed: the official code, ``Intelligent-Computing-Lab-Yale/BNTT-Batch-Normalization-
Through-Time`` ``model.py`` (``Surrogate_BP_Function``, ``SNN_VGG9_BNTT.forward``):

* charge ``u_t = leak * u_{t-1} + BN_t(W * o_t)`` from ``u = 0``; no ``(1 - leak)`` input
  factor (the code has none); leak 0.95 in the model class (``train.py`` defaults to 0.99).
* fire ``o_t = H(u_t / Vth - 1)``, i.e. strictly above the threshold (Vth = 1.0).
* soft reset ``u_t -= Vth`` where it fired; the reset carries no gradient (the code builds it
  from a boolean mask).
* surrogate: the backward of the step applied to ``x = u / Vth - 1`` is
  ``0.3 * max(0, 1 - |x|)``, so ``d o / d u = 0.3 / Vth * max(0, 1 - |u / Vth - 1|)``.
* BN: one ``BatchNorm`` per step, ``eps = 1e-4``, ``momentum = 0.1``, learnable weight (gamma)
  only: the code deletes the bias after construction.

Where the paper and the code differ, and what we chose:

* The paper writes the surrogate as a function of ``u`` directly (factor 0.3 on a triangle of
  half-width Vth); the code differentiates through ``u / Vth - 1``, which adds ``1 / Vth``.
  The two agree at Vth = 1.0, the only value either uses; we follow the code.
* The code rate-codes static images with a Poisson generator every step; event frames need
  no such coding and this module takes frames as they come (input coding is the caller's).
* Temporal early exit is described in the paper, not in the code: we average gamma over the
  channels of each BNTT layer, then over the layers (each layer weighs the same), per step.
* The leak: the paper gives 0.95-0.99; the model class defaults to 0.95 and ``train.py`` to
  0.99. We default to 0.95 (``ModelConfig.neuron["leak"]`` changes it).

Beyond the trained T there are no statistics. A model picks a policy (``"clamp"``: reuse the
last step's BN, the default; ``"error"``: raise :class:`BeyondTrainedStepsError`); the other
remedy, restarting the window every T steps on a stream, is the runtime's job (reset the model).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from dvsapp.errors import DvsappError
from dvsapp.snn.base import SpikingNeuron

#: The neuron parameters of the BNTT family, as stored in ``ModelConfig.neuron``.
BNTT_NEURON_DEFAULTS: dict[str, float] = {"leak": 0.95, "threshold": 1.0, "surrogate_factor": 0.3}

BEYOND_T_POLICIES = ("clamp", "error")


class BeyondTrainedStepsError(DvsappError, IndexError):
    """A BNTT model was asked for a step past the T it was trained with (policy "error")."""


class TriangleSpike(torch.autograd.Function):
    """Heaviside step ``x > 0`` with the gradient ``factor * max(0, 1 - |x|)``."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, factor: float):
        ctx.save_for_backward(x)
        ctx.factor = factor
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad_out * ctx.factor * (1.0 - x.abs()).clamp_min(0.0), None


def triangle_spike(x: torch.Tensor, factor: float = 0.3) -> torch.Tensor:
    """Spikes where ``x > 0``; triangle surrogate gradient of height ``factor``."""
    if torch.is_grad_enabled() and x.requires_grad:
        return TriangleSpike.apply(x, factor)
    return (x > 0).to(x.dtype)


class BnttLIF(SpikingNeuron):
    """Leaky integrate-and-fire with soft reset, as in the official BNTT code.

    ``u_t = leak * u_{t-1} + x_t``; ``o_t = [u_t > Vth]``; ``u_t <- u_t - Vth * o_t``, with
    ``Vth = effective_threshold`` (threshold times the live ``threshold_scale``).
    """

    def __init__(
        self, leak: float = 0.95, threshold: float = 1.0, surrogate_factor: float = 0.3
    ) -> None:
        super().__init__(threshold)
        if not 0.0 <= leak <= 1.0:
            raise ValueError(f"leak must lie in [0, 1], got {leak}")
        self.leak = float(leak)
        self.surrogate_factor = float(surrogate_factor)

    def dynamics(
        self, x: torch.Tensor, v: torch.Tensor | None, o: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        v_charged = x if v is None else self.leak * v + x
        vth = self.effective_threshold
        q = v_charged if vth == 1.0 else v_charged / vth
        if torch.is_grad_enabled() and q.requires_grad:
            spikes = TriangleSpike.apply(q - 1.0, self.surrogate_factor)
        else:  # q > 1 is exactly q - 1 > 0 in floating point, with two fewer kernels
            spikes = (q > 1.0).to(v_charged.dtype)
        v_next = torch.sub(v_charged, spikes.detach(), alpha=vth)  # soft reset, no gradient
        return spikes, v_charged, v_next

    def extra_repr(self) -> str:
        return (
            f"leak={self.leak}, threshold={self.threshold}, "
            f"surrogate_factor={self.surrogate_factor}"
        )


class BnttNorm(nn.Module):
    """One bias-free BatchNorm per time step over ``C`` channels: ``BN_t`` serves step ``t``.

    Parameters are stacked: ``weight`` (gamma) ``[T, C]``, buffers ``running_mean`` and
    ``running_var`` ``[T, C]``. In training each step normalises with its own batch
    statistics (over batch and space) and updates its own running statistics. In eval mode
    ``BN_t`` is an affine map ``y * scale_t + shift_t``, computed once and cached until the
    module returns to training or one of its tensors changes (in place or replaced).
    """

    def __init__(
        self, num_features: int, time_steps: int, eps: float = 1e-4, momentum: float = 0.1
    ) -> None:
        super().__init__()
        if time_steps < 1:
            raise ValueError(f"time_steps must be >= 1, got {time_steps}")
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(time_steps, num_features))
        self.register_buffer("running_mean", torch.zeros(time_steps, num_features))
        self.register_buffer("running_var", torch.ones(time_steps, num_features))
        self._fold: tuple[torch.Tensor, torch.Tensor] | None = None
        self._fold_key: tuple | None = None

    @property
    def time_steps(self) -> int:
        return self.weight.shape[0]

    def train(self, mode: bool = True) -> BnttNorm:
        self._fold = self._fold_key = None
        return super().train(mode)

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale, shift)``, each ``[T, C]``: eval-mode ``BN_t(y) = y * scale_t + shift_t``.

        Cached when no gradient is being recorded; computed afresh (differentiable) otherwise.
        """
        w, rm, rv = self.weight, self.running_mean, self.running_var
        if torch.is_grad_enabled():
            return self._compute_fold(w, rm, rv)
        key = tuple((t, t._version, t.data_ptr(), t.device, t.dtype) for t in (w, rm, rv))
        cached = self._fold_key
        if cached is None or any(
            a[0] is not b[0] or a[1:] != b[1:] for a, b in zip(key, cached, strict=True)
        ):
            with torch.inference_mode(False), torch.no_grad():
                self._fold = self._compute_fold(w, rm, rv)
            self._fold_key = key
        assert self._fold is not None
        return self._fold

    def _compute_fold(
        self, w: torch.Tensor, rm: torch.Tensor, rv: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        scale = w / torch.sqrt(rv + self.eps)
        return scale, -rm * scale

    def step(self, y: torch.Tensor, t: int) -> torch.Tensor:
        """Normalise one step ``y`` ``[B, C, ...]`` with ``BN_t`` (``0 <= t < T``)."""
        if self.training:
            return F.batch_norm(
                y, self.running_mean[t], self.running_var[t], self.weight[t], None,
                True, self.momentum, self.eps,
            )  # fmt: skip
        scale, shift = self.folded()
        shape = (-1,) + (1,) * (y.dim() - 2)
        return torch.addcmul(shift[t].view(shape), y, scale[t].view(shape))

    def forward(self, y_seq: torch.Tensor) -> torch.Tensor:
        """Normalise a sequence ``[T', B, C, ...]`` (``T' <= T``) with ``BN_0 .. BN_{T'-1}``."""
        steps = y_seq.shape[0]
        if steps > self.time_steps:
            raise BeyondTrainedStepsError(
                f"a sequence of {steps} steps needs BN statistics this layer lacks: "
                f"it was built for T={self.time_steps}"
            )
        if not self.training:
            return torch.stack([self.step(y, t) for t, y in enumerate(y_seq)])
        # One call normalises every (step, channel) pair over (batch, space): the steps are
        # folded into the channel axis, which is exactly one BatchNorm per step.
        b, c = y_seq.shape[1], y_seq.shape[2]
        rest = y_seq.shape[3:]
        z = y_seq.transpose(0, 1).reshape(b, steps * c, *rest)
        z = F.batch_norm(
            z,
            self.running_mean[:steps].view(-1),
            self.running_var[:steps].view(-1),
            self.weight[:steps].reshape(-1),
            None,
            True,
            self.momentum,
            self.eps,
        )
        return z.view(b, steps, c, *rest).transpose(0, 1)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, time_steps={self.time_steps}, eps={self.eps}, "
            f"momentum={self.momentum}"
        )


def _gamma_tables(source: nn.Module | Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(source, nn.Module):
        return [m.weight.detach() for m in source.modules() if isinstance(m, BnttNorm)]
    return [
        v.detach()
        for k, v in source.items()
        if (k == "bntt.weight" or k.endswith(".bntt.weight")) and v.dim() == 2
    ]


def mean_gamma_per_step(source: nn.Module | Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Mean BNTT gamma per step ``[T]`` (float32, CPU): channel mean per layer, then layer mean.

    ``source`` is a model or its state dict (every ``*.bntt.weight`` of shape ``[T, C]``).
    """
    tables = _gamma_tables(source)
    if not tables:
        raise ValueError("no BNTT layer (``*.bntt.weight`` of shape [T, C]) found")
    steps = {t.shape[0] for t in tables}
    if len(steps) != 1:
        raise ValueError(f"BNTT layers disagree on T: {sorted(steps)}")
    per_layer = torch.stack([t.float().cpu().mean(dim=1) for t in tables])  # [L, T]
    return per_layer.mean(dim=0)


def temporal_exit_step(source: nn.Module | Mapping[str, torch.Tensor], threshold: float) -> int:
    """How many steps to run: the 1-based index of the first step whose mean gamma falls
    below ``threshold`` (that step included), or T when none does."""
    gamma = mean_gamma_per_step(source)
    below = torch.nonzero(gamma < threshold).flatten()
    return int(below[0]) + 1 if below.numel() else int(gamma.numel())

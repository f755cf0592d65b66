"""Compiled (numba) CPU kernels of the in-depth probes: one call per step for the Vm
statistics of every layer, one for the channel sums and partial synaptic counts.

On a CPU the probes' cost was the number of calls, not the neurons: a torch kernel right
after a model step costs 5-15 us, and the probes needed about 30 of them a step
(``docs/BENCHMARKS.md``). These kernels read the layers' own tensors in place (numpy views,
no copy), release the GIL while they run, and compute the same figures as the torch path
(:class:`~dvsapp.snn.analysis.vm.VmPlan`, ``Analyzer._device_figures``), which stays for
other devices and dtypes and when numba is missing.

Vm bins follow :mod:`~dvsapp.snn.analysis.vm`: ``t = offset + scale * v`` in float32,
NaN and below 0 to the underflow bin, at or above ``VM_BINS + 1`` to the overflow bin,
truncated; ``+NBINS`` for a neuron with ``|v - now| <= half`` (``half < 0``: not computed,
the two bins at the threshold give the band). Moments are float64 sums.
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

#: Copies of the counters the neighbouring neurons increment in turn (a run of neurons in
#: one bin would otherwise wait on its own increments).
_STRIPES = 4


_ABS = np.int32(0x7FFFFFFF)


@intrinsic
def _pointer(typingctx, address):
    """An integer address (``torch.Tensor.data_ptr()``) as a void pointer for ``carray``: a
    tensor's memory read in place, without a numpy view made per tensor and step (~1 us
    each)."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


@njit(nogil=True, cache=True)
def _ordered(x: np.int32) -> np.int32:
    """A float32's bits as an int32 that orders as the floats do (-0 before +0; NaN beyond
    the infinities), and its own inverse."""
    return x ^ ((x >> 31) & _ABS)


@njit(nogil=True, cache=True)
def _extremes(v: np.ndarray) -> tuple[float, float]:
    """min and max of a float32 vector by integer comparisons, which vectorise (NaN is
    handled by the caller)."""
    u = v.view(np.int32)
    lo = np.int32(0x7FFFFFFF)
    hi = np.int32(-0x80000000)
    for j in range(u.size):
        k = _ordered(u[j])
        lo = min(lo, k)
        hi = max(hi, k)
    pair = np.empty(2, dtype=np.int32)
    pair[0] = _ordered(lo)
    pair[1] = _ordered(hi)
    out = pair.view(np.float32)
    return float(out[0]), float(out[1])


@njit(nogil=True, cache=True, fastmath={"reassoc", "nsz"})
def _moments(v: np.ndarray) -> tuple[float, float]:
    """Sum and sum of squares of a float32 vector, in float64 (any order)."""
    s = 0.0
    q = 0.0
    for j in range(v.size):
        x = np.float64(v[j])
        s += x
        q += x * x
    return s, q


@njit(nogil=True, cache=True)
def _bins(
    v: np.ndarray,
    scale: np.float32,
    offset: np.float32,
    now: np.float32,
    half: np.float32,
    top: np.float32,
    nbins: int,
    idx: np.ndarray,
) -> None:
    """Each neuron's bin (plus ``nbins`` near the threshold when ``half >= 0``) into ``idx``
    (uint8: ``2 * nbins <= 256``; a byte a neuron keeps the scratch in the first-level cache,
    and counting bytes took 23 us instead of 35 for resnet_small's 74K neurons)."""
    zero = np.float32(0.0)
    for j in range(v.size):
        t = offset + scale * v[j]
        t = t if t > zero else zero  # NaN, -inf: underflow
        t = t if t < top else top
        idx[j] = np.uint8(np.int32(t))
    if half >= zero:
        for j in range(v.size):
            if abs(v[j] - now) <= half:
                idx[j] += nbins


@njit(nogil=True, cache=True)
def _count(idx: np.ndarray, n: int, stripes: np.ndarray) -> None:
    n4 = n - n % 4
    for j in range(0, n4, 4):
        stripes[0, idx[j]] += 1
        stripes[1, idx[j + 1]] += 1
        stripes[2, idx[j + 2]] += 1
        stripes[3, idx[j + 3]] += 1
    for j in range(n4, n):
        stripes[0, idx[j]] += 1


@njit(nogil=True, cache=True)
def vm_statistics(
    addresses: np.ndarray,
    sizes: np.ndarray,
    scale: np.ndarray,
    offset: float,
    now: np.ndarray,
    half: np.ndarray,
    near_bins: np.ndarray,
    nbins: int,
    counts: np.ndarray,
    stats: np.ndarray,
    work: np.ndarray,
) -> None:
    """Per layer ``i`` (``sizes[i]`` contiguous float32 at ``addresses[i]``): its histogram
    ``counts[i]`` (int64 ``[nbins]``) and ``stats[i]`` = neurons, fraction near the
    threshold, mean, std, min, max (min and max NaN when a Vm is NaN). The near band is
    counted from the flags (``half[i] >= 0``) or, when ``near_bins[i, 0] >= 0``, from those
    two bins.
    ``work``: uint8 scratch of the largest layer's size (``2 * nbins <= 256``)."""
    top = np.float32(nbins - 1)
    off = np.float32(offset)
    stripes = np.zeros((_STRIPES, 2 * nbins), dtype=np.int64)
    for i in range(sizes.size):
        n = sizes[i]
        v = carray(_pointer(addresses[i]), (n,), np.float32)
        stripes[:] = 0
        _bins(
            v, np.float32(scale[i]), off, np.float32(now[i]), np.float32(half[i]), top, nbins, work
        )
        _count(work, n, stripes)
        near = 0
        for b in range(2 * nbins):
            c = stripes[0, b] + stripes[1, b] + stripes[2, b] + stripes[3, b]
            if b < nbins:
                counts[i, b] = c
            else:
                counts[i, b - nbins] += c
                near += c
        if near_bins[i, 0] >= 0:
            near += counts[i, near_bins[i, 0]] + counts[i, near_bins[i, 1]]
        s, q = _moments(v)
        if n == 0:
            lo, hi = np.inf, -np.inf
        else:
            lo, hi = _extremes(v)
        if s != s:  # a NaN, or both infinities
            for j in range(n):
                if v[j] != v[j]:
                    lo = hi = np.nan
                    break
        m = max(n, 1)
        mean = s / m
        stats[i, 0] = n
        stats[i, 1] = near / m
        stats[i, 2] = mean
        stats[i, 3] = np.sqrt(max(q / m - mean * mean, 0.0))
        stats[i, 4] = lo
        stats[i, 5] = hi


@njit(nogil=True, cache=True, fastmath={"reassoc", "nsz"})
def _row_dots(x: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    """``out[r, c] = sum_p x[r, p] * w[c, p]`` in float32 (integer-valued operands whose
    sums stay below 2**24: exact in any order)."""
    for r in range(x.shape[0]):
        for c in range(w.shape[0]):
            acc = np.float32(0.0)
            for p in range(x.shape[1]):
                acc += x[r, p] * w[c, p]
            out[r, c] = acc


@njit(nogil=True, cache=True)
def block_sums(
    addresses: np.ndarray, layout: np.ndarray, weights: np.ndarray, host: np.ndarray
) -> None:
    """Per recorded spike map ``b`` (contiguous float32 ``[rows, P]`` at ``addresses[b]``,
    0/1; ``layout[b]`` = rows, P, width, the offset of its weights in ``weights`` and of its
    output in ``host``): its row sums and the partial counts of the synaptic layers it feeds,
    ``host[out : out + rows * width] = map @ w.T`` with ``w`` its ``[width, P]`` weights
    (ones, then the layers' position parts). Flat arrays, so that one compiled version
    serves every model."""
    for b in range(addresses.size):
        rows, p, width, at_w, at_out = layout[b]
        x = carray(_pointer(addresses[b]), (rows, p), np.float32)
        w = weights[at_w : at_w + width * p].reshape((width, p))
        out = host[at_out : at_out + rows * width].reshape((rows, width))
        _row_dots(x, w, out)


@njit(nogil=True, cache=True, fastmath={"reassoc", "nsz"})
def _plain_counts(x: np.ndarray, fan: np.ndarray, out: np.ndarray, kind: int) -> float:
    """``out[r] = sum_p nz * fan[p]`` with ``nz`` = x (kind 0), ``x != 0`` (kind 1) or
    ``|x| > 0`` (kind 2, also returning ``sum ||x| - nz|``); no NaN in ``x``."""
    dist = 0.0
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for r in range(x.shape[0]):
        acc = np.float32(0.0)
        for p in range(x.shape[1]):
            a = x[r, p]
            if kind == 0:
                nz = a
            elif kind == 1:
                nz = one if a != zero else zero
            else:
                a = abs(a)
                nz = one if a > zero else zero
                dist += np.float64(abs(a - nz))
            acc += nz * fan[p]
        out[r] = acc
    return dist


@njit(nogil=True, cache=True)
def input_counts(x: np.ndarray, fan: np.ndarray, out: np.ndarray, test: bool) -> float:
    """One synaptic layer's partial counts ``out[r] = sum_p nz(x[r, p]) * fan[p]`` for an
    input that is not a recorded spike map, and with ``test`` NeuroBench's binary test as
    the numpy path makes it: 0 when every value lies in {-1, 0, 1}. An input outside
    [-1, 1] (and no NaN) counts its non-zero values (test 1); else ``nz = sign(|x|)`` and the
    test is ``sum |(|x| - nz)|`` (NaN propagates to both)."""
    if not test:
        return _plain_counts(x, fan, out, 0)
    flat = x.ravel()
    lo, hi = _extremes(flat)
    s, _ = _moments(flat)
    nan = False
    if s != s:
        for j in range(flat.size):
            if flat[j] != flat[j]:
                nan = True
                break
    if not nan:
        if lo < -1.0 or hi > 1.0:
            _plain_counts(x, fan, out, 1)
            return 1.0
        return _plain_counts(x, fan, out, 2)
    dist = 0.0  # a NaN: it propagates to its row's count and to the test
    for r in range(x.shape[0]):
        acc = np.float32(0.0)
        for p in range(x.shape[1]):
            a = abs(x[r, p])
            nz = a if a != a else (np.float32(1.0) if a > 0 else np.float32(0.0))  # NaN stays
            dist += abs(np.float64(a) - np.float64(nz))
            acc += nz * fan[p]
        out[r] = acc
    return dist


@njit(nogil=True, cache=True)
def step_figures(
    host: np.ndarray,
    ch_idx: np.ndarray,
    plane: np.ndarray,
    acc: np.ndarray,
    restart: bool,
    steps: int,
    saturated_rate: float,
    lay_start: np.ndarray,
    ch_start: np.ndarray,
    ch_len: np.ndarray,
    syn_idx: np.ndarray,
    syn_w: np.ndarray,
    syn_starts: np.ndarray,
    rates: np.ndarray,
    window: np.ndarray,
    silent: np.ndarray,
    saturated: np.ndarray,
    ops: np.ndarray,
    lay_sum: np.ndarray,
) -> float:
    """The host side of a step (``Analyzer._unpack``'s numpy path, in one call): per entry
    (a channel, or a 1-D layer's sample) its spike count summed over the batch
    (``host[ch_idx[b, e]]``), added to the window's ``acc`` (or starting it), this step's
    ``rates`` and the window's ``window`` rates; per layer ``k`` (entries ``lay_start[k]`` to
    the next layer's) its spike count ``lay_sum[k]``; per conv layer ``k`` (entries ``ch_start[k]``
    on, ``ch_len[k]`` of them) the silent and saturated channels; per synaptic layer its
    operations (``host[syn_idx] * syn_w`` summed over its segment). Returns the step's spike
    count over all layers."""
    total = 0.0
    den = float(max(steps, 1))
    layers = lay_start.size
    for k in range(layers):
        end = lay_start[k + 1] if k + 1 < layers else plane.size
        t = 0.0
        for e in range(lay_start[k], end):
            s = 0.0
            for b in range(ch_idx.shape[0]):
                s += np.float64(host[ch_idx[b, e]])
            t += s
            a = s if restart else acc[e] + s
            acc[e] = a
            rates[e] = np.float32(s / plane[e])
            window[e] = np.float32(a / (plane[e] * den))
        lay_sum[k] = t
        total += t
    for k in range(ch_start.size):
        dead = 0
        full = 0
        for e in range(ch_start[k], ch_start[k] + ch_len[k]):
            if acc[e] == 0:
                dead += 1
            if acc[e] / (plane[e] * den) >= saturated_rate:
                full += 1
        silent[k] = dead
        saturated[k] = full
    n = syn_starts.size
    for j in range(n):
        end = syn_starts[j + 1] if j + 1 < n else syn_idx.size
        s = 0.0
        for i in range(syn_starts[j], end):
            s += np.float64(host[syn_idx[i]]) * syn_w[i]
        ops[j] = s
    return total


def warm_up() -> None:
    """Compile every kernel (or load it from numba's cache) on tiny inputs: the first
    compilation takes seconds, which ``scripts/setup.sh`` pays once instead of the app's
    first in-depth view."""
    v = np.zeros(9, dtype=np.float32)
    f1 = np.ones(1)
    vm_statistics(
        np.array([v.ctypes.data], dtype=np.int64), np.array([9], dtype=np.int64), f1, 31.0,
        f1, f1, np.array([[-1, -1]], dtype=np.int64), 62, np.zeros((1, 62), dtype=np.int64),
        np.zeros((1, 6)), np.zeros(9, dtype=np.uint8),
    )  # fmt: skip
    w = np.ones((1, 9), dtype=np.float32)
    block_sums(
        np.array([v.ctypes.data], dtype=np.int64), np.array([[1, 9, 1, 0, 0]], dtype=np.int64),
        w.reshape(-1), np.zeros(1, dtype=np.float32),
    )  # fmt: skip
    for test in (False, True):
        input_counts(w, v, np.zeros(1, dtype=np.float32), test)
    for host in (np.zeros(4, dtype=np.float32), np.zeros(4)):
        i1 = np.zeros(1, dtype=np.intp)
        step_figures(
            host, np.zeros((1, 1), dtype=np.intp), f1, np.zeros(1), True, 1, 0.9, i1, i1, i1,
            i1, f1, i1, np.zeros(1, dtype=np.float32), np.zeros(1, dtype=np.float32),
            np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64), np.zeros(1), np.zeros(1),
        )  # fmt: skip

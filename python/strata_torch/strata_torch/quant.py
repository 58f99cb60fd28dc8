"""The arithmetic of ``docs/vertical-layering.md``, in PyTorch, bit for bit.

Every function here mirrors one in Strata's ``ir/src/quant`` (named in its doc string) and
computes in float32 with the same operations in the same order, so the codes, side tables
and activation parameters a PyTorch run produces are exactly the ones Strata packages and
its runtime executes. Rounding is spelled out (``torch.round`` is half-to-even; weight codes
round half away from zero).
"""

from __future__ import annotations

import torch

MIN_BITS = 2
MAX_BITS = 8


def weight_limits(bits: int) -> tuple[int, int]:
    """``(-2^(B-1), 2^(B-1) - 1)``, the range of ``B``-bit codes (``quant::weight_limits``)."""
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"bits = {bits} is outside {MIN_BITS}..={MAX_BITS}")
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def act_limits(act_bits: int) -> tuple[int, int]:
    """``(-2^(A-1), 2^(A-1) - 1)`` (``quant::act_limits``)."""
    if not MIN_BITS <= act_bits <= 16:
        raise ValueError(f"act_bits = {act_bits} is outside {MIN_BITS}..=16")
    return -(1 << (act_bits - 1)), (1 << (act_bits - 1)) - 1


def check_plane_count(bits: int, k: int) -> None:
    weight_limits(bits)
    if not 1 <= k <= bits:
        raise ValueError(f"plane count {k} is outside 1..={bits}")


def round_half_away(v: torch.Tensor) -> torch.Tensor:
    """Rust's ``f32::round``: ties away from zero, exact (``trunc`` and the fraction are exact
    in binary floating point, unlike ``floor(|v| + 0.5)``)."""
    t = torch.trunc(v)
    frac = v - t
    return torch.where(frac.abs() >= 0.5, t + torch.sign(v), t)


def code_scales(w2d: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-row ``s_c = max|W[c, :]| / (2^(B-1) - 1)``, 1 for an all-zero row
    (``quant::quantize_rows``)."""
    qmax = weight_limits(bits)[1]
    w2d = w2d.detach().to(torch.float32)
    m = w2d.abs().amax(dim=1)
    return torch.where(m == 0, torch.ones_like(m), m / torch.tensor(float(qmax)))


def codes(w2d: torch.Tensor, scales: torch.Tensor, bits: int) -> torch.Tensor:
    """``q_B = clamp(round_half_away(W / s_c))`` as float32 integers
    (``quant::quantize_with_scales``)."""
    lo, hi = weight_limits(bits)
    q = round_half_away(w2d / scales.view(-1, 1))
    q = torch.nan_to_num(q, nan=0.0)
    return q.clamp(lo, hi)


def truncate(q: torch.Tensor, bits: int, k: int) -> torch.Tensor:
    """``q_k = q_B >> (B - k)`` (arithmetic shift, i.e. floor) of float32 integer codes."""
    check_plane_count(bits, k)
    return torch.floor(q / float(1 << (bits - k)))


def midpoint_side(scales: torch.Tensor, bits: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The bucket-midpoint table ``alpha = s·2^(B-k)``, ``beta = s·(2^(B-k) - 1)/2``
    (``quant::midpoint_side``)."""
    check_plane_count(bits, k)
    step = float(1 << (bits - k))
    return scales * step, scales * (step - 1.0) / 2.0


def act_params(lo: float, hi: float, act_bits: int) -> tuple[float, float]:
    """Activation ``(scale, zero)`` for the range ``[lo, hi]`` widened to contain 0; a
    degenerate range gets ``(1, 0)`` (``quant::act_params``), computed in float32."""
    qmin, qmax = act_limits(act_bits)
    f = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    lo_t = torch.minimum(f(lo), f(0.0))
    hi_t = torch.maximum(f(hi), f(0.0))
    scale = (hi_t - lo_t) / f(float(qmax - qmin))
    if not (torch.isfinite(scale) and scale > 0):
        return 1.0, 0.0
    zero = torch.round(f(float(qmin)) - lo_t / scale).clamp(qmin, qmax)
    return float(scale), float(zero)


def check_act(scale: float, zero: float, act_bits: int) -> None:
    """What ``ActQuantizer::new`` accepts: a finite positive scale and an integer zero point
    within ``±2^A``."""
    act_limits(act_bits)
    if not (scale == scale and abs(scale) != float("inf") and scale > 0):
        raise ValueError(f"activation scale {scale} must be finite and positive")
    if zero != int(zero) or abs(zero) > (1 << act_bits):
        raise ValueError(f"activation zero point {zero} must be an integer within ±2^{act_bits}")


def half_precision(v: torch.Tensor) -> torch.Tensor:
    """Nearest IEEE half-precision value as float32, or ``v`` itself where that would overflow
    (``bitplane_rewrite::half_precision``): how Strata stores side tables."""
    h = v.to(torch.float16).to(torch.float32)
    return torch.where(torch.isfinite(h) | ~torch.isfinite(v), h, v)


def _world_size() -> int:
    """Processes of a distributed job (1 outside one). LSQ's gradient scale counts the
    elements of the *global* batch, so that ``torchrun`` with ``N`` processes and a per-process
    batch of ``B/N`` trains exactly like one process with batch ``B``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def lsq_grad_scale(numel: int, act_bits: int) -> float:
    """LSQ's step-size gradient scale ``1/sqrt(numel·Q_P)`` (``lsq_grad_scale``)."""
    qp = act_limits(act_bits)[1]
    return 1.0 / float(max(numel, 1) * qp) ** 0.5


class _WeightCodes(torch.autograd.Function):
    """``q_k`` of float weights, with the straight-through estimator of Strata's once-QAT:
    rounding and the shift are the identity (``∂q_k/∂v = 2^-(B-k)`` for ``v = W/s``) inside
    the code range, 0 where ``v`` is clamped."""

    @staticmethod
    def forward(ctx, v, bits: int, k: int):
        lo, hi = weight_limits(bits)
        ctx.save_for_backward((v >= lo) & (v <= hi))
        ctx.step = float(1 << (bits - k))
        q = torch.nan_to_num(round_half_away(v), nan=0.0).clamp(lo, hi)
        return torch.floor(q / ctx.step)

    @staticmethod
    def backward(ctx, g):
        (inside,) = ctx.saved_tensors
        return g * inside / ctx.step, None, None


def weight_codes_ste(w2d: torch.Tensor, scales: torch.Tensor, bits: int, k: int) -> torch.Tensor:
    """``q_k`` of ``W [R, K]`` with the straight-through gradient to ``W``."""
    return _WeightCodes.apply(w2d / scales.view(-1, 1), bits, k)


class _ActFakeQuant(torch.autograd.Function):
    """``y = s·(clamp(round_half_even(x/s) + z, lo, hi) − z)`` with LSQ's gradients (Strata's
    ``ActFakeQuant``): ``∂y/∂x`` is 1 inside and 0 where clamped; ``∂y/∂s`` is
    ``round(x/s) − x/s`` inside and ``lo − z`` / ``hi − z`` where clamped, scaled by
    ``lsq_grad_scale``. The zero point is fixed."""

    @staticmethod
    def forward(ctx, x, scale, zero: float, act_bits: int):
        lo, hi = act_limits(act_bits)
        u = x / scale
        r = torch.round(u)
        # NaN quantizes to the zero point, i.e. real 0, as the runtime's does.
        y = torch.nan_to_num(scale * ((r + zero).clamp(lo, hi) - zero), nan=0.0)
        ctx.save_for_backward(u, r)
        ctx.zero, ctx.lo, ctx.hi, ctx.bits = zero, float(lo), float(hi), act_bits
        ctx.scale_shape = scale.shape
        return y

    @staticmethod
    def backward(ctx, g):
        u, r = ctx.saved_tensors
        t = u + ctx.zero
        inside = (t >= ctx.lo) & (t <= ctx.hi)  # False for NaN: no gradient at all
        ds_el = torch.where(
            inside,
            r - u,
            torch.where(t < ctx.lo, ctx.lo - ctx.zero, torch.where(t > ctx.hi, ctx.hi - ctx.zero, 0.0)),
        )
        gs = (g * ds_el).sum() * lsq_grad_scale(u.numel() * _world_size(), ctx.bits)
        return g * inside, gs.reshape(ctx.scale_shape), None, None


def act_fake_quant(x: torch.Tensor, scale: torch.Tensor, zero: float, act_bits: int) -> torch.Tensor:
    """What the bit-plane runtime's integer path sees of ``x``, in real units."""
    return _ActFakeQuant.apply(x, scale, zero, act_bits)

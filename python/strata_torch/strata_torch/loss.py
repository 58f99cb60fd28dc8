"""The once-QAT objective of Strata's ``once-qat`` pass, for PyTorch logits."""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F


def auto_temperature(teacher_logits: torch.Tensor) -> float:
    """Half the median gap between a sample's two largest teacher logits, at least 1 (the
    pass's ``temperature=auto``): at ``T = 1`` a confident classifier's softmax is saturated
    and KL gives no signal."""
    if teacher_logits.shape[-1] < 2:
        return 1.0
    top = teacher_logits.detach().float().topk(2, dim=-1).values
    gaps = (top[..., 0] - top[..., 1]).flatten()
    gaps = gaps[torch.isfinite(gaps)]
    if gaps.numel() == 0:
        return 1.0
    median = gaps.sort().values[gaps.numel() // 2]
    return max(float(median) / 2.0, 1.0)


def kl_distillation(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T²·KL(teacher_T ‖ student_T)`` averaged over the batch (the runtime's
    ``kl_distillation``)."""
    t = float(temperature)
    ls = F.log_softmax(student / t, dim=-1)
    lt = F.log_softmax(teacher.detach() / t, dim=-1)
    return (lt.exp() * (lt - ls)).sum(dim=-1).mean() * (t * t)


def once_qat_loss(
    student_logits_per_k: Mapping[int, torch.Tensor],
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    weights: Mapping[int, float] | None = None,
    labels: torch.Tensor | None = None,
    ce_weight: float = 1.0,
    normalize: Mapping[int, float] | None = None,
):
    """``Σ_k λ_k·L_k`` with ``L_k = T²·KL(teacher_T ‖ student_k,T)`` plus ``ce_weight ×``
    cross-entropy against ``labels`` when given — the ``once-qat`` pass's objective.

    ``weights`` are the ``λ_k`` (default 1). ``normalize`` holds each plane count's starting
    loss ``L_k(start)`` (measured on held-out samples before training, see
    :func:`start_losses`); ``λ_k`` is divided by it so that a plane count that starts near
    FP32 is not drowned by a low one in the shared weights' gradient, as the pass does by
    default. Returns ``(total, {k: L_k})`` (the per-k terms detached, for logging).
    """
    total = teacher_logits.new_zeros(())
    parts = {}
    for k, logits in student_logits_per_k.items():
        lk = kl_distillation(logits, teacher_logits, temperature)
        if labels is not None:
            lk = lk + ce_weight * F.cross_entropy(logits, labels)
        lam = 1.0 if weights is None else float(weights.get(k, 1.0))
        if normalize is not None:
            lam /= max(float(normalize[k]), 1e-12)
        total = total + lam * lk
        parts[k] = float(lk.detach())
    return total, parts

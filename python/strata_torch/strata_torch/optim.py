"""Parameter groups matching Strata's once-QAT optimiser."""

from __future__ import annotations

from .model import VLModel


def param_groups(model: VLModel, lr: float = 1e-3, weight_lr: float = 0.02) -> list[dict]:
    """Two groups for ``torch.optim.Adam``: the shared weights (in 8-bit code steps, so
    ``weight_lr`` means what the pass's ``weight-lr`` means) and every side table (``lr``,
    the pass's ``lr``). ``weight_lr = 0`` leaves the weights out (tables only)."""
    if hasattr(model, "module"):
        model = model.module
    weights, tables = [], []
    for _, layer in model.layers():
        weights.append(layer.w)
        for d in (layer.alpha, layer.beta, layer.bias, layer.act):
            tables.extend(d.values())
    groups = [{"params": tables, "lr": lr, "name": "tables"}]
    if weight_lr > 0:
        groups.insert(0, {"params": weights, "lr": weight_lr, "name": "weights"})
    return groups

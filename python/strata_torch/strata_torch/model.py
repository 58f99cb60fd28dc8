"""Turning a float PyTorch network into a vertically layered one: BatchNorm folding, layer
swapping, calibration, and the module that runs every plane count in one forward pass."""

from __future__ import annotations

import copy
from typing import Iterable

import torch
import torch.nn as nn

from .layers import VLLayer


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """``model`` (in eval mode) with every BatchNorm that follows a Conv folded into it, as
    Strata's ``fold-batchnorm`` pass does: ``W' = W·γ/√(σ²+ε)``, ``b' = (b−μ)·γ/√(σ²+ε)+β``.

    Uses ``torch.fx`` to see which Conv feeds which BatchNorm. A model without BatchNorm is
    returned unchanged (no tracing needed); a BatchNorm that does not directly follow a Conv
    is an error naming it, because its Conv would be quantized without it.
    """
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return model
    import torch.fx as fx
    from torch.fx.experimental.optimization import fuse

    model = model.eval()
    try:
        fused = fuse(model)
    except Exception as e:  # tracing failed: say why, and what to do
        raise ValueError(
            f"cannot fold BatchNorm: torch.fx could not trace the model ({e}); fold it "
            "yourself (torch.nn.utils.fusion.fuse_conv_bn_eval) before prepare()"
        ) from e
    left = [n for n, m in fused.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if left:
        raise ValueError(
            f"BatchNorm {left[0]!r} does not directly follow a Conv2d; Strata quantizes Conv and "
            "Linear layers with BatchNorm folded in, so this one cannot be represented"
        )
    assert isinstance(fused, fx.GraphModule)
    return fused


def vl_layers(model: nn.Module) -> list[tuple[str, VLLayer]]:
    """Every :class:`VLLayer` of ``model`` with its qualified name, in registration order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, VLLayer)]


def _swap(model: nn.Module, planes, bits: int, act_bits: int) -> int:
    count = 0
    for name, child in list(model.named_children()):
        if isinstance(child, (nn.Conv2d, nn.Linear)):
            setattr(model, name, VLLayer(child, planes, bits, act_bits))
            count += 1
        elif not isinstance(child, VLLayer):
            count += _swap(child, planes, bits, act_bits)
    return count


class VLModel(nn.Module):
    """A network whose Conv2d/Linear layers are :class:`VLLayer` s.

    ``model(x)`` runs every plane count and returns ``{k: logits}`` (one forward pass as far as
    ``DistributedDataParallel`` is concerned, so DDP works unchanged); ``model(x, planes=k)``
    runs plane count ``k`` only and returns its logits; ``model(x, planes=[…])`` a subset.
    :meth:`run` with ``k = None`` is the float network with the current shared weights.
    """

    def __init__(self, net: nn.Module, planes, bits: int, act_bits: int):
        super().__init__()
        self.net = net
        self.planes = sorted({int(k) for k in planes})
        self.bits, self.act_bits = bits, act_bits

    def layers(self) -> list[tuple[str, VLLayer]]:
        return vl_layers(self.net)

    def set_planes(self, k: int | None) -> None:
        """Every layer at plane count ``k`` (``None``: the float network)."""
        for _, layer in self.layers():
            layer.k = k

    def run(self, x: torch.Tensor, k: int | None) -> torch.Tensor:
        self.set_planes(k)
        try:
            return self.net(x)
        finally:
            self.set_planes(None)

    def forward(self, x: torch.Tensor, planes: int | Iterable[int] | None = None):
        if isinstance(planes, int):
            return self.run(x, planes)
        ks = self.planes if planes is None else list(planes)
        return {k: self.run(x, k) for k in ks}


def prepare(
    model: nn.Module,
    planes=(2, 3, 4, 6, 8),
    bits: int = 8,
    act_bits: int = 8,
) -> VLModel:
    """A vertically layered copy of ``model``: BatchNorm folded, every ``nn.Conv2d`` and
    ``nn.Linear`` replaced by a :class:`VLLayer` with ``bits``-bit codes and side tables for
    ``planes`` (bucket-midpoint start). ``model`` itself is not changed. Calibrate the
    activation ranges with :func:`calibrate` before training."""
    net = fold_batchnorm(copy.deepcopy(model).eval())
    if _swap(net, planes, bits, act_bits) == 0:
        raise ValueError("the model has no nn.Conv2d or nn.Linear layer to quantize")
    return VLModel(net, planes, bits, act_bits)


@torch.no_grad()
def calibrate(model: VLModel, x: torch.Tensor) -> None:
    """Sets every layer's input quantization at every plane count from the calibration batch
    ``x``, as Strata's sequential calibration does: per plane count, in one forward pass, each
    layer takes the min-max range of the input the ``k``-plane network feeds it. Run it with
    the same ``x`` on every process of a distributed job (or on one and broadcast)."""
    was = model.training
    model.eval()
    for k in model.planes:
        for _, layer in model.layers():
            getattr(layer, f"act_ready_k{k}").fill_(False)
        model.run(x, k)
    model.train(was)

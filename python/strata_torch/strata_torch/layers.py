"""The vertically layered stand-in for ``nn.Conv2d`` / ``nn.Linear``.

One :class:`VLLayer` holds the shared float weights and, per plane count ``k``, the side
table Strata stores (``alpha``, ``beta``, ``bias``) and the input activation quantization
(``scale``, ``zero``). At plane count ``k`` its output is Strata's float path of the
bit-plane op exactly: the input fake-quantized with ``(scale_k, zero_k)``, the weights
``W_k = alpha_k·q_k + beta_k`` with ``q_k = q_B >> (B−k)`` of the codes of the shared
weights, the bias ``bias_k``. With no plane count set it is the float layer.

Parameters are stored in the units Strata's once-QAT optimiser steps in, so a plain
``torch.optim.Adam`` with one learning rate for the weights and one for the tables moves
them as Strata's engine does: the weights in 8-bit code steps (``W = w·s_c``), ``alpha`` and
``beta`` in units of the starting ``|alpha|`` of their channel, the bias in units of the
float bias' RMS, the activation step in units of its starting value.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import quant


class VLLayer(nn.Module):
    """A Conv2d or Linear layer quantized as nested bit-planes (see the module doc)."""

    def __init__(self, layer: nn.Module, planes, bits: int = 8, act_bits: int = 8):
        super().__init__()
        if isinstance(layer, nn.Conv2d):
            if layer.padding_mode != "zeros":
                raise ValueError(f"Conv2d padding_mode {layer.padding_mode!r} is not supported")
            self.kind = "conv"
            self.conv_args = dict(
                stride=layer.stride,
                padding=layer.padding,
                dilation=layer.dilation,
                groups=layer.groups,
            )
        elif isinstance(layer, nn.Linear):
            self.kind = "linear"
            self.conv_args = {}
        else:
            raise TypeError(f"cannot quantize a {type(layer).__name__}")
        quant.weight_limits(bits)
        quant.act_limits(act_bits)
        self.planes = sorted({int(k) for k in planes})
        if not self.planes:
            raise ValueError("planes is empty")
        for k in self.planes:
            quant.check_plane_count(bits, k)
        self.bits, self.act_bits = bits, act_bits
        w = layer.weight.detach().to(torch.float32)
        self.weight_shape = tuple(w.shape)
        rows = w.shape[0]
        scales = quant.code_scales(w.reshape(rows, -1), bits)
        self.register_buffer("scale", scales)
        # The shared weights in code units; W = w·s_c.
        self.w = nn.Parameter(w.reshape(rows, -1) / scales.view(-1, 1))
        bias = (
            layer.bias.detach().to(torch.float32)
            if layer.bias is not None
            else torch.zeros(rows, dtype=torch.float32)
        )
        self.register_buffer("float_bias", bias.clone())
        rms = float(bias.pow(2).mean().sqrt()) if rows else 0.0
        self.register_buffer("bias_unit", torch.tensor(rms if rms > 1e-6 else 1e-2))
        self.alpha = nn.ParameterDict()
        self.beta = nn.ParameterDict()
        self.bias = nn.ParameterDict()
        self.act = nn.ParameterDict()
        for k in self.planes:
            a, b = quant.midpoint_side(scales, bits, k)
            unit = torch.where(a.abs() > 0, a.abs(), torch.ones_like(a))
            self.register_buffer(f"ab_unit_k{k}", unit)
            self.alpha[f"k{k}"] = nn.Parameter(a / unit)
            self.beta[f"k{k}"] = nn.Parameter(b / unit)
            self.bias[f"k{k}"] = nn.Parameter(bias / self.bias_unit)
            self.act[f"k{k}"] = nn.Parameter(torch.ones(()))
            self.register_buffer(f"act_unit_k{k}", torch.ones(()))
            self.register_buffer(f"act_zero_k{k}", torch.zeros(()))
            # Whether the activation quantization of this k was calibrated.
            self.register_buffer(f"act_ready_k{k}", torch.zeros((), dtype=torch.bool))
        self.k: int | None = None

    # The values Strata stores, from the parameters (the one place that converts units).

    def weight(self) -> torch.Tensor:
        """The float weights ``W [R, K]``, as exported."""
        return self.w * self.scale.view(-1, 1)

    def table(self, k: int, stored: bool | None = None):
        """``(alpha, beta, bias, act_scale, act_zero)`` of plane count ``k``. ``stored``
        (default: outside training) rounds ``alpha``, ``beta`` and ``bias`` to half precision
        as the container does; training keeps them in float32 as Strata's engine does."""
        if stored is None:
            stored = not self.training
        unit = getattr(self, f"ab_unit_k{k}")
        alpha = self.alpha[f"k{k}"] * unit
        beta = self.beta[f"k{k}"] * unit
        bias = self.bias[f"k{k}"] * self.bias_unit
        if stored:
            alpha, beta, bias = (quant.half_precision(t) for t in (alpha, beta, bias))
        act_scale = self.act[f"k{k}"] * getattr(self, f"act_unit_k{k}")
        return alpha, beta, bias, act_scale, float(getattr(self, f"act_zero_k{k}"))

    def calibrated(self, k: int) -> bool:
        return bool(getattr(self, f"act_ready_k{k}"))

    def set_act(self, k: int, scale: float, zero: float) -> None:
        """Sets plane count ``k``'s input quantization (the step's unit becomes ``scale``)."""
        quant.check_act(scale, zero, self.act_bits)
        with torch.no_grad():
            getattr(self, f"act_unit_k{k}").fill_(scale)
            getattr(self, f"act_zero_k{k}").fill_(zero)
            self.act[f"k{k}"].fill_(1.0)
            getattr(self, f"act_ready_k{k}").fill_(True)

    def _apply_layer(self, x: torch.Tensor, w2d: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        if self.kind == "conv":
            return F.conv2d(x, w2d.reshape(self.weight_shape), bias, **self.conv_args)
        return F.linear(x, w2d, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.k
        if k is None:
            return self._apply_layer(x, self.weight(), self.float_bias)
        if k not in self.planes:
            raise ValueError(f"plane count {k} has no side table (this layer has {self.planes})")
        if not self.calibrated(k):
            # Sequential min-max calibration: this layer sees the input the k-plane network
            # really feeds it, because every earlier layer already runs at k.
            with torch.no_grad():
                lo, hi = float(x.min()), float(x.max())
            self.set_act(k, *quant.act_params(lo, hi, self.act_bits))
        alpha, beta, bias, act_scale, zero = self.table(k)
        xq = quant.act_fake_quant(x, act_scale, zero, self.act_bits)
        q = quant.weight_codes_ste(self.weight(), self.scale, self.bits, k)
        wk = alpha.view(-1, 1) * q + beta.view(-1, 1)
        return self._apply_layer(xq, wk, bias)

    def extra_repr(self) -> str:
        return f"{self.kind}, weight={list(self.weight_shape)}, planes={self.planes}, bits={self.bits}, act_bits={self.act_bits}"

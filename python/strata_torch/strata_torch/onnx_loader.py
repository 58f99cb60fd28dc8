"""Loading a float CNN from ONNX into PyTorch, to fine-tune a model that exists only as ONNX
(``pip install strata-torch[onnx]``: needs the ``onnx`` package).

Covers the ops of convolutional classifiers: Conv, Gemm, MatMul with a constant 2-D weight,
BatchNormalization, Relu, Sigmoid, Clip, Add/Sub/Mul/Div, Max/Average/GlobalAveragePool,
Flatten, Reshape with a constant shape, Concat, Identity and Dropout. Conv and Gemm become
``nn.Conv2d``/``nn.Linear`` submodules (what :func:`strata_torch.prepare` quantizes),
named after the ONNX node; anything else is an error naming the node and op type.
"""

from __future__ import annotations

import re

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _module_name(node, index: int, taken: set) -> str:
    base = re.sub(r"[^0-9A-Za-z_]", "_", node.name or f"{node.op_type}_{index}").strip("_")
    base = base or f"{node.op_type}_{index}"
    if base[0].isdigit():
        base = f"n_{base}"
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


class OnnxModule(nn.Module):
    """The float network of an ONNX file, evaluated node by node in file order."""

    def __init__(self, path: str):
        super().__init__()
        import onnx
        from onnx import numpy_helper

        model = onnx.load(path)
        g = model.graph
        self.consts: dict[str, torch.Tensor] = {
            t.name: torch.from_numpy(np.array(numpy_helper.to_array(t))) for t in g.initializer
        }
        for n in g.node:
            if n.op_type == "Constant":
                self.consts[n.output[0]] = torch.from_numpy(
                    np.array(numpy_helper.to_array(_attrs(n)["value"]))
                )
        self.input_names = [i.name for i in g.input if i.name not in self.consts]
        self.output_names = [o.name for o in g.output]
        self.layers = nn.ModuleDict()
        self.plan = []  # (op_type, inputs, outputs, attrs, module name or None)
        taken: set = set()
        for i, n in enumerate(g.node):
            if n.op_type == "Constant":
                continue
            a = _attrs(n)
            mod = None
            if n.op_type == "Conv":
                mod = self._conv(n, a)
            elif n.op_type == "Gemm":
                mod = self._gemm(n, a)
            elif n.op_type == "MatMul" and n.input[1] in self.consts and self.consts[n.input[1]].dim() == 2:
                w = self.consts[n.input[1]].float()
                mod = nn.Linear(w.shape[0], w.shape[1], bias=False)
                with torch.no_grad():
                    mod.weight.copy_(w.t())
            elif n.op_type not in _ELEMENTWISE and n.op_type not in _OTHER:
                raise ValueError(f"node {n.name!r}: op type {n.op_type} is not supported by OnnxModule")
            name = None
            if mod is not None:
                name = _module_name(n, i, taken)
                self.layers[name] = mod
            self.plan.append((n.op_type, list(n.input), list(n.output), a, name))
        self._fold_batchnorm()

    def _fold_batchnorm(self) -> None:
        """Folds a BatchNormalization whose input is a Conv output used by nothing else into
        that Conv (as Strata's ``fold-batchnorm`` does), so the quantized Conv is the folded
        one; the BatchNormalization becomes an Identity."""
        uses: dict = {}
        for _, ins, _, _, _ in self.plan:
            for i in ins:
                uses[i] = uses.get(i, 0) + 1
        producer = {outs[0]: (op, mod) for op, _, outs, _, mod in self.plan}
        for idx, (op, ins, outs, a, mod) in enumerate(self.plan):
            if op != "BatchNormalization" or any(i not in self.consts for i in ins[1:5]):
                continue
            src_op, conv = producer.get(ins[0], (None, None))
            if src_op != "Conv" or uses.get(ins[0], 0) != 1:
                continue
            gamma, beta, mean, var = (self.consts[i].double() for i in ins[1:5])
            factor = gamma / torch.sqrt(var + float(a.get("epsilon", 1e-5)))
            m = self.layers[conv]
            with torch.no_grad():
                b = m.bias.double() if m.bias is not None else torch.zeros_like(mean)
                w = m.weight.double() * factor.view(-1, 1, 1, 1)
                new = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride,
                                padding=m.padding, dilation=m.dilation, groups=m.groups, bias=True)
                new.weight.copy_(w.float())
                new.bias.copy_(((b - mean) * factor + beta).float())
            self.layers[conv] = new
            self.plan[idx] = ("Identity", ins[:1], outs, {}, None)

    def _conv(self, n, a) -> nn.Module:
        w = self.consts.get(n.input[1])
        if w is None or w.dim() != 4:
            raise ValueError(f"node {n.name!r}: Conv needs a constant 4-D weight")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise ValueError(f"node {n.name!r}: Conv auto_pad is not supported; export with explicit pads")
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if pads[0] != pads[2] or pads[1] != pads[3]:
            raise ValueError(f"node {n.name!r}: asymmetric Conv pads {pads} are not supported")
        groups = int(a.get("group", 1))
        bias = len(n.input) > 2 and n.input[2] != ""
        m = nn.Conv2d(
            w.shape[1] * groups,
            w.shape[0],
            tuple(w.shape[2:]),
            stride=tuple(a.get("strides", [1, 1])),
            padding=(pads[0], pads[1]),
            dilation=tuple(a.get("dilations", [1, 1])),
            groups=groups,
            bias=bias,
        )
        with torch.no_grad():
            m.weight.copy_(w.float())
            if bias:
                m.bias.copy_(self.consts[n.input[2]].float())
        return m

    def _gemm(self, n, a) -> nn.Module:
        b = self.consts.get(n.input[1])
        if b is None or b.dim() != 2 or a.get("transA", 0):
            raise ValueError(f"node {n.name!r}: Gemm needs a constant 2-D B and transA = 0")
        w = b.float() if a.get("transB", 0) else b.float().t()
        w = w * float(a.get("alpha", 1.0))
        has_c = len(n.input) > 2 and n.input[2] != ""
        m = nn.Linear(w.shape[1], w.shape[0], bias=has_c)
        with torch.no_grad():
            m.weight.copy_(w)
            if has_c:
                m.bias.copy_(self.consts[n.input[2]].float().reshape(-1).expand(w.shape[0]) * float(a.get("beta", 1.0)))
        return m

    def forward(self, *inputs):
        env = dict(zip(self.input_names, inputs))
        get = lambda name: env[name] if name in env else self.consts[name]  # noqa: E731
        for op, ins, outs, a, mod in self.plan:
            if mod is not None:
                y = self.layers[mod](get(ins[0]))
            elif op in _ELEMENTWISE:
                y = _ELEMENTWISE[op](*[get(i) for i in ins if i])
            else:
                y = _OTHER[op](self, a, [get(i) if i else None for i in ins])
            env[outs[0]] = y
        out = [env[o] for o in self.output_names]
        return out[0] if len(out) == 1 else tuple(out)


def _pool_args(a):
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if pads[0] != pads[2] or pads[1] != pads[3]:
        raise ValueError(f"asymmetric pool pads {pads} are not supported")
    return dict(
        kernel_size=tuple(a["kernel_shape"]),
        stride=tuple(a.get("strides", a["kernel_shape"])),
        padding=(pads[0], pads[1]),
        ceil_mode=bool(a.get("ceil_mode", 0)),
    )


def _flatten(x, axis: int):
    """ONNX Flatten: ``[prod(d[:axis]), prod(d[axis:])]``, spelled with ``torch.flatten`` so
    that an export keeps the batch dimension dynamic."""
    axis = axis + x.dim() if axis < 0 else axis
    if axis == 0:
        return x.reshape(1, -1)
    return torch.flatten(torch.flatten(x, axis), 0, axis - 1)


def _reshape(x, shape, allowzero):
    shape = [int(s) for s in shape.tolist()]
    if not allowzero:
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


_ELEMENTWISE = {
    "Relu": F.relu,
    "Sigmoid": torch.sigmoid,
    "Add": torch.add,
    "Sub": torch.sub,
    "Mul": torch.mul,
    "Div": torch.div,
    "Identity": lambda x: x,
}

_OTHER = {
    "Dropout": lambda self, a, i: i[0],
    "Clip": lambda self, a, i: torch.clamp(
        i[0],
        None if len(i) < 2 or i[1] is None else float(i[1]),
        None if len(i) < 3 or i[2] is None else float(i[2]),
    ),
    "MaxPool": lambda self, a, i: F.max_pool2d(i[0], **_pool_args(a)),
    "AveragePool": lambda self, a, i: F.avg_pool2d(
        i[0], count_include_pad=bool(a.get("count_include_pad", 0)), **_pool_args(a)
    ),
    "GlobalAveragePool": lambda self, a, i: i[0].mean(dim=(2, 3), keepdim=True),
    "Flatten": lambda self, a, i: _flatten(i[0], a.get("axis", 1)),
    "Reshape": lambda self, a, i: _reshape(i[0], i[1], a.get("allowzero", 0)),
    "Concat": lambda self, a, i: torch.cat(i, dim=a["axis"]),
    "BatchNormalization": lambda self, a, i: F.batch_norm(
        i[0], i[3].float(), i[4].float(), i[1].float(), i[2].float(), False, 0.0, a.get("epsilon", 1e-5)
    ),
}


def onnx_module(path: str) -> OnnxModule:
    """The float network of the ONNX file at ``path`` as a PyTorch module (see the module doc)."""
    return OnnxModule(path)

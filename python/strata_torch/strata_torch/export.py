"""Writing a trained vertically layered network for ``strata compile --qat-tables``: the float
network as ONNX and the side tables as the sidecar of ``docs/qat-tables.md``."""

from __future__ import annotations

import copy
import os

import numpy as np
import torch
import torch.nn as nn

from .layers import VLLayer
from .model import VLModel

FORMAT = 1


def float_network(model: VLModel) -> nn.Module:
    """A plain PyTorch copy of the trained network: every :class:`VLLayer` back to an
    ``nn.Conv2d``/``nn.Linear`` holding the trained float weights ``W = w·s_c`` (the values the
    codes are derived from) and the float bias, under the same qualified name."""
    net = copy.deepcopy(model.net).eval()

    def swap(parent: nn.Module):
        for name, child in list(parent.named_children()):
            if isinstance(child, VLLayer):
                setattr(parent, name, _plain(child))
            else:
                swap(child)

    swap(net)
    return net


def _plain(layer: VLLayer) -> nn.Module:
    w = layer.weight().detach().reshape(layer.weight_shape)
    if layer.kind == "conv":
        a = layer.conv_args
        out = nn.Conv2d(
            w.shape[1] * a["groups"],
            w.shape[0],
            tuple(w.shape[2:]),
            stride=a["stride"],
            padding=a["padding"],
            dilation=a["dilation"],
            groups=a["groups"],
            bias=True,
        )
    else:
        out = nn.Linear(w.shape[1], w.shape[0], bias=True)
    with torch.no_grad():
        out.weight.copy_(w)
        out.bias.copy_(layer.float_bias)
    return out


def tables(model: VLModel) -> dict[str, np.ndarray]:
    """The sidecar's arrays, each layer keyed by ``<qualified module name>.weight`` — the name
    the TorchScript exporter gives its weight initializer."""
    out: dict[str, np.ndarray] = {
        "strata/format": np.array(FORMAT, dtype=np.int64),
        "strata/bits": np.array(model.bits, dtype=np.int64),
        "strata/act_bits": np.array(model.act_bits, dtype=np.int64),
        "strata/planes": np.array(model.planes, dtype=np.int64),
    }
    f32 = lambda t: t.detach().cpu().to(torch.float32).numpy()  # noqa: E731
    for name, layer in model.layers():
        key = f"{name}.weight"
        out[f"{key}/scale"] = f32(layer.scale)
        for k in model.planes:
            if not layer.calibrated(k):
                raise ValueError(f"layer {name!r} has no activation calibration for k={k}; run calibrate()")
            alpha, beta, bias, act_scale, zero = layer.table(k, stored=True)
            out[f"{key}/k{k}/alpha"] = f32(alpha)
            out[f"{key}/k{k}/beta"] = f32(beta)
            out[f"{key}/k{k}/bias"] = f32(bias)
            out[f"{key}/k{k}/act"] = np.array([float(act_scale.detach()), zero], dtype=np.float32)
    return out


def export(
    model: VLModel,
    onnx_path: str | os.PathLike,
    tables_path: str | os.PathLike,
    example_input: torch.Tensor,
    input_names=("input",),
    output_names=("logits",),
    opset_version: int = 17,
) -> None:
    """Writes the trained float network to ``onnx_path`` (TorchScript exporter, batch dim
    dynamic) and its code scales and side tables to ``tables_path`` (``.npz``). The two
    belong together: ``strata compile onnx_path --qat-tables tables_path -o net.strata``.

    Checks that every table names a weight initializer of the written ONNX file (when the
    ``onnx`` package is installed), so a renaming exporter fails here and not at compile."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    arrays = tables(model)
    net = float_network(model)
    dyn = {n: {0: "N"} for n in list(input_names) + list(output_names)}
    torch.onnx.export(
        net,
        (example_input,),
        str(onnx_path),
        dynamo=False,
        opset_version=opset_version,
        input_names=list(input_names),
        output_names=list(output_names),
        dynamic_axes=dyn,
    )
    try:
        import onnx
    except ImportError:
        onnx = None
    if onnx is not None:
        names = {t.name for t in onnx.load(str(onnx_path)).graph.initializer}
        missing = sorted({k.split("/")[0] for k in arrays if not k.startswith("strata/")} - names)
        if missing:
            raise RuntimeError(
                f"the exported ONNX has no initializer named {missing[0]!r}; the exporter renamed "
                "a weight, so the tables could not be matched"
            )
    tmp = f"{tables_path}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, tables_path)

"""strata_torch: Strata's vertically layered quantization in PyTorch.

Once-QAT wherever PyTorch runs (one GPU, ``torchrun`` on a cluster), with the exact
arithmetic of Strata (``docs/vertical-layering.md``), and a hand-off that ``strata compile
--qat-tables`` packages as it is::

    import strata_torch as st
    qmodel = st.prepare(model, planes=(2, 3, 4, 6, 8))   # BN folded, Conv/Linear swapped
    st.calibrate(qmodel, calib_images)                   # activation ranges per plane count
    logits = qmodel(x)                                   # {k: logits}, every plane count
    loss, parts = st.once_qat_loss(logits, teacher(x), temperature=T)
    ...
    st.export(qmodel, "net.onnx", "net.tables.npz", example_input=x[:1])
"""

from .export import export, float_network, tables
from .layers import VLLayer
from .loss import auto_temperature, kl_distillation, once_qat_loss
from .model import VLModel, calibrate, fold_batchnorm, prepare, vl_layers
from .optim import param_groups


def onnx_module(path):
    """The float network of an ONNX file as a PyTorch module (needs the ``onnx`` package)."""
    from .onnx_loader import onnx_module as load

    return load(path)


__all__ = [
    "VLLayer",
    "VLModel",
    "auto_temperature",
    "calibrate",
    "export",
    "float_network",
    "fold_batchnorm",
    "kl_distillation",
    "once_qat_loss",
    "onnx_module",
    "param_groups",
    "prepare",
    "tables",
    "vl_layers",
]

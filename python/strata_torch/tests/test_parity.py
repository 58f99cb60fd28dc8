"""The PyTorch modules compute what Strata packages: for each plane count, the module's
output equals `strata run --planes k --path float` of `strata compile --qat-tables` within
float rounding, and the integer path agrees to the quantization's own rounding."""

from __future__ import annotations

import os
import tempfile
import unittest

import numpy as np
import torch

from helpers import ROOT, every_conv, perturb_tables, rel_diff, strata

import strata_torch as st

PLANES = (2, 3, 4, 6, 8)
# Float path: the same f32 operations in another summation order (conv/GEMM blocking).
FLOAT_TOL = 1e-4
# Integer path: exact integer sums, then one f32 epilogue; it differs from the float path
# only by float rounding of the dequantized products (docs/vertical-layering.md).
INT_TOL = 1e-3


def parity(test: unittest.TestCase, model, x: np.ndarray, name: str) -> dict:
    """Exports ``model``, packages it, runs both paths at every k; returns the table."""
    rows = {}
    with tempfile.TemporaryDirectory() as d:
        onnx_path, tables, packed = (os.path.join(d, f) for f in ("net.onnx", "net.tables.npz", "net.strata"))
        st.export(model, onnx_path, tables, example_input=torch.from_numpy(x[:1]))
        strata("compile", onnx_path, "--qat-tables", tables, "-o", packed)
        np.save(os.path.join(d, "x.npy"), x)
        model.eval()
        for k in model.planes:
            with torch.no_grad():
                want = model(torch.from_numpy(x), planes=k).numpy()
            row = {}
            for path in ("float", "integer"):
                out = os.path.join(d, f"out-{k}-{path}")
                strata("run", packed, "--input", os.path.join(d, "x.npy"), "--out", out, "--planes", str(k), "--path", path)
                got = np.load(os.path.join(out, "output_0.npy"))
                test.assertEqual(got.shape, want.shape)
                row[path] = rel_diff(got, want)
            rows[k] = row
            test.assertLess(row["float"], FLOAT_TOL, f"{name} k={k} float path")
            test.assertLess(row["integer"], INT_TOL, f"{name} k={k} integer path")
    print(f"\n{name}: max relative difference, PyTorch vs strata run")
    for k, row in rows.items():
        print(f"  k={k}: float {row['float']:.2e}  integer {row['integer']:.2e}")
    return rows


class Parity(unittest.TestCase):
    def test_every_conv_form(self):
        torch.manual_seed(0)
        x = torch.randn(16, 3, 16, 16)
        model = st.prepare(every_conv(), planes=PLANES)
        st.calibrate(model, x)
        perturb_tables(model)
        parity(self, model, x.numpy(), "every-conv CNN")

    def test_fmnist_resnet8(self):
        net = st.onnx_module(os.path.join(ROOT, "models", "fmnist_resnet8.onnx"))
        x = np.load(os.path.join(ROOT, "tests", "fixtures", "mnist", "images.npy"))[:32].astype(np.float32)
        model = st.prepare(net, planes=PLANES)
        st.calibrate(model, torch.from_numpy(x))
        perturb_tables(model)
        parity(self, model, x, "fmnist_resnet8")


if __name__ == "__main__":
    unittest.main()

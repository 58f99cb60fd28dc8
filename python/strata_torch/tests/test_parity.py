"""The PyTorch modules compute what Strata packages: for each plane count, the module's
output equals `strata run --planes k --path float` of `strata compile --qat-tables` within
float rounding, and the integer path agrees to the quantization's own rounding.

"Within float rounding" has one twist: every quantized layer re-quantizes its input, so when
two engines sum in a different order (torch's mean against Strata's sum-then-divide in a
global average pool, say) and a value sits within an ulp of a rounding boundary, one
activation code flips and that sample's logits move by about one activation step — not
rounding any more, but not a disagreement on the arithmetic either. So each sample is
either close (relative difference ≤ ROW_TOL; in practice most are bit-identical) or has
such a flip (≤ FLIP_TOL), and at least MIN_CLOSE of the samples must be close."""

from __future__ import annotations

import os
import tempfile
import unittest

import numpy as np
import torch

from helpers import ROOT, every_conv, perturb_tables, rel_diff, strata

import strata_torch as st

PLANES = (2, 3, 4, 6, 8)
# A close sample: the same f32 operations in another summation order. The integer path
# (exact integer sums, one f32 epilogue) differs from the float path by float rounding too.
ROW_TOL = 1e-5
# A sample where one activation code flipped at a rounding boundary (see the module doc).
FLIP_TOL = 1e-2
MIN_CLOSE = 0.9


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
                per_sample = np.array([rel_diff(g, w) for g, w in zip(got, want)])
                close = per_sample <= ROW_TOL
                row[path] = (float(per_sample[close].max(initial=0.0)), int((~close).sum()), float(per_sample.max()))
                test.assertGreaterEqual(close.mean(), MIN_CLOSE, f"{name} k={k} {path} path: {per_sample}")
                test.assertLessEqual(per_sample.max(), FLIP_TOL, f"{name} k={k} {path} path")
            rows[k] = row
    print(f"\n{name} ({len(x)} samples): max relative difference of PyTorch vs strata run over the close samples; samples with a flipped code (their max)")
    for k, row in rows.items():
        f, i = row["float"], row["integer"]
        print(f"  k={k}: float {f[0]:.2e}, {f[1]} flipped ({f[2]:.1e})   integer {i[0]:.2e}, {i[1]} flipped ({i[2]:.1e})")
    return rows


class Parity(unittest.TestCase):
    def test_every_conv_form(self):
        torch.manual_seed(0)
        x = torch.randn(64, 3, 16, 16)
        model = st.prepare(every_conv(), planes=PLANES)
        st.calibrate(model, x)
        perturb_tables(model)
        parity(self, model, x.numpy(), "every-conv CNN")

    def test_fmnist_resnet8(self):
        net = st.onnx_module(os.path.join(ROOT, "models", "fmnist_resnet8.onnx"))
        x = np.load(os.path.join(ROOT, "tests", "fixtures", "mnist", "images.npy"))[:64].astype(np.float32)
        model = st.prepare(net, planes=PLANES)
        st.calibrate(model, torch.from_numpy(x))
        perturb_tables(model)
        parity(self, model, x, "fmnist_resnet8")


if __name__ == "__main__":
    unittest.main()

"""The arithmetic of strata_torch.quant against docs/vertical-layering.md's definitions."""

from __future__ import annotations

import unittest

import numpy as np
import torch

import helpers  # noqa: F401  (puts the package on sys.path)
from strata_torch import quant


class Arithmetic(unittest.TestCase):
    def test_round_half_away_from_zero(self):
        v = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, -0.49999997, 2.4999998, 127.5])
        want = [1, 2, 3, -1, -2, -3, 0, 0, 2, 128]
        self.assertEqual(quant.round_half_away(v).tolist(), want)

    def test_codes_scales_and_truncation(self):
        w = torch.tensor([[0.0, 0.0, 0.0], [1.0, -0.5, 0.25], [-2.0, 1.0, 0.0039]])
        s = quant.code_scales(w, 8)
        self.assertEqual(s[0].item(), 1.0)  # all-zero row
        self.assertAlmostEqual(s[1].item(), 1.0 / 127, places=9)
        q = quant.codes(w, s, 8)
        self.assertEqual(q[1].tolist(), [127, -64, 32])  # -63.5 rounds away from zero
        self.assertEqual(q[2].tolist(), [-127, 64, 0])
        # q_k = q_B >> (B - k): a floor, so negative codes round down.
        self.assertEqual(quant.truncate(torch.tensor([127.0, -64.0, -1.0, 0.0]), 8, 2).tolist(), [1, -1, -1, 0])
        self.assertEqual(quant.truncate(torch.tensor([-128.0, 5.0]), 8, 8).tolist(), [-128, 5])

    def test_midpoint_side(self):
        a, b = quant.midpoint_side(torch.tensor([0.5]), 8, 6)
        self.assertEqual((a.item(), b.item()), (2.0, 0.75))
        a, b = quant.midpoint_side(torch.tensor([0.5]), 8, 8)
        self.assertEqual((a.item(), b.item()), (0.5, 0.0))

    def test_act_params_contain_zero(self):
        scale, zero = quant.act_params(0.5, 6.0, 8)  # widened to [0, 6]
        self.assertAlmostEqual(scale, 6.0 / 255, places=7)
        self.assertEqual(zero, -128.0)
        self.assertEqual(quant.act_params(0.0, 0.0, 8), (1.0, 0.0))
        scale, zero = quant.act_params(-1.0, 3.0, 8)
        self.assertEqual(zero, float(np.float32(-128) - np.float32(-1.0) / np.float32(scale)).__round__())
        with self.assertRaises(ValueError):
            quant.check_act(0.1, 0.5, 8)

    def test_act_fake_quant_values_and_gradients(self):
        scale = torch.tensor(0.1, requires_grad=True)
        x = torch.tensor([0.05, 0.15, -20.0, 20.0, 0.26], requires_grad=True)
        y = quant.act_fake_quant(x, scale, 3.0, 4)  # codes -8..7, zero 3: reals -1.1..0.4
        # round half to even: 0.5 -> 0, 1.5 -> 2; clamped at (lo - z)·s and (hi - z)·s.
        expect = [0.0, 0.2, -1.1, 0.4, 0.3]
        self.assertTrue(torch.allclose(y, torch.tensor(expect), atol=1e-6), y)
        y.sum().backward()
        self.assertEqual(x.grad.tolist(), [1.0, 1.0, 0.0, 0.0, 1.0])
        u = x.detach() / 0.1
        inside = (torch.round(u) - u)[[0, 1, 4]].sum()
        ds = (inside + (-8 - 3) + (7 - 3)) * quant.lsq_grad_scale(5, 4)
        self.assertAlmostEqual(scale.grad.item(), ds.item(), places=5)

    def test_weight_ste(self):
        w = torch.tensor([[0.3, -1.0, 2.0]], requires_grad=True)
        s = torch.tensor([1.0 / 64])  # codes 19.2 -> 19, -64, 128 -> clamped to 127
        q = quant.weight_codes_ste(w, s, 8, 6)
        self.assertEqual(q.tolist(), [[4, -16, 31]])
        q.sum().backward()
        # d q_k / d W = 1 / (s · 2^(B-k)) inside, 0 where clamped.
        self.assertEqual(w.grad.tolist(), [[16.0, 16.0, 0.0]])

    def test_half_precision(self):
        v = torch.tensor([1.0 + 2**-12, 70000.0, 1e-9])
        h = quant.half_precision(v)
        self.assertEqual(h[0].item(), 1.0)
        self.assertEqual(h[1].item(), 70000.0)  # outside the half range: kept
        self.assertEqual(h[2].item(), 0.0)


if __name__ == "__main__":
    unittest.main()

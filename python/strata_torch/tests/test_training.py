"""Once-QAT with strata_torch learns: gradients reach the weights and every side table, and
a short run lowers the distillation loss of every plane count on samples it never saw."""

from __future__ import annotations

import unittest

import torch

from helpers import every_conv

import strata_torch as st


class Training(unittest.TestCase):
    def test_short_run_lowers_every_plane_count_loss(self):
        torch.manual_seed(0)
        teacher = every_conv()
        x_train, x_test = torch.randn(256, 3, 16, 16), torch.randn(128, 3, 16, 16)
        with torch.no_grad():
            t_train, t_test = teacher(x_train), teacher(x_test)
        model = st.prepare(teacher, planes=(2, 3, 4))  # k = 8 starts at ~1e-8 on this net
        st.calibrate(model, x_train[:64])
        temperature = st.auto_temperature(t_train)

        @torch.no_grad()
        def test_loss():
            model.eval()
            out = {k: float(st.kl_distillation(model(x_test, planes=k), t_test, temperature)) for k in model.planes}
            model.train()
            return out

        start = test_loss()
        opt = torch.optim.Adam(st.param_groups(model, lr=3e-3, weight_lr=0.05), eps=1e-12)
        model.train()
        g = torch.Generator().manual_seed(0)
        for step in range(60):
            idx = torch.randint(0, 256, (32,), generator=g)
            loss, _ = st.once_qat_loss(model(x_train[idx]), t_train[idx], temperature=temperature, normalize=start)
            opt.zero_grad()
            loss.backward()
            if step == 0:
                for name, p in model.named_parameters():
                    self.assertIsNotNone(p.grad, name)
                    self.assertGreater(float(p.grad.abs().sum()), 0.0, f"no gradient reaches {name}")
            opt.step()
        end = test_loss()
        for k in model.planes:
            self.assertLess(end[k], 0.8 * start[k], f"k={k}: {start[k]:.3e} -> {end[k]:.3e}")
        print("\nheld-out loss, start -> after 60 steps: " + ", ".join(f"k={k}: {start[k]:.2e} -> {end[k]:.2e}" for k in model.planes))

    def test_export_needs_calibration(self):
        model = st.prepare(every_conv(), planes=(2, 8))
        with self.assertRaisesRegex(ValueError, "calibrat"):
            st.tables(model)

    def test_prepare_refuses_what_it_cannot_represent(self):
        with self.assertRaisesRegex(ValueError, "no nn.Conv2d or nn.Linear"):
            st.prepare(torch.nn.ReLU())
        with self.assertRaisesRegex(ValueError, "plane count 9"):
            st.prepare(every_conv(), planes=(2, 9))


if __name__ == "__main__":
    unittest.main()

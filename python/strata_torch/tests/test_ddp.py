"""Under torchrun, DistributedDataParallel over 2 processes (gloo, CPU) trains the same
weights as one process with the same global batch, up to reduction-order rounding."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import unittest

import torch

import helpers  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))


class Distributed(unittest.TestCase):
    def test_two_processes_match_one(self):
        with tempfile.TemporaryDirectory() as d:
            one, two = os.path.join(d, "one.pt"), os.path.join(d, "two.pt")
            env = dict(os.environ, PYTHONPATH=HERE)
            worker = os.path.join(HERE, "ddp_worker.py")
            subprocess.run([sys.executable, worker, one], check=True, env=env)
            subprocess.run(
                [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                 worker, two],
                check=True, env=env, capture_output=True, timeout=600,
            )
            a, b = torch.load(one), torch.load(two)
            self.assertEqual(a.keys(), b.keys())
            start = __import__("strata_torch").prepare(__import__("helpers").every_conv(), planes=(2, 4, 8)).state_dict()
            worst, moved = 0.0, 0.0
            for k in a:
                if a[k].dtype.is_floating_point:
                    worst = max(worst, float((a[k] - b[k]).abs().max()))
                    if k.endswith(".w"):  # the shared weights, in code steps
                        moved = max(moved, float((a[k] - start[k]).abs().max()))
                else:
                    self.assertTrue(torch.equal(a[k], b[k]), k)
            print(f"\nDDP 2 processes vs 1: max |Δparameter| {worst:.2e} (training moved the weights by up to {moved:.2e} code steps)")
            self.assertGreater(moved, 0.1, "training must move the parameters for the comparison to mean anything")
            self.assertLess(worst, 1e-4)


if __name__ == "__main__":
    unittest.main()

"""Shared pieces of the strata_torch tests: paths, the strata binary, small models."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn

PKG = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
ROOT = os.path.abspath(os.path.join(PKG, "..", ".."))
sys.path.insert(0, PKG)


def strata_bin() -> str:
    """`$STRATA_BIN`, else the workspace's debug build (built here if missing)."""
    path = os.environ.get("STRATA_BIN")
    if path:
        return path
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    path = os.path.join(target, "debug", "strata")
    subprocess.run(["cargo", "build", "-q", "-p", "strata-cli"], cwd=ROOT, check=True)
    return path


def strata(*args: str) -> str:
    r = subprocess.run([strata_bin(), *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"strata {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r.stdout


class EveryConv(nn.Module):
    """A small CNN with every conv form Strata quantizes: plain 3×3 with padding, strided,
    grouped, depthwise, dilated, 1×1 without bias, a BatchNorm to fold, and two Linear."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.grouped = nn.Conv2d(8, 12, 3, padding=1, groups=4)
        self.depthwise = nn.Conv2d(12, 12, 3, padding=2, dilation=2, groups=12)
        self.point = nn.Conv2d(12, 16, 1, bias=False)
        self.fc1 = nn.Linear(16 * 4 * 4, 24)
        self.fc2 = nn.Linear(24, 5)

    def forward(self, x):
        x = torch.relu(self.bn1(self.c1(x)))
        x = torch.relu(self.c2(x))
        x = torch.relu(self.grouped(x))
        x = torch.relu(self.depthwise(x))
        x = self.point(x)
        x = torch.nn.functional.max_pool2d(x, 2)
        x = torch.flatten(x, 1)
        return self.fc2(torch.relu(self.fc1(x)))


def every_conv(seed: int = 0) -> EveryConv:
    torch.manual_seed(seed)
    m = EveryConv()
    with torch.no_grad():  # a BatchNorm with real statistics, so folding matters
        m.bn1.running_mean.uniform_(-0.5, 0.5)
        m.bn1.running_var.uniform_(0.5, 2.0)
        m.bn1.weight.uniform_(0.5, 1.5)
        m.bn1.bias.uniform_(-0.2, 0.2)
    return m.eval()


def perturb_tables(model, seed: int = 1) -> None:
    """Moves every side table away from its start, as training would, so that a test sees
    whether the tables (not just the codes) reach the packaged model."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in model.layers():
            for d in (layer.alpha, layer.beta, layer.bias):
                for p in d.values():
                    p.add_(0.05 * torch.randn(p.shape, generator=g))
            for p in layer.act.values():
                p.mul_(1.0 + 0.1 * float(torch.rand((), generator=g)))


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a − b| / max |b|."""
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))

"""A few once-QAT steps of the every-conv CNN on random data, on one process or under
torchrun (DistributedDataParallel, gloo); rank 0 saves the trained state to argv[1].

Two steps: the gradients of 2 processes differ from 1 process's only in reduction order
(about one ulp); over many steps such a difference can flip a weight's code rounding, and
Adam turns a gradient that is rounding noise into a full step of either sign, so longer runs
legitimately drift apart."""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist

import helpers
import strata_torch as st

STEPS, BATCH = 2, 16


def main(out: str) -> None:
    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if world > 1 else 0
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 16, 16, generator=g)
    teacher = helpers.every_conv()
    model = st.prepare(teacher, planes=(2, 4, 8))
    st.calibrate(model, x[:32])
    with torch.no_grad():
        t = teacher(x)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = torch.optim.Adam(st.param_groups(model, lr=1e-2, weight_lr=0.5), eps=1e-12)
    for step in range(STEPS):
        idx = torch.arange(step * BATCH, (step + 1) * BATCH) % 64
        idx = idx[rank::world]
        loss, _ = st.once_qat_loss(net(x[idx]), t[idx], temperature=2.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if rank == 0:
        torch.save(model.state_dict(), out)
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])

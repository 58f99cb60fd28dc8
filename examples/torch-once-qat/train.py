"""Once-QAT of a float ONNX classifier with strata_torch, on one process or under torchrun.

    # one process
    python train.py --out out/
    # two processes on this machine (gloo on CPU; nccl is chosen on GPUs)
    torchrun --nproc_per_node=2 train.py --out out/
    # then package what it wrote, exactly as trained
    strata compile out/net.onnx --qat-tables out/net.tables.npz -o out/net.strata

The recipe is Strata's `once-qat` pass (passes/src/once_qat/mod.rs), so the two can be
compared sample for sample: the first `--train-samples` training images minus the last
`--holdout` fraction train, that slice picks checkpoints; each step takes `--batch` samples
(the *global* batch: split evenly over the processes) and runs every plane count; the loss
is Σ_k λ_k·T²·KL(teacher ‖ student_k) with λ_k normalised by the starting held-out loss
(+ cross-entropy with `--labels`); Adam with a cosine schedule moves the weights in code
steps and the side tables in their own units. The first `1 − tables-only` of the steps are
joint; the snapshot kept is the best held-out one where no plane count is worse than at the
start; then, weights frozen, each plane count keeps the tables of its own best checkpoint.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python", "strata_torch"))
sys.path.insert(0, HERE)

import fmnist  # noqa: E402
import strata_torch as st  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=os.path.join(ROOT, "models", "fmnist_resnet8.onnx"))
    p.add_argument("--out", required=True, help="directory for net.onnx, net.tables.npz, report.json")
    p.add_argument("--train-samples", type=int, default=4000)
    p.add_argument("--holdout", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=64, help="global batch (all processes)")
    p.add_argument("--planes", default="2,3,4,6,8")
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--act-bits", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-lr", type=float, default=0.02)
    p.add_argument("--tables-only", type=float, default=0.3)
    p.add_argument("--evals", type=int, default=20)
    p.add_argument("--temperature", default="auto")
    p.add_argument("--labels", action="store_true", help="add cross-entropy with the training labels")
    p.add_argument("--ce-weight", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads per process (0: cores / processes)")
    return p.parse_args()


def main():
    args = parse_args()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    threads = args.threads or max(1, (os.cpu_count() or 1) // world)
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    if args.batch % world:
        sys.exit(f"--batch {args.batch} must be a multiple of the {world} processes")
    planes = sorted({int(k) for k in args.planes.split(",")})
    log = (lambda *a: print(*a, flush=True)) if rank == 0 else (lambda *a: None)

    x_all, y_all = fmnist.load("train")
    n = min(args.train_samples, len(x_all))
    x, y = torch.from_numpy(x_all[:n]), torch.from_numpy(y_all[:n])
    hold = int(math.floor(n * args.holdout))
    n_train = n - hold
    val = slice(n_train, n) if hold else slice(0, n)

    teacher = st.onnx_module(args.model).eval()
    with torch.no_grad():
        t_logits = torch.cat([teacher(x[i : i + 500]) for i in range(0, n, 500)])
    temperature = (
        st.auto_temperature(t_logits[:n_train]) if args.temperature == "auto" else float(args.temperature)
    )
    model = st.prepare(teacher, planes=planes, bits=args.bits, act_bits=args.act_bits)
    # Every process calibrates on the same samples, so they start identical.
    st.calibrate(model, x[:n_train][:512])

    @torch.no_grad()
    def held_out():
        model.eval()
        out = {}
        for k in planes:
            z = torch.cat([model(x[val][i : i + 500], planes=k) for i in range(0, hold or n, 500)])
            loss = float(st.kl_distillation(z, t_logits[val], temperature))
            agree = int((z.argmax(1) == t_logits[val].argmax(1)).sum())
            out[k] = (loss, agree)
        model.train()
        return out

    start = held_out()
    start_loss = {k: start[k][0] for k in planes}
    log(f"T = {temperature:.3f}; start held-out loss " + " ".join(f"k={k}:{v:.3e}" for k, v in start_loss.items()))

    ddp = torch.nn.parallel.DistributedDataParallel(model) if distributed else model
    opt = torch.optim.Adam(st.param_groups(model, args.lr, args.weight_lr), betas=(0.9, 0.999), eps=1e-12)
    peak = [g["lr"] for g in opt.param_groups]
    joint_steps = args.steps - round(args.steps * args.tables_only) if args.weight_lr > 0 else 0
    table_steps = args.steps - joint_steps
    eval_every = max(1, math.ceil(args.steps / args.evals))
    tables_of = lambda k: [p for _, l in model.layers() for d in (l.alpha, l.beta, l.bias, l.act) for p in [d[f"k{k}"]]]  # noqa: E731

    best = (0, copy.deepcopy(model.state_dict()), start_loss)
    best_k = {}
    gen = torch.Generator().manual_seed(args.seed)
    perm: list[int] = []

    def next_batch():
        idx = []
        while len(idx) < args.batch:
            if not perm:
                perm.extend(reversed(torch.randperm(n_train, generator=gen).tolist()))
            idx.append(perm.pop())
        return torch.tensor(idx)

    model.train()
    t_train = 0.0
    started = time.time()
    for step in range(args.steps):
        joint = step < joint_steps
        if step == joint_steps and table_steps:
            model.load_state_dict(best[1])
            opt = torch.optim.Adam(st.param_groups(model, args.lr, 0.0), betas=(0.9, 0.999), eps=1e-12)
            peak = [g["lr"] for g in opt.param_groups]
            best_k = {k: (best[0], [p.detach().clone() for p in tables_of(k)], best[2][k]) for k in planes}
        t0 = time.time()
        idx = next_batch()[rank::world]
        s, total = (step, joint_steps) if joint else (step - joint_steps, table_steps)
        for g, p in zip(opt.param_groups, peak):
            g["lr"] = p * 0.5 * (1 + math.cos(math.pi * s / max(total, 1)))
        out = ddp(x[idx])
        loss, parts = st.once_qat_loss(
            out,
            t_logits[idx],
            temperature=temperature,
            labels=y[idx] if args.labels else None,
            ce_weight=args.ce_weight,
            normalize=start_loss,
        )
        opt.zero_grad(set_to_none=False)
        loss.backward()
        if not joint:
            for _, l in model.layers():
                l.w.grad = None  # frozen in the tables-only phase
        opt.step()
        t_train += time.time() - t0
        done = step + 1
        if done % eval_every == 0 or done == joint_steps or done == args.steps:
            h = held_out()
            losses = {k: h[k][0] for k in planes}
            if joint:
                ok = all(losses[k] <= start_loss[k] for k in planes)
                score = lambda ls: sum(ls[k] / max(start_loss[k], 1e-12) for k in planes)  # noqa: E731
                if ok and score(losses) < score(best[2]):
                    best = (done, copy.deepcopy(model.state_dict()), losses)
            else:
                for k in planes:
                    if losses[k] < best_k[k][2]:
                        best_k[k] = (done, [p.detach().clone() for p in tables_of(k)], losses[k])
            log(f"step {done}/{args.steps} {'joint' if joint else 'tables'} " + " ".join(f"k={k}:{losses[k]:.3e}" for k in planes))

    model.load_state_dict(best[1])
    with torch.no_grad():
        for k, (_, saved, _) in best_k.items():
            for p, v in zip(tables_of(k), saved):
                p.copy_(v)
    final = held_out()
    wall = time.time() - started
    sample_passes = args.steps * args.batch * len(planes)
    report = {
        "processes": world,
        "threads_per_process": threads,
        "train_samples": n_train,
        "holdout_samples": hold,
        "steps": args.steps,
        "batch": args.batch,
        "planes": planes,
        "temperature": temperature,
        "weights_from_step": best[0],
        "tables_from_step": {k: v[0] for k, v in best_k.items()},
        "start_loss": start_loss,
        "final_loss": {k: final[k][0] for k in planes},
        "final_agree": {k: final[k][1] for k in planes},
        "train_seconds": t_train,
        "total_seconds": wall,
        "samples_k_per_second": sample_passes / t_train,
    }
    if rank == 0:
        os.makedirs(args.out, exist_ok=True)
        st.export(model, os.path.join(args.out, "net.onnx"), os.path.join(args.out, "net.tables.npz"), example_input=x[:1])
        torch.save(model.state_dict(), os.path.join(args.out, "state.pt"))
        with open(os.path.join(args.out, "report.json"), "w") as f:
            json.dump(report, f, indent=1)
        log(json.dumps(report))
    if distributed:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

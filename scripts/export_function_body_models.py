"""Four small networks (random weights) that use the ops Strata imports as their function
bodies, as a new user would bring them: a fast-neural-style TransformerNet, ESPCN, a
diffusion-style GroupNorm ResBlock and an embedding head. Both exporters (ts: opset 17,
dynamo: opset 18), free batch; writes NAME_EXP.onnx, .x.npy (8 inputs), .calib.npy (16).
Usage: ~/.cache/strata/torch-venv/bin/python scripts/export_function_body_models.py OUT_DIR"""
import sys, torch, torch.nn as nn, torch.nn.functional as F, numpy as np
torch.manual_seed(0)
out = sys.argv[1]

class ConvLayer(nn.Module):  # pytorch/examples fast_neural_style
    def __init__(s, i, o, k, st):
        super().__init__(); s.pad = nn.ReflectionPad2d(k // 2); s.conv = nn.Conv2d(i, o, k, st)
    def forward(s, x): return s.conv(s.pad(x))
class Res(nn.Module):
    def __init__(s, c):
        super().__init__(); s.c1 = ConvLayer(c, c, 3, 1); s.i1 = nn.InstanceNorm2d(c, affine=True)
        s.c2 = ConvLayer(c, c, 3, 1); s.i2 = nn.InstanceNorm2d(c, affine=True)
    def forward(s, x): return x + s.i2(s.c2(F.relu(s.i1(s.c1(x)))))
class Up(nn.Module):
    def __init__(s, i, o, k, up):
        super().__init__(); s.up = up; s.c = ConvLayer(i, o, k, 1)
    def forward(s, x): return s.c(F.interpolate(x, mode="nearest", scale_factor=s.up))
class StyleNet(nn.Module):  # TransformerNet, narrowed
    def __init__(s):
        super().__init__()
        s.c1 = ConvLayer(3, 8, 9, 1); s.n1 = nn.InstanceNorm2d(8, affine=True)
        s.c2 = ConvLayer(8, 16, 3, 2); s.n2 = nn.InstanceNorm2d(16, affine=True)
        s.r = nn.Sequential(Res(16), Res(16))
        s.u = Up(16, 8, 3, 2); s.n3 = nn.InstanceNorm2d(8, affine=True); s.o = ConvLayer(8, 3, 9, 1)
    def forward(s, x):
        y = F.relu(s.n1(s.c1(x))); y = F.relu(s.n2(s.c2(y))); y = s.r(y)
        return s.o(F.relu(s.n3(s.u(y))))
class ESPCN(nn.Module):  # PyTorch's super-resolution tutorial
    def __init__(s, r=3):
        super().__init__()
        s.c1 = nn.Conv2d(1, 32, 5, 1, 2); s.c2 = nn.Conv2d(32, 32, 3, 1, 1); s.c3 = nn.Conv2d(32, 16, 3, 1, 1)
        s.c4 = nn.Conv2d(16, r * r, 3, 1, 1); s.ps = nn.PixelShuffle(r)
    def forward(s, x):
        x = torch.tanh(s.c1(x)); x = torch.tanh(s.c2(x)); x = torch.tanh(s.c3(x)); return s.ps(s.c4(x))
class DiffBlock(nn.Module):  # a diffusion U-Net's ResBlock: GroupNorm + SiLU
    def __init__(s):
        super().__init__()
        s.inp = nn.Conv2d(3, 32, 3, 1, 1)
        s.g1 = nn.GroupNorm(8, 32); s.c1 = nn.Conv2d(32, 32, 3, 1, 1)
        s.g2 = nn.GroupNorm(8, 32); s.c2 = nn.Conv2d(32, 32, 3, 1, 1)
        s.down = nn.Conv2d(32, 64, 3, 2, 1); s.g3 = nn.GroupNorm(16, 64)
        s.up = nn.ConvTranspose2d(64, 32, 4, 2, 1); s.out = nn.Conv2d(32, 3, 3, 1, 1)
    def forward(s, x):
        h = s.inp(x); r = s.c2(F.silu(s.g2(s.c1(F.silu(s.g1(h)))))); h = h + r
        d = F.silu(s.g3(s.down(h)))
        return s.out(F.silu(s.up(d) + h))
class Embed(nn.Module):  # face-embedding style head: ELU/SELU/Softplus/Mish, F.normalize
    def __init__(s):
        super().__init__()
        s.c1 = nn.Conv2d(3, 16, 3, 2, 1); s.c2 = nn.Conv2d(16, 32, 3, 2, 1); s.c3 = nn.Conv2d(32, 64, 3, 2, 1)
        s.fc = nn.Linear(64 * 4 * 4, 32); s.sigma = nn.Linear(64 * 4 * 4, 32)
    def forward(s, x):
        x = F.elu(s.c1(x)); x = F.mish(s.c2(x)); x = F.selu(s.c3(x)); f = x.flatten(1)
        mu = F.normalize(s.fc(f), dim=1); sd = F.softplus(s.sigma(f)) + 1e-3
        return torch.cat([mu, sd], 1)

MODELS = {"style": (StyleNet, (3, 64, 64)), "espcn": (ESPCN, (1, 32, 32)),
          "diffblock": (DiffBlock, (3, 32, 32)), "embed": (Embed, (3, 32, 32))}
for name, (ctor, shape) in MODELS.items():
    m = ctor().eval()
    x = torch.randn(1, *shape)
    for exp in ["ts", "dynamo"]:
        path = f"{out}/{name}_{exp}.onnx"
        try:
            if exp == "ts":
                torch.onnx.export(m, x, path, input_names=["input"], output_names=["output"],
                                  dynamic_axes={"input": {0: "N"}, "output": {0: "N"}}, opset_version=17, dynamo=False)
            else:
                b = torch.export.Dim("N", min=1, max=1024)
                torch.onnx.export(m, (x,), dynamo=True, opset_version=18, input_names=["input"],
                                  output_names=["output"], dynamic_shapes=({0: b},)).save(path)
        except Exception as e:
            print(name, exp, "export failed", type(e).__name__, str(e)[:200]); continue
        g = torch.Generator().manual_seed(1)
        np.save(f"{out}/{name}_{exp}.x.npy", torch.randn(8, *shape, generator=g).numpy())
        np.save(f"{out}/{name}_{exp}.calib.npy", torch.randn(16, *shape, generator=g).numpy())
        import onnx
        print(name, exp, sorted({n.op_type for n in onnx.load(path).graph.node}))

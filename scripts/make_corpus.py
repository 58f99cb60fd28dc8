#!/usr/bin/env python3
"""Regenerates the real-model corpus in tests/fixtures/corpus/ (issue 12, item 5).

Dev-time only (the tests read the committed files, never PyTorch):

    ~/.cache/strata/torch-venv/bin/python scripts/make_corpus.py [--out DIR] [--only NAME,...]
    ~/.cache/strata/torch-venv/bin/python scripts/make_corpus.py --images ARCH N PATH

(`scripts/setup-torch.sh` makes that environment; `requirements-torch.txt` pins torch,
torchvision, onnxscript and onnxruntime.)

Why reduced models: the point of the corpus is the *graph shapes* real exporters write for
real architectures (residual adds, depthwise and grouped convs, squeeze-excitation gates,
channel shuffles, dense concatenations, inception branches, ceil-mode pools, SiLU/HardSwish,
NHWC transposes, upsample + concat + split detector heads), not ImageNet accuracy. So every
architecture is torchvision's own classes built with fewer channels (and fewer blocks where
the API allows), on 3x32x32 inputs, so that each .onnx stays well under 1 MB and the test
compiles all of them in seconds. Weights start from torchvision's seeded initialisation; BatchNorm
statistics are then averaged over a few seeded batches in train mode, so they are
realistic (non-zero means, non-unit variances), and are then exported in eval mode.
The classifiers are first trained for 120 seeded Adam steps on a synthetic 10-class task
(a fixed smooth pattern per class under noise), so their logits depend on the input the way
a trained network's do; the inputs and calibration sets are samples of that task.

Each architecture is exported twice when possible:
  NAME.ts.onnx      TorchScript exporter, opset 17 (dynamo=False), free batch axis
  NAME.dynamo.onnx  dynamo exporter, opset 18 (dynamo=True), free batch axis
both with the exporter's default constant folding / optimisation (the dynamo files without
the per-node Python stack traces, which hold the exporting machine's paths). An exporter that fails is
reported and skipped (its model is then missing from the corpus and the test's list).

Per architecture (shared by both exports, to keep the corpus small):
  NAME.input.npy   4 seeded inputs, float32
  NAME.calib.npy   32 seeded calibration inputs, float32
and per export:
  NAME.EXPORTER.ort.npy (or .ort0.npy, .ort1.npy, ... for several outputs): onnxruntime's
  outputs on NAME.input.npy.
"""

import argparse
import importlib
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models import densenet, efficientnet, mnasnet, mobilenetv2, mobilenetv3
from torchvision.models import regnet, resnet, shufflenetv2, squeezenet

# `torchvision.models.googlenet` is also the builder function; the module is wanted here.
gnet = importlib.import_module("torchvision.models.googlenet")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_INPUT = 4
N_CALIB = 32
MAX_ONNX_BYTES = 1 << 20
NUM_CLASSES = 10


# ---------------------------------------------------------------------------------------
# Architectures (torchvision's classes, fewer channels)
# ---------------------------------------------------------------------------------------


def resnet18():
    """ResNet-18's layout (BasicBlock, [2, 2, 2, 2]) at 1/8 to 1/16 of the width: torchvision hardcodes
    64..512 channels, so the stem and the four stages are rebuilt with its own _make_layer."""
    m = resnet.ResNet(resnet.BasicBlock, [2, 2, 2, 2], num_classes=NUM_CLASSES)
    w = [8, 16, 24, 32]
    m.inplanes = w[0]
    m.conv1 = nn.Conv2d(3, w[0], kernel_size=7, stride=2, padding=3, bias=False)
    m.bn1 = nn.BatchNorm2d(w[0])
    m.layer1 = m._make_layer(resnet.BasicBlock, w[0], 2)
    m.layer2 = m._make_layer(resnet.BasicBlock, w[1], 2, stride=2)
    m.layer3 = m._make_layer(resnet.BasicBlock, w[2], 2, stride=2)
    m.layer4 = m._make_layer(resnet.BasicBlock, w[3], 2, stride=2)
    m.fc = nn.Linear(w[3], NUM_CLASSES)
    return m


def mobilenet_v2():
    """width_mult=0.15; the 1280-channel last conv is cut to 128 (torchvision keeps it at
    1280 for every width_mult < 1, which alone would be 400 KB)."""
    m = mobilenetv2.MobileNetV2(num_classes=NUM_CLASSES, width_mult=0.15)
    last_in = m.features[-1][0].in_channels
    m.features[-1] = torchvision.ops.Conv2dNormActivation(
        last_in, 128, kernel_size=1, norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU6)
    m.classifier[1] = nn.Linear(128, NUM_CLASSES)
    return m


def mobilenet_v3_small():
    return mobilenetv3.mobilenet_v3_small(num_classes=NUM_CLASSES, width_mult=0.15)


def efficientnet_b0():
    """EfficientNet-B0's MBConv stages (SiLU, squeeze-excitation) at width 0.15, depth 0.5,
    with a 128-channel head instead of 1280."""
    setting, _ = efficientnet._efficientnet_conf("efficientnet_b0", width_mult=0.15, depth_mult=0.5)
    return efficientnet.EfficientNet(setting, dropout=0.2, num_classes=NUM_CLASSES, last_channel=128)


class SmallSqueezeNet(nn.Module):
    """SqueezeNet 1.1's layout (ceil-mode max pools, eight Fire modules, conv classifier,
    adaptive average pool) with torchvision's Fire at 1/4 of the channels."""

    def __init__(self):
        super().__init__()
        Fire = squeezenet.Fire
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=3, stride=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(16, 4, 16, 16), Fire(32, 4, 16, 16),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(32, 8, 32, 32), Fire(64, 8, 32, 32),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(64, 12, 48, 48), Fire(96, 12, 48, 48), Fire(96, 16, 64, 64), Fire(128, 16, 64, 64),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(p=0.5), nn.Conv2d(128, NUM_CLASSES, kernel_size=1), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d((1, 1)))
        # torchvision's SqueezeNet initialisation: Kaiming, and a small final conv (with
        # PyTorch's default init the final ReLU starts dead for most classes).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is self.classifier[1]:
                    nn.init.normal_(m.weight, mean=0.0, std=0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


def squeezenet1_1():
    return SmallSqueezeNet()


def shufflenet_v2_x0_5():
    return shufflenetv2.ShuffleNetV2([4, 8, 4], [8, 16, 32, 64, 256], num_classes=NUM_CLASSES)


def mnasnet0_5():
    """alpha=0.1 (torchvision rounds every stage to a multiple of 8 channels); the fixed
    1280-channel head is cut to 128 like MobileNetV2's."""
    m = mnasnet.MNASNet(alpha=0.1, num_classes=NUM_CLASSES)
    last_in = m.layers[14].in_channels
    m.layers[14] = nn.Conv2d(last_in, 128, 1, padding=0, stride=1, bias=False)
    m.layers[15] = nn.BatchNorm2d(128, momentum=1 - 0.9997)
    m.classifier[1] = nn.Linear(128, NUM_CLASSES)
    return m


def regnet_x_400mf():
    """RegNetX-400MF's rule (w_0=24, w_a=24.48, w_m=2.54, group width 16, depth 22) at a third
    of the start width, a quarter of the slope and 9 blocks instead of 22: grouped 3x3 convs in X blocks with 1x1 projections."""
    params = regnet.BlockParams.from_init_params(depth=9, w_0=8, w_a=6.0, w_m=2.54, group_width=8)
    return regnet.RegNet(params, num_classes=NUM_CLASSES, stem_width=8)


def densenet121():
    """DenseNet-121's dense blocks (BN-ReLU-Conv pre-activation, concatenation, transitions
    with average pools) with growth rate 8 and (2, 4, 4, 2) layers instead of (6, 12, 24, 16)."""
    return densenet.DenseNet(growth_rate=8, block_config=(2, 4, 4, 2), num_init_features=16,
                             bn_size=2, num_classes=NUM_CLASSES)


class SmallGoogLeNet(nn.Module):
    """GoogLeNet's layout (stem, ceil-mode pools, nine Inception modules of torchvision's
    class, average pool, dropout, fc) at 1/8 of the channels, without the auxiliary heads."""

    def __init__(self):
        super().__init__()
        C, I = gnet.BasicConv2d, gnet.Inception

        def inc(cin, a, b1, b2, c1, c2, d):
            return I(cin, a // 8, b1 // 8, b2 // 8, c1 // 8, c2 // 8, d // 8)

        self.conv1 = C(3, 8, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = C(8, 8, kernel_size=1)
        self.conv3 = C(8, 24, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = inc(24, 64, 96, 128, 16, 32, 32)
        self.inception3b = inc(32, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = inc(60, 192, 96, 208, 16, 48, 64)
        self.inception4b = inc(64, 160, 112, 224, 24, 64, 64)
        self.inception4c = inc(64, 128, 128, 256, 24, 64, 64)
        self.inception4d = inc(64, 112, 144, 288, 32, 64, 64)
        self.inception4e = inc(66, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = inc(104, 256, 160, 320, 32, 128, 128)
        self.inception5b = inc(104, 384, 192, 384, 48, 128, 128)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(128, NUM_CLASSES)

    def forward(self, x):
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        for m in (self.inception4a, self.inception4b, self.inception4c, self.inception4d, self.inception4e):
            x = m(x)
        x = self.maxpool4(x)
        x = self.inception5b(self.inception5a(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(self.dropout(x))


def googlenet():
    return SmallGoogLeNet()


class TfNhwc(nn.Module):
    """A Keras-style classifier converted to ONNX: the input is NHWC, a Transpose makes it
    NCHW for the convs, another brings it back to NHWC, global pooling is a mean over axes
    (1, 2) and the dense layer is a MatMul + Add, as tf2onnx writes them."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)
        self.b2 = nn.BatchNorm2d(16)
        self.pw = nn.Conv2d(16, 32, 1, bias=False)
        self.b3 = nn.BatchNorm2d(32)
        self.c4 = nn.Conv2d(32, 48, 3, stride=2, padding=1)
        self.w = nn.Parameter(torch.randn(48, NUM_CLASSES) * 0.1)
        self.b = nn.Parameter(torch.randn(NUM_CLASSES) * 0.1)

    def forward(self, x):
        x = x.permute(0, 3, 1, 2)
        x = F.relu6(self.b1(self.c1(x)))
        x = F.relu6(self.b2(self.dw(x)))
        x = F.relu6(self.b3(self.pw(x)))
        x = F.relu(self.c4(x))
        x = x.permute(0, 2, 3, 1)
        x = x.mean(dim=(1, 2))
        return torch.matmul(x, self.w) + self.b


def tf_nhwc():
    return TfNhwc()


class YoloHead(nn.Module):
    """A YOLOv5-style detector in miniature: SiLU conv backbone, nearest 2x upsample (Resize),
    Concat with the stride-8 map, and a decode head per scale that splits each anchor's
    channels (Split) into box centre, box size and objectness/classes, applies Sigmoid and
    re-concatenates: two outputs, [N, 3, 9, 8, 8] and [N, 3, 9, 4, 4]."""

    def __init__(self, anchors=3, classes=4):
        super().__init__()
        self.na, self.no = anchors, 5 + classes

        def cbs(ci, co, s):
            return nn.Sequential(nn.Conv2d(ci, co, 3, s, 1, bias=False), nn.BatchNorm2d(co), nn.SiLU())

        self.stem = cbs(3, 8, 2)     # 16x16
        self.p3 = cbs(8, 16, 2)      # 8x8
        self.p4 = cbs(16, 32, 2)     # 4x4
        self.lat = cbs(32, 16, 1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.fuse = cbs(32, 16, 1)
        self.head3 = nn.Conv2d(16, self.na * self.no, 1)
        self.head4 = nn.Conv2d(32, self.na * self.no, 1)

    def decode(self, p):
        n, _, h, w = p.shape
        p = p.view(n, self.na, self.no, h, w)
        xy, wh, conf = p.split((2, 2, self.no - 4), dim=2)
        xy = torch.sigmoid(xy) * 2 - 0.5
        s = torch.sigmoid(wh) * 2
        wh = s * s
        return torch.cat((xy, wh, torch.sigmoid(conf)), dim=2)

    def forward(self, x):
        p3 = self.p3(self.stem(x))
        p4 = self.p4(p3)
        f3 = self.fuse(torch.cat((self.up(self.lat(p4)), p3), dim=1))
        return self.decode(self.head3(f3)), self.decode(self.head4(p4))


def yolo_head():
    return YoloHead()


class KwsCrnn(nn.Module):
    """A keyword-spotting CRNN over a 16-band x 20-frame spectrogram: a strided Conv2d with
    BatchNorm, the map read as 64 features per frame, a Conv1d over the frames, then a
    bidirectional GRU and an LSTM (PyTorch exports both with zero initial states computed
    from the batch size: Shape -> Gather -> Concat -> ConstantOfShape, or Expand in the dynamo
    exporter) and a Linear on the last step."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, 2, 1, bias=False)
        self.b1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv1d(64, 24, 3, padding=1)
        self.gru = nn.GRU(24, 16, batch_first=True, bidirectional=True)
        self.lstm = nn.LSTM(32, 12, batch_first=True)
        self.fc = nn.Linear(12, NUM_CLASSES)

    def forward(self, x):
        x = F.relu(self.b1(self.c1(x)))          # [N, 8, 8, 10]
        x = x.flatten(1, 2)                      # [N, 64, 10]: features x frames
        x = F.relu(self.c2(x)).transpose(1, 2)   # [N, 10, 24]: frames x features
        x, _ = self.gru(x)
        x, _ = self.lstm(x)
        return self.fc(x[:, -1])


def kws_crnn():
    return KwsCrnn()


class NormActZoo(nn.Module):
    """Ops that Strata imports as their ONNX function bodies, as a style-transfer or
    super-resolution network and an embedding head bring them: InstanceNorm2d, GroupNorm
    (the TorchScript exporter writes InstanceNormalization between Reshapes), ELU, SELU,
    CELU, Softplus, Mish, Softsign, PixelShuffle (DepthToSpace) and PixelUnshuffle
    (SpaceToDepth), F.normalize (ReduceL2), logsumexp and amin pooling, and a repeat
    (Tile)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, 1, 1)
        self.in1 = nn.InstanceNorm2d(16, affine=True)
        self.c2 = nn.Conv2d(16, 32, 3, 2, 1)
        self.gn = nn.GroupNorm(4, 32)
        self.c3 = nn.Conv2d(32, 32, 3, 1, 1)
        self.c4 = nn.Conv2d(8, 16, 3, 1, 1)
        self.c5 = nn.Conv2d(64, 24, 1)
        self.fc = nn.Linear(24 * 4, NUM_CLASSES)

    def forward(self, x):
        x = F.elu(self.in1(self.c1(x)))                     # [N, 16, 32, 32]
        x = F.selu(self.gn(self.c2(x)))                     # [N, 32, 16, 16]
        x = F.pixel_shuffle(F.celu(self.c3(x), 0.5), 2)     # [N, 8, 32, 32]
        x = F.softplus(self.c4(x)) - F.mish(self.c4(x))     # [N, 16, 32, 32]
        x = F.pixel_unshuffle(F.max_pool2d(x, 2), 2)        # [N, 64, 8, 8]
        x = F.softsign(self.c5(x))                          # [N, 24, 8, 8]
        emb = F.normalize(x.mean((2, 3)), dim=1)            # ReduceL2
        lse = torch.logsumexp(x.flatten(2) * 4.0, 2)
        low = x.amin((2, 3))
        return self.fc(torch.cat([emb.repeat(1, 2), lse, low], 1))


def norm_act_zoo():
    return NormActZoo()


class GptBlock(nn.Module):
    """A transformer block (nanoGPT's, small) over a 1×16×32 input read as 16 tokens of 32
    features: LayerNorm, causal self-attention with the mask a registered buffer applied by
    masked_fill (a Where on a constant mask), tanh GELU, then mean over the tokens and a head.
    Its Linear layers act on [N, T, C], which `matmul-to-conv` makes bit-plane layers."""

    def __init__(self, c=32, heads=4, t=16):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.qkv, self.proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.fc, self.fc2 = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)
        self.head = nn.Linear(c, NUM_CLASSES)
        self.register_buffer("causal", torch.tril(torch.ones(t, t)).view(1, 1, t, t))

    def forward(self, x):
        x = x[:, 0]                                          # [N, T, C]
        n, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        split = lambda z: z.view(n, t, self.heads, c // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(q), split(k), split(v)
        att = (q @ k.transpose(-2, -1)) * (1.0 / (c // self.heads) ** 0.5)
        att = F.softmax(att.masked_fill(self.causal[:, :, :t, :t] == 0, float("-inf")), dim=-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(n, t, c))
        x = x + self.fc2(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))
        return self.head(x.mean(1))


def gpt_block():
    return GptBlock()


# name -> (constructor, input shape of one sample)
ARCHS = {
    "resnet18": (resnet18, (3, 32, 32)),
    "mobilenet_v2": (mobilenet_v2, (3, 32, 32)),
    "mobilenet_v3_small": (mobilenet_v3_small, (3, 32, 32)),
    "efficientnet_b0": (efficientnet_b0, (3, 32, 32)),
    "squeezenet1_1": (squeezenet1_1, (3, 32, 32)),
    "shufflenet_v2_x0_5": (shufflenet_v2_x0_5, (3, 32, 32)),
    "mnasnet0_5": (mnasnet0_5, (3, 32, 32)),
    "regnet_x_400mf": (regnet_x_400mf, (3, 32, 32)),
    "densenet121": (densenet121, (3, 32, 32)),
    "googlenet": (googlenet, (3, 32, 32)),
    "tf_nhwc": (tf_nhwc, (32, 32, 3)),
    "yolo_head": (yolo_head, (3, 32, 32)),
    "kws_crnn": (kws_crnn, (1, 16, 20)),
    "norm_act_zoo": (norm_act_zoo, (3, 32, 32)),
    "gpt_block": (gpt_block, (1, 16, 32)),
}


# ---------------------------------------------------------------------------------------
# Data, BatchNorm statistics, export, reference outputs
# ---------------------------------------------------------------------------------------


def images(n, shape, seed, labels=None):
    """Seeded image-like inputs: smooth random fields (a 4x4 grid upsampled bilinearly) plus
    pixel noise and per-channel offsets, closer to normalised photos than white noise. With
    `labels`, each sample also carries its class's fixed pattern (see `templates`)."""
    g = torch.Generator().manual_seed(seed)
    nhwc = shape[-1] == 3
    c, h, w = (shape[2], shape[0], shape[1]) if nhwc else shape
    coarse = torch.randn(n, c, 4, 4, generator=g)
    x = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    x = x + 0.3 * torch.randn(n, c, h, w, generator=g) + 0.5 * torch.randn(n, c, 1, 1, generator=g)
    if labels is not None:
        x = 0.6 * x + templates(c, h, w)[labels]
    if nhwc:
        x = x.permute(0, 2, 3, 1)
    return x.contiguous().float()


def templates(c, h, w):
    """One fixed smooth pattern per class (an 8x8 grid upsampled): the synthetic task."""
    g = torch.Generator().manual_seed(4242)
    coarse = 1.5 * torch.randn(NUM_CLASSES, c, 8, 8, generator=g)
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)


def task(n, shape, seed):
    """`n` samples of the synthetic classification task and their labels."""
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=torch.Generator().manual_seed(seed))
    return images(n, shape, seed, labels), labels


def train(model, shape, seed, steps=120, batch=32):
    """A short seeded training on the synthetic task. With untrained weights and inputs that
    are all alike, a classifier's global pooling averages every sample to nearly the same
    features and the logits hardly depend on the input, so a quantization error bound on them
    would measure almost nothing; a few Adam steps make the features discriminative and the
    weights shaped like a trained network's (returns the final training-batch accuracy)."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    acc = 0.0
    for step in range(steps):
        x, y = task(batch, shape, seed * 100_000 + step)
        loss = F.cross_entropy(logits := model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        acc = float((logits.argmax(1) == y).float().mean())
    return acc


def settle_batchnorm(model, shape, seed, labelled):
    """Every BatchNorm's running mean and variance recomputed as the plain average over 8
    seeded batches in train mode (momentum None), so they are the statistics of the final
    weights' activations whatever momentum the architecture sets (MNASNet's 0.0003 would
    leave them at their initial 0 and 1), then eval mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for i in range(8):
            seed_i = seed * 1000 + 500 + i
            model(task(32, shape, seed_i)[0] if labelled else images(32, shape, seed_i))
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()


def export_ts(model, x, path, n_out):
    names = [f"output_{i}" for i in range(n_out)]
    torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17, input_names=["input"],
                      output_names=names, dynamic_axes={n: {0: "N"} for n in ["input"] + names})


def export_dynamo(model, x, path, n_out):
    batch = torch.export.Dim("N", min=1, max=1024)
    prog = torch.onnx.export(model, (x,), dynamo=True, opset_version=18, input_names=["input"],
                             output_names=[f"output_{i}" for i in range(n_out)],
                             dynamic_shapes=({0: batch},), verbose=False)
    prog.save(path)
    # The exporter records each node's Python stack trace: absolute paths of the machine
    # that made the file (and ~40 % of its bytes). The other metadata (namespaces, class
    # hierarchy, FX node) stays, as users' files have it.
    m = onnx.load(path)
    for node in m.graph.node:
        keep = [p for p in node.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
        del node.metadata_props[:]
        node.metadata_props.extend(keep)
    onnx.save(m, path)


def ort_outputs(path, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return [np.asarray(o, dtype=np.float32) for o in sess.run(None, {sess.get_inputs()[0].name: x})]


def make(name, out_dir, exporters):
    ctor, shape = ARCHS[name]
    seed = sum(map(ord, name))
    torch.manual_seed(seed)
    model = ctor()
    # The detector has no classification task: its random weights (with settled BatchNorm)
    # already give outputs that vary over positions and samples.
    labelled = name != "yolo_head"
    acc = train(model, shape, seed) if labelled else None
    settle_batchnorm(model, shape, seed, labelled)
    if labelled:
        x, _ = task(N_INPUT, shape, seed)
        calib, _ = task(N_CALIB, shape, seed + 1)
        with torch.no_grad():
            val_x, val_y = task(256, shape, seed + 2)
            val = float((model(val_x).argmax(1) == val_y).float().mean())
        print(f"{name}: synthetic task, last training batch {acc:.2f}, held-out {val:.2f} top-1")
    else:
        x, calib = images(N_INPUT, shape, seed), images(N_CALIB, shape, seed + 1)
    np.save(os.path.join(out_dir, f"{name}.input.npy"), x.numpy())
    np.save(os.path.join(out_dir, f"{name}.calib.npy"), calib.numpy())
    with torch.no_grad():
        ref = model(x)
    ref = ref if isinstance(ref, tuple) else (ref,)
    params = sum(p.numel() for p in model.parameters())
    rows = []
    for exp, fn in exporters:
        path = os.path.join(out_dir, f"{name}.{exp}.onnx")
        try:
            fn(model, x, path, len(ref))
            onnx.checker.check_model(onnx.load(path))
            got = ort_outputs(path, x.numpy())
        except Exception as e:  # an exporter that cannot export this model is reported
            msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            print(f"  {name}.{exp}: export FAILED: {type(e).__name__}: {msg}", file=sys.stderr)
            for f in [path]:
                if os.path.exists(f):
                    os.remove(f)
            rows.append((exp, None))
            continue
        size = os.path.getsize(path)
        assert size <= MAX_ONNX_BYTES, f"{path}: {size} bytes > 1 MB"
        assert len(got) == len(ref), f"{path}: {len(got)} outputs, torch gave {len(ref)}"
        err = max(float(np.abs(g - r.numpy()).max()) for g, r in zip(got, ref))
        if len(got) == 1:
            np.save(os.path.join(out_dir, f"{name}.{exp}.ort.npy"), got[0])
        else:
            for i, g in enumerate(got):
                np.save(os.path.join(out_dir, f"{name}.{exp}.ort{i}.npy"), g)
        ops = sorted({n.op_type for n in onnx.load(path).graph.node})
        rows.append((exp, (size, err, ops)))
    print(f"{name}: {params} parameters")
    for exp, r in rows:
        if r:
            size, err, ops = r
            print(f"  {exp}: {size / 1024:.0f} KiB, |ORT - torch| max {err:.2e}, ops {' '.join(ops)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "corpus"))
    ap.add_argument("--only", help="comma-separated architecture names (default: all)")
    ap.add_argument("--exporters", default="ts,dynamo", help="ts, dynamo or both (default)")
    ap.add_argument("--images", nargs=3, metavar=("ARCH", "N", "PATH"),
                    help="only write N seeded inputs of ARCH's shape to PATH (.npy), e.g. a "
                         "larger calibration set for timing `strata compile`")
    args = ap.parse_args()
    if args.images:
        arch, n, path = args.images
        if arch not in ARCHS:
            ap.error(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
        np.save(path, images(int(n), ARCHS[arch][1], 7_000 + int(n)).numpy())
        return
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    known = {"ts": export_ts, "dynamo": export_dynamo}
    exporters = [(e, known[e]) for e in args.exporters.split(",")]
    names = args.only.split(",") if args.only else list(ARCHS)
    for n in names:
        if n not in ARCHS:
            ap.error(f"unknown architecture {n!r}; known: {', '.join(ARCHS)}")
    for n in names:
        make(n, args.out, exporters)
    total = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"{args.out}: {total / 1e6:.2f} MB in all")


if __name__ == "__main__":
    main()

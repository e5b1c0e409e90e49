"""The Once-for-All way to get a deployable subnet, timed: extract the active subnet from the PyTorch
supernet, recalibrate BN on the calibration images (batches of 200, OFA's set_running_statistics),
export ONNX with torch.onnx.export. Used by bench/ofa-baseline.ts, which times nestswap's
materializer on the same configs in the same run.

    /usr/bin/python3 models/ofa_baseline.py --package models/fmnist-ofa/package --configs cfgs.json
"""
import argparse
import copy
import io
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from supernet import Supernet  # noqa: E402


class Active(torch.nn.Module):
    """A standalone module for one subnet (the supernet's slicing is traced away by the export)."""

    def __init__(self, net, cfg, stats):
        super().__init__()
        self.net, self.cfg, self.stats = net, cfg, stats

    def forward(self, x):
        return self.net.forward_with_stats(x, self.cfg, self.stats)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--package", required=True)
    ap.add_argument("--configs", required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    manifest = json.load(open(os.path.join(args.package, "manifest.json")))
    arch = manifest["arch"]
    index = json.load(open(os.path.join(args.package, "weights.json")))["tensors"]
    blob = np.fromfile(os.path.join(args.package, "weights.bin"), dtype="<f4")
    net = Supernet(arch)
    state = net.state_dict()
    for k, t in index.items():
        state[k] = torch.from_numpy(blob[t["offset"] // 4 : (t["offset"] + t["length"]) // 4].reshape(t["shape"]).copy())
    net.load_state_dict(state, strict=False)
    net.eval()
    c = manifest["calibration"]
    calib = np.fromfile(os.path.join(args.package, c["file"]), dtype=np.uint8).reshape(c["count"], *c["shape"])
    x_calib = torch.from_numpy(calib).float() * c["scale"]
    x0 = torch.zeros(1, *c["shape"])
    out = []
    for cfg in json.load(open(args.configs)):
        t0 = time.perf_counter()
        sub = copy.deepcopy(net)  # OFA's get_active_subnet copies the (sliced) weights into new modules
        t1 = time.perf_counter()
        stats = sub.recalibrate(x_calib, cfg, batch=c["batch"])
        t2 = time.perf_counter()
        buf = io.BytesIO()
        with torch.no_grad():
            torch.onnx.export(Active(sub, cfg, stats), x0, buf, opset_version=17)
        t3 = time.perf_counter()
        out.append({"extractMs": (t1 - t0) * 1e3, "calibrateMs": (t2 - t1) * 1e3, "exportMs": (t3 - t2) * 1e3,
                    "totalMs": (t3 - t0) * 1e3, "onnxBytes": len(buf.getvalue())})
    print(json.dumps({"torch": torch.__version__, "threads": args.threads, "results": out}))


if __name__ == "__main__":
    main()

"""Train an accuracy predictor (MLP over OFA's one-hot arch encoding) on an accuracy table.

    /usr/bin/python3 models/train_predictor.py --arch models/fmnist-ofa/arch.json \
        --table .cache/accuracy-table.json --out .cache/predictor-weights.json

Rows are split 80/20 by a seeded permutation (held-out rows are never trained on). The model size
is chosen by 4-fold cross-validation on the training rows only: the smallest of linear (hidden 0),
64, 128 and 256 hidden units whose CV RMSE is within 2% of the best (the search calls the predictor
thousands of times, so a smaller model that predicts as well is worth having). The weights (and the
split) are written as JSON; `models/predictor-onnx.ts` turns them into the ONNX model
nestswap loads, and evaluates RMSE and Kendall tau on the held-out rows with that ONNX model.
"""
import argparse
import json

import numpy as np
import torch


def encode(arch, cfg):
    s = arch["space"]
    ks, ex, res = sorted(s["ks_list"]), sorted(s["expand_list"]), sorted(s["image_size_list"])
    md = max(s["depth_list"])
    n = len(arch["stages"]) * md
    f = np.zeros(len(res) + n * (len(ks) + len(ex)), dtype=np.float32)
    f[res.index(cfg["image_size"])] = 1
    for i in range(n):
        if i % md < cfg["d"][i // md]:
            f[len(res) + i * len(ks) + ks.index(cfg["ks"][i])] = 1
            f[len(res) + n * len(ks) + i * len(ex) + ex.index(cfg["e"][i])] = 1
    return f


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--hidden", type=int, default=-1, help="hidden width (0: linear); -1: choose by cross-validation")
    ap.add_argument("--epochs", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--holdout", type=float, default=0.2)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    arch = json.load(open(args.arch))
    rows = json.load(open(args.table))["rows"]
    x = torch.tensor(np.stack([encode(arch, r["config"]) for r in rows]))
    y = torch.tensor([r["accuracy"] for r in rows], dtype=torch.float32).view(-1, 1)
    perm = np.random.RandomState(args.seed).permutation(len(rows))
    n_hold = int(len(rows) * args.holdout)
    hold, train = perm[:n_hold], perm[n_hold:]
    mu, sd = y[train].mean(), y[train].std()
    def fit(h, xt, yt):
        torch.manual_seed(args.seed)
        if h == 0:
            net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 1))
        else:
            net = torch.nn.Sequential(
                torch.nn.Linear(x.shape[1], h), torch.nn.ReLU(),
                torch.nn.Linear(h, h), torch.nn.ReLU(),
                torch.nn.Linear(h, 1),
            )
        opt = torch.optim.Adam(net.parameters(), lr=1e-3 if h else 1e-2, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
        for _ in range(args.epochs):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(net(xt), yt)
            loss.backward()
            opt.step()
            sched.step()
        return net

    ys = (y - mu) / sd
    cv = {}
    if args.hidden < 0:
        folds = np.array_split(train, 4)
        for h in (0, 64, 128, 256):
            err = []
            for k in range(4):
                fit_idx = np.concatenate([f for j, f in enumerate(folds) if j != k])
                net = fit(h, x[fit_idx], ys[fit_idx])
                with torch.no_grad():
                    err.append(float(((net(x[folds[k]]) - ys[folds[k]]) ** 2).mean()))
            cv[h] = float(np.sqrt(np.mean(err)) * sd * 100)
            print("cv hidden %d rmse %.3f points" % (h, cv[h]), flush=True)
        best = min(cv.values())
        hidden = min(h for h, e in cv.items() if e <= best * 1.02)
    else:
        hidden = args.hidden
    net = fit(hidden, x[train], ys[train])
    with torch.no_grad():
        pred = net(x[hold]) * sd + mu
        rmse = float(((pred - y[hold]) ** 2).mean().sqrt())
    layers = [m for m in net if isinstance(m, torch.nn.Linear)]
    # Fold the target standardisation into the last layer: output is accuracy in 0..1.
    w_last = layers[-1].weight.detach() * sd
    b_last = layers[-1].bias.detach() * sd + mu
    out = {
        "format": "nestswap.mlp/1",
        "n_dim": int(x.shape[1]),
        "layers": [
            {"weight": l.weight.detach().tolist(), "bias": l.bias.detach().tolist()} for l in layers[:-1]
        ] + [{"weight": w_last.tolist(), "bias": b_last.tolist()}],
        "activation": "relu",
        "holdout_ids": [rows[i]["id"] for i in hold],
        "train_rows": len(train),
        "pytorch_holdout_rmse": rmse,
        "hidden": hidden,
        "cv_rmse_points": cv,
    }
    json.dump(out, open(args.out, "w"))
    print(json.dumps({"train": len(train), "holdout": len(hold), "hidden": hidden, "rmse_points": rmse * 100}))


if __name__ == "__main__":
    main()

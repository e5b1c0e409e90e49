"""Train an accuracy predictor over OFA's one-hot arch encoding on an accuracy table.

    /usr/bin/python3 models/train_predictor.py --arch models/fmnist-ofa/arch.json \
        --table .cache/accuracy-table.json --out .cache/predictor-weights.json

Rows are split 80/20 by a seeded permutation (held-out rows are never trained on). The model is
chosen by 4-fold cross-validation on the training rows only, among
  - linear,
  - quadratic: kernel ridge regression with the kernel (x.z + p)^2, i.e. a linear model plus every
    pairwise interaction of two one-hot slots (this block's kernel with that block's width, ...),
    fitted in closed form; p and the ridge are chosen by an inner grid on the same folds. Written
    in primal form, f(x) = x'Wx + w.x + b (W = X' diag(a) X, w = 2p X'a, b = p^2 sum(a) + mean):
    a 99x99 matrix for fmnist-ofa, cheaper to evaluate than an MLP,
  - MLPs with two hidden layers of 64, 128 or 256 units (Adam, full batch),
and the first in that order (cheapest to evaluate: the search calls the predictor thousands of times)
whose CV RMSE is within 2% of the best wins. The weights (and the split) are written as JSON;
`models/predictor-onnx.ts` turns them into the ONNX model nestswap loads, and evaluates RMSE and
Kendall tau on the held-out rows with that ONNX model.
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
    ap.add_argument("--model", default="cv",
                    help="linear, quadratic, mlp64, mlp128, mlp256, or cv (choose by cross-validation among them)")
    ap.add_argument("--epochs", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--holdout", type=float, default=0.2)
    args = ap.parse_args()
    torch.set_num_threads(1)  # small models: more threads only contend with whatever else runs
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
    xd, ysd = x.double().numpy(), ys.double().numpy()[:, 0]

    def quad_fit(idx, p, lam):
        """Kernel ridge with (x.z + p)^2 on rows idx; returns (W, w, b) of the primal quadratic form."""
        xi = xd[idx]
        k = (xi @ xi.T + p) ** 2
        a = np.linalg.solve(k + lam * np.eye(len(idx)), ysd[idx])
        return (xi.T * a) @ xi, 2 * p * (xi.T @ a), p * p * a.sum()

    def quad_eval(m, xe):
        W, w, b = m
        return np.einsum("ij,jk,ik->i", xe, W, xe) + xe @ w + b

    folds = np.array_split(train, 4)
    # (rows fitted, rows scored) for each of the 4 folds
    cv_splits = [(np.concatenate([f for j, f in enumerate(folds) if j != k]), folds[k]) for k in range(4)]
    quad_grid = [(p, lam) for p in (1.0, 4.0, 16.0) for lam in (10.0, 30.0, 100.0, 300.0)]

    def quad_cv():
        best = None
        for p, lam in quad_grid:
            err = [float(np.mean((quad_eval(quad_fit(fi, p, lam), xd[te]) - ysd[te]) ** 2)) for fi, te in cv_splits]
            e = float(np.sqrt(np.mean(err)))
            if best is None or e < best[0]:
                best = (e, p, lam)
        return best

    def mlp_cv(h):
        err = []
        for fi, te in cv_splits:
            net = fit(h, x[fi], ys[fi])
            with torch.no_grad():
                err.append(float(((net(x[te]) - ys[te]) ** 2).mean()))
        return float(np.sqrt(np.mean(err)))

    order = ["linear", "quadratic", "mlp64", "mlp128", "mlp256"]
    candidates = order if args.model == "cv" else [args.model]
    if any(c not in order for c in candidates):
        ap.error("--model must be one of %s or cv" % ", ".join(order))
    cv, quad_params = {}, (4.0, 100.0)
    for c in candidates:
        if c == "quadratic":
            e, qp, ql = quad_cv()
            quad_params = (qp, ql)
        elif len(candidates) == 1:
            break
        else:
            e = mlp_cv(0 if c == "linear" else int(c[3:]))
        cv[c] = e * float(sd) * 100
        print("cv %s rmse %.3f points%s" % (c, cv[c], " (p %g, ridge %g)" % quad_params if c == "quadratic" else ""), flush=True)
    if cv:
        best = min(cv.values())
        model = next(c for c in order if c in cv and cv[c] <= best * 1.02)
    else:
        model = candidates[0]

    common = {
        "n_dim": int(x.shape[1]),
        "holdout_ids": [rows[i]["id"] for i in hold],
        "train_rows": len(train),
        "model": model,
        "cv_rmse_points": cv,
    }
    if model == "quadratic":
        W, w, b = quad_fit(train, *quad_params)
        pred = quad_eval((W, w, b), xd[hold]) * float(sd) + float(mu)
        rmse = float(np.sqrt(np.mean((pred - y[hold].double().numpy()[:, 0]) ** 2)))
        # the target standardisation folded in: output is accuracy in 0..1
        out = {"format": "nestswap.quadratic/1", **common, "p": quad_params[0], "ridge": quad_params[1],
               "W": (W * float(sd)).tolist(), "w": (w * float(sd)).tolist(), "b": float(b * float(sd) + float(mu))}
    else:
        hidden = 0 if model == "linear" else int(model[3:])
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
            **common,
            "layers": [
                {"weight": l.weight.detach().tolist(), "bias": l.bias.detach().tolist()} for l in layers[:-1]
            ] + [{"weight": w_last.tolist(), "bias": b_last.tolist()}],
            "activation": "relu",
            "hidden": hidden,
        }
    out["pytorch_holdout_rmse"] = rmse
    json.dump(out, open(args.out, "w"))
    print(json.dumps({"train": len(train), "holdout": len(hold), "model": model, "rmse_points": rmse * 100}))


if __name__ == "__main__":
    main()

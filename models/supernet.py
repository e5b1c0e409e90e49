"""PyTorch reference of a nestswap supernet, built from an `arch.json` (format nestswap.arch/1).

This is the independent implementation the TypeScript materializer is checked against: the trainer
uses it, and the exporter computes golden outputs with it. Semantics follow Once-for-All's
OFAMobileNetV3 (dynamic MBConv blocks, elastic kernel via learned transformation matrices,
first-N channel slicing, SE with make_divisible(mid // reduction), h-swish / h-sigmoid).
"""
import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def make_divisible(v, divisor=8, min_val=None):
    if min_val is None:
        min_val = divisor
    new_v = max(min_val, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def act(x, name):
    if name == "relu":
        return F.relu(x)
    if name == "h_swish":
        return x * F.relu6(x + 3.0) / 6.0
    if name == "none":
        return x
    raise ValueError("unknown activation %s" % name)


def h_sigmoid(x):
    return F.relu6(x + 3.0) / 6.0


class BN(nn.Module):
    """BatchNorm with first-N slicing and OFA-style recalibration (batch mean / biased var, averaged)."""

    def __init__(self, channels, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.calib = None  # list of (mean, var, n) while recalibrating

    def forward(self, x):
        c = x.shape[1]
        w, b = self.weight[:c], self.bias[:c]
        if self.calib is not None:
            mean = x.mean(dim=(0, 2, 3))
            var = ((x - mean.view(1, -1, 1, 1)) ** 2).mean(dim=(0, 2, 3))
            self.calib.append((mean.detach(), var.detach(), x.shape[0]))
            return F.batch_norm(x, mean, var, w, b, False, 0.0, self.eps)
        return F.batch_norm(
            x, self.running_mean[:c], self.running_var[:c], w, b, self.training, 0.1, self.eps
        )


class Stem(nn.Module):
    def __init__(self, cin, spec, eps):
        super().__init__()
        self.spec = spec
        k = spec["kernel"]
        self.conv = nn.Conv2d(cin, spec["out"], k, spec["stride"], k // 2, bias=False)
        self.bn = BN(spec["out"], eps)

    def forward(self, x):
        return act(self.bn(self.conv(x)), self.spec["act"])


class FirstBlock(nn.Module):
    """MBConv with expand ratio 1: depthwise conv + BN + act, then 1x1 projection + BN, residual."""

    def __init__(self, cin, spec, eps):
        super().__init__()
        self.spec = spec
        k = spec["kernel"]
        assert spec["expand"] == 1
        self.dw = nn.Conv2d(cin, cin, k, spec["stride"], k // 2, groups=cin, bias=False)
        self.dw_bn = BN(cin, eps)
        self.proj = nn.Conv2d(cin, spec["out"], 1, bias=False)
        self.proj_bn = BN(spec["out"], eps)
        self.residual = spec["stride"] == 1 and cin == spec["out"]

    def forward(self, x):
        y = act(self.dw_bn(self.dw(x)), self.spec["act"])
        y = self.proj_bn(self.proj(y))
        return x + y if self.residual else y


class DynamicBlock(nn.Module):
    """OFA DynamicMBConvLayer with elastic kernel (7 -> 5 -> 3 transformation matrices) and expand."""

    def __init__(self, cin, cout, stride, act_name, se, arch):
        super().__init__()
        space = arch["space"]
        self.ks_list = sorted(space["ks_list"])
        self.max_ks = self.ks_list[-1]
        self.cin, self.cout, self.stride, self.act_name, self.use_se = cin, cout, stride, act_name, se
        self.div = arch["channel_divisible"]
        self.reduction = arch["se_reduction"]
        eps = arch["bn_eps"]
        max_mid = make_divisible(round(cin * max(space["expand_list"])), self.div)
        self.expand = nn.Parameter(torch.empty(max_mid, cin, 1, 1))
        self.expand_bn = BN(max_mid, eps)
        self.dw = nn.Parameter(torch.empty(max_mid, 1, self.max_ks, self.max_ks))
        for i in range(len(self.ks_list) - 1, 0, -1):
            t = self.ks_list[i - 1]
            self.register_parameter("m%dto%d" % (self.ks_list[i], t), nn.Parameter(torch.eye(t * t)))
        self.dw_bn = BN(max_mid, eps)
        if se:
            se_mid = make_divisible(max_mid // self.reduction, self.div)
            self.se_reduce_w = nn.Parameter(torch.empty(se_mid, max_mid, 1, 1))
            self.se_reduce_b = nn.Parameter(torch.zeros(se_mid))
            self.se_expand_w = nn.Parameter(torch.empty(max_mid, se_mid, 1, 1))
            self.se_expand_b = nn.Parameter(torch.zeros(max_mid))
        self.proj = nn.Parameter(torch.empty(cout, max_mid, 1, 1))
        self.proj_bn = BN(cout, eps)
        self.residual = stride == 1 and cin == cout
        for p in (self.expand, self.dw, self.proj):
            nn.init.kaiming_normal_(p, mode="fan_out")
        if se:
            nn.init.kaiming_normal_(self.se_reduce_w, mode="fan_out")
            nn.init.kaiming_normal_(self.se_expand_w, mode="fan_out")

    def mid(self, e):
        return make_divisible(round(self.cin * e), self.div)

    def kernel(self, mid, ks):
        w = self.dw[:mid]
        if ks == self.max_ks:
            return w
        cur = w
        src = self.max_ks
        for i in range(len(self.ks_list) - 1, 0, -1):
            src = self.ks_list[i]
            if src <= ks:
                break
            t = self.ks_list[i - 1]
            s = (src - t) // 2
            crop = cur[:, :, s : s + t, s : s + t].reshape(mid, t * t)
            cur = F.linear(crop, getattr(self, "m%dto%d" % (src, t))).reshape(mid, 1, t, t)
        return cur

    def forward(self, x, ks, e):
        mid = self.mid(e)
        y = F.conv2d(x, self.expand[:mid])
        y = act(self.expand_bn(y), self.act_name)
        y = F.conv2d(y, self.kernel(mid, ks), None, self.stride, ks // 2, 1, mid)
        y = act(self.dw_bn(y), self.act_name)
        if self.use_se:
            se_mid = make_divisible(mid // self.reduction, self.div)
            s = y.mean(dim=(2, 3), keepdim=True)
            s = F.relu(F.conv2d(s, self.se_reduce_w[:se_mid, :mid], self.se_reduce_b[:se_mid]))
            s = h_sigmoid(F.conv2d(s, self.se_expand_w[:mid, :se_mid], self.se_expand_b[:mid]))
            y = y * s
        y = self.proj_bn(F.conv2d(y, self.proj[:, :mid]))
        return x + y if self.residual else y


class Supernet(nn.Module):
    def __init__(self, arch):
        super().__init__()
        self.arch = arch
        space = arch["space"]
        self.max_depth = max(space["depth_list"])
        inp = arch["input"]
        self.register_buffer("mean", torch.tensor(inp["mean"]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(inp["std"]).view(1, -1, 1, 1))
        eps = arch["bn_eps"]
        self.stem = Stem(inp["channels"], arch["stem"], eps)
        self.first = FirstBlock(arch["stem"]["out"], arch["first_block"], eps)
        blocks = []
        cin = arch["first_block"]["out"]
        for st in arch["stages"]:
            for j in range(self.max_depth):
                blocks.append(
                    DynamicBlock(cin, st["width"], st["stride"] if j == 0 else 1, st["act"], st["se"], arch)
                )
                cin = st["width"]
        self.blocks = nn.ModuleList(blocks)
        self.final_expand = nn.Conv2d(cin, arch["final_expand"], 1, bias=False)
        self.final_bn = BN(arch["final_expand"], eps)
        self.feature_mix = nn.Conv2d(arch["final_expand"], arch["feature_mix"], 1, bias=False)
        self.classifier = nn.Linear(arch["feature_mix"], arch["classes"])
        self.dropout = arch["dropout"]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
        nn.init.normal_(self.classifier.weight, 0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x, cfg):
        r = cfg["image_size"]
        if r != x.shape[-1] or r != x.shape[-2]:
            x = F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        x = self.first(self.stem(x))
        for s, depth in enumerate(cfg["d"]):
            for j in range(depth):
                i = s * self.max_depth + j
                x = self.blocks[i](x, cfg["ks"][i], cfg["e"][i])
        x = act(self.final_bn(self.final_expand(x)), "h_swish")
        x = x.mean(dim=(2, 3), keepdim=True)
        x = act(self.feature_mix(x), "h_swish").flatten(1)
        if self.training and self.dropout > 0:
            x = F.dropout(x, self.dropout)
        return self.classifier(x)

    def bns(self):
        return [m for m in self.modules() if isinstance(m, BN)]

    @torch.no_grad()
    def recalibrate(self, images, cfg, batch=200):
        """OFA's set_running_statistics: average per-batch mean/var over `images` in batches of `batch`.
        Returns {bn_name: (mean, var)} for the BNs the subnet uses; does not modify stored statistics."""
        was_training = self.training
        self.eval()
        names = {m: n for n, m in self.named_modules() if isinstance(m, BN)}
        for m in names:
            m.calib = []
        for i in range(0, images.shape[0], batch):
            self.forward(images[i : i + batch], cfg)
        stats = {}
        for m, n in names.items():
            if m.calib:
                total = sum(k for _, _, k in m.calib)
                mean = sum(mu * k for mu, _, k in m.calib) / total
                var = sum(v * k for _, v, k in m.calib) / total
                stats[n] = (mean, var)
            m.calib = None
        self.train(was_training)
        return stats

    @torch.no_grad()
    def forward_with_stats(self, x, cfg, stats):
        """Eval forward using recalibrated statistics for the BNs in `stats` (stored ones elsewhere)."""
        saved = {}
        named = dict(self.named_modules())
        for n, (mean, var) in stats.items():
            m = named[n]
            c = mean.shape[0]
            saved[n] = (m.running_mean[:c].clone(), m.running_var[:c].clone())
            m.running_mean[:c] = mean
            m.running_var[:c] = var
        was_training = self.training
        self.eval()
        try:
            return self.forward(x, cfg)
        finally:
            for n, (mean, var) in saved.items():
                m = named[n]
                c = mean.shape[0]
                m.running_mean[:c] = mean
                m.running_var[:c] = var
            self.train(was_training)


def load_arch(path):
    with open(path) as f:
        return json.load(f)


def n_slots(arch):
    return len(arch["stages"]) * max(arch["space"]["depth_list"])


def max_config(arch):
    s = arch["space"]
    n = n_slots(arch)
    return {
        "ks": [max(s["ks_list"])] * n,
        "e": [max(s["expand_list"])] * n,
        "d": [max(s["depth_list"])] * len(arch["stages"]),
        "image_size": max(s["image_size_list"]),
    }


def min_config(arch):
    s = arch["space"]
    n = n_slots(arch)
    return {
        "ks": [min(s["ks_list"])] * n,
        "e": [min(s["expand_list"])] * n,
        "d": [min(s["depth_list"])] * len(arch["stages"]),
        "image_size": min(s["image_size_list"]),
    }


def sample_config(arch, rng):
    s = arch["space"]
    n = n_slots(arch)
    return {
        "ks": [rng.choice(s["ks_list"]) for _ in range(n)],
        "e": [rng.choice(s["expand_list"]) for _ in range(n)],
        "d": [rng.choice(s["depth_list"]) for _ in arch["stages"]],
        "image_size": rng.choice(s["image_size_list"]),
    }

"""PyTorch side of bench/ofa-import.ts: OFA's set_running_statistics on a subnet of an OFA MobileNetV3 checkpoint.

    /usr/bin/python3 bench/ofa_reference.py CHECKPOINT CALIBRATION.u8 IMAGES RES KS E D [THREADS]

Builds the active subnet the way OFA's get_active_subnet does (weights sliced, elastic kernels through the
transformation matrices), then times OFA's set_running_statistics: forward the images in batches of 200 at RES
(bilinear resize, ImageNet normalisation), every BatchNorm normalising with its batch's mean and biased variance,
averaged over the batches. Prints JSON: seconds and the first BN's mean (a sanity value).
"""
import json, math, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

ckpt, calib, n_img, res, ks, ex, dp = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
torch.set_num_threads(int(sys.argv[8]) if len(sys.argv) > 8 else 2)
sd = torch.load(ckpt, map_location='cpu')
sd = sd.get('state_dict', sd)

def make_div(v, d=8):
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n

class HSwish(nn.Module):
    def forward(self, x): return x * F.relu6(x + 3.) / 6.

def act(name): return HSwish() if name == 'h_swish' else nn.ReLU()

def bn(prefix, c):
    m = nn.BatchNorm2d(c, eps=1e-5)
    for k in ['weight', 'bias', 'running_mean', 'running_var']:
        getattr(m, k).data.copy_(sd[f'{prefix}.{k}'][:c])
    return m

def conv(w, stride=1, groups=1, bias=None):
    k = w.shape[-1]
    c = nn.Conv2d(w.shape[1] * groups, w.shape[0], k, stride, k // 2, groups=groups, bias=bias is not None)
    c.weight.data.copy_(w)
    if bias is not None: c.bias.data.copy_(bias)
    return c

def active_filter(p, mid, k):
    w = sd[f'{p}.depth_conv.conv.conv.weight'][:mid]
    cur, src = w, 7
    for t in (5, 3):
        if src <= k: break
        s = (src - t) // 2
        f = cur[:, :, s:s + t, s:s + t].contiguous().view(mid, -1)
        cur = F.linear(f, sd[f'{p}.depth_conv.conv.{src}to{t}_matrix']).view(mid, 1, t, t)
        src = t
    return cur

class SE(nn.Module):
    def __init__(self, p, mid):
        super().__init__()
        se = make_div(mid // 4)
        self.r = conv(sd[f'{p}.depth_conv.se.fc.reduce.weight'][:se, :mid], bias=sd[f'{p}.depth_conv.se.fc.reduce.bias'][:se])
        self.e = conv(sd[f'{p}.depth_conv.se.fc.expand.weight'][:mid, :se], bias=sd[f'{p}.depth_conv.se.fc.expand.bias'][:mid])
    def forward(self, x):
        y = x.mean(3, keepdim=True).mean(2, keepdim=True)
        return x * (F.relu6(self.e(F.relu(self.r(y))) + 3.) / 6.)

class Block(nn.Module):
    def __init__(self, i, cin, cout, stride, a, se, k, e):
        super().__init__()
        p = f'blocks.{i}.conv'
        mid = make_div(round(cin * e))
        self.res = stride == 1 and cin == cout
        layers = [conv(sd[f'{p}.inverted_bottleneck.conv.conv.weight'][:mid, :cin]), bn(f'{p}.inverted_bottleneck.bn.bn', mid), act(a),
                  conv(active_filter(p, mid, k), stride, groups=mid), bn(f'{p}.depth_conv.bn.bn', mid), act(a)]
        if se: layers.append(SE(p, mid))
        layers += [conv(sd[f'{p}.point_linear.conv.conv.weight'][:cout, :mid]), bn(f'{p}.point_linear.bn.bn', cout)]
        self.body = nn.Sequential(*layers)
    def forward(self, x): return x + self.body(x) if self.res else self.body(x)

stem = sd['first_conv.conv.weight'].shape[0]
fb = sd['blocks.0.conv.point_linear.conv.weight'].shape[0]
widths = [sd[f'blocks.{1 + 4 * s}.conv.point_linear.conv.conv.weight'].shape[0] for s in range(5)]
layers = [conv(sd['first_conv.conv.weight'], 2), bn('first_conv.bn', stem), HSwish(),
          conv(sd['blocks.0.conv.depth_conv.conv.weight'], 1, groups=stem), bn('blocks.0.conv.depth_conv.bn', stem), nn.ReLU(),
          conv(sd['blocks.0.conv.point_linear.conv.weight']), bn('blocks.0.conv.point_linear.bn', fb)]
cin = fb
acts, ses, strides = ['relu', 'relu', 'h_swish', 'h_swish', 'h_swish'], [False, True, False, True, True], [2, 2, 2, 1, 2]
for s in range(5):
    for j in range(dp):
        layers.append(Block(1 + 4 * s + j, cin, widths[s], strides[s] if j == 0 else 1, acts[s], ses[s], ks, ex))
        cin = widths[s]
fe = sd['final_expand_layer.conv.weight'].shape[0]
layers += [conv(sd['final_expand_layer.conv.weight']), bn('final_expand_layer.bn', fe), HSwish()]
net = nn.Sequential(*layers).eval()

# OFA's set_running_statistics: batch statistics in every BN, averaged over batches
sums = {}
def patch(name, m):
    def fwd(x):
        mean = x.mean(0, keepdim=True).mean(2, keepdim=True).mean(3, keepdim=True)
        var = ((x - mean) * (x - mean)).mean(0, keepdim=True).mean(2, keepdim=True).mean(3, keepdim=True)
        mean, var = torch.squeeze(mean), torch.squeeze(var)
        s = sums.setdefault(name, [0, 0, 0])
        s[0] = s[0] + mean * x.size(0); s[1] = s[1] + var * x.size(0); s[2] += x.size(0)
        return F.batch_norm(x, mean, var, m.weight, m.bias, False, 0.0, m.eps)
    m.forward = fwd
for name, m in net.named_modules():
    if isinstance(m, nn.BatchNorm2d): patch(name, m)

import numpy as np
raw = np.fromfile(calib, dtype=np.uint8).reshape(-1, 3, 224, 224)
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1); std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
t0 = time.perf_counter()
with torch.no_grad():
    for b in range(0, n_img, 200):
        idx = [i % raw.shape[0] for i in range(b, min(n_img, b + 200))]
        x = torch.from_numpy(raw[idx]).float() / 255
        if res != 224: x = F.interpolate(x, size=(res, res), mode='bilinear', align_corners=False)
        net((x - mean) / std)
secs = time.perf_counter() - t0
first = sums[sorted(sums)[0]]
print(json.dumps({'seconds': secs, 'images': n_img, 'threads': torch.get_num_threads(), 'torch': torch.__version__, 'bn_layers': len(sums), 'first_bn_mean0': float(first[0][0] / first[2])}))

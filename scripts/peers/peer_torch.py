"""maml-burn's PyTorch peer: second-order MAML on fresh linear-regression tasks, eager.

The same meta step as `maml bench --config linreg-16` and ../../shared/peers, written the
way the seed and learn2learn do it: a Python loop over tasks, autograd.grad with
create_graph=True in the inner loop, backward through the fast weights. Prints one JSON
line.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--dim", type=int, default=16)
ap.add_argument("--tasks", type=int, default=25)
ap.add_argument("--shots", type=int, default=10)
ap.add_argument("--queries", type=int, default=15)
ap.add_argument("--inner-steps", type=int, default=5)
ap.add_argument("--inner-lr", type=float, default=0.01)
ap.add_argument("--meta-lr", type=float, default=0.001)
ap.add_argument("--seconds", type=float, default=3.0)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--first-order", action="store_true")
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)

w = torch.empty(1, args.dim)
torch.nn.init.kaiming_normal_(w)
w.requires_grad_()
b = torch.zeros(1, requires_grad=True)
opt = torch.optim.SGD([w, b], lr=args.meta_lr)


def meta_step():
    a = torch.randn(args.tasks, args.dim, 1)
    c = torch.randn(args.tasks, 1, 1)
    xs = torch.randn(args.tasks, args.shots, args.dim)
    xq = torch.randn(args.tasks, args.queries, args.dim)
    ys, yq = xs @ a + c, xq @ a + c
    opt.zero_grad()
    for t in range(args.tasks):
        fw, fb = w, b
        for _ in range(args.inner_steps):
            loss = F.mse_loss(F.linear(xs[t], fw, fb), ys[t])
            gw, gb = torch.autograd.grad(loss, (fw, fb), create_graph=not args.first_order)
            fw, fb = fw - args.inner_lr * gw, fb - args.inner_lr * gb
        (F.mse_loss(F.linear(xq[t], fw, fb), yq[t]) / args.tasks).backward()
    opt.step()


for _ in range(10):
    meta_step()
steps, start = 0, time.perf_counter()
while time.perf_counter() - start < args.seconds:
    meta_step()
    steps += 1
dt = time.perf_counter() - start
print(json.dumps({"peer": "torch", "order": "first" if args.first_order else "second",
                  "meta_steps_per_s": steps / dt, "meta_steps": steps, "seconds": dt}))

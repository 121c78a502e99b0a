"""maml-burn's JAX peer: second-order MAML on fresh linear-regression tasks.

The same meta step as `maml bench --config linreg-16` and ../../shared/peers: per step,
draw `tasks` tasks y = x a + c (x ~ N(0, I), a ~ N(0, I), c ~ N(0, 1)), adapt a linear
model with `inner_steps` gradient steps of size `inner_lr` on the support MSE, and take
one SGD step of size `meta_lr` on the mean query MSE. grad of grad, vmap over tasks,
the whole step under jit. Prints one JSON line.
"""
import argparse
import json
import time

import jax
import jax.numpy as jnp

ap = argparse.ArgumentParser()
ap.add_argument("--dim", type=int, default=16)
ap.add_argument("--tasks", type=int, default=25)
ap.add_argument("--shots", type=int, default=10)
ap.add_argument("--queries", type=int, default=15)
ap.add_argument("--inner-steps", type=int, default=5)
ap.add_argument("--inner-lr", type=float, default=0.01)
ap.add_argument("--meta-lr", type=float, default=0.001)
ap.add_argument("--seconds", type=float, default=3.0)
ap.add_argument("--first-order", action="store_true")
args = ap.parse_args()


def mse(theta, x, y):
    w, b = theta
    return jnp.mean((x @ w.T + b - y) ** 2)


def fast_weights(theta, xs, ys):
    for _ in range(args.inner_steps):
        g = jax.grad(mse)(theta, xs, ys)
        if args.first_order:
            g = jax.lax.stop_gradient(g)
        theta = jax.tree_util.tree_map(lambda p, q: p - args.inner_lr * q, theta, g)
    return theta


def meta_loss(theta, xs, ys, xq, yq):
    per_task = jax.vmap(lambda a, b, c, d: mse(fast_weights(theta, a, b), c, d))
    return jnp.mean(per_task(xs, ys, xq, yq))


@jax.jit
def meta_step(theta, key):
    ka, kc, ks, kq = jax.random.split(key, 4)
    a = jax.random.normal(ka, (args.tasks, args.dim, 1))
    c = jax.random.normal(kc, (args.tasks, 1, 1))
    xs = jax.random.normal(ks, (args.tasks, args.shots, args.dim))
    xq = jax.random.normal(kq, (args.tasks, args.queries, args.dim))
    loss, g = jax.value_and_grad(meta_loss)(theta, xs, xs @ a + c, xq, xq @ a + c)
    return jax.tree_util.tree_map(lambda p, q: p - args.meta_lr * q, theta, g), loss


key = jax.random.PRNGKey(0)
theta = (jax.random.normal(key, (1, args.dim)) * jnp.sqrt(2.0 / args.dim), jnp.zeros(1))
for i in range(20):  # compile and warm up
    theta, loss = meta_step(theta, jax.random.fold_in(key, i))
loss.block_until_ready()
steps, start = 0, time.perf_counter()
while time.perf_counter() - start < args.seconds:
    for _ in range(50):
        theta, loss = meta_step(theta, jax.random.fold_in(key, 1000 + steps))
        steps += 1
    loss.block_until_ready()
dt = time.perf_counter() - start
print(json.dumps({"peer": "jax", "order": "first" if args.first_order else "second",
                  "meta_steps_per_s": steps / dt, "meta_steps": steps, "seconds": dt}))

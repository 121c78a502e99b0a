#!/usr/bin/env python3
"""Writes the bad-input corpus under tests/bad-inputs/ and its manifest.

Each case is a file and the text its `error:` line must contain. The corpus test
(crates/maml-cli/tests/bad_inputs.rs) runs every file through the `maml` command of its
folder: problems/ through `maml grad`, checkpoints/ through `maml eval`, configs/
through `maml train --config`.
"""
import json
import pathlib

root = pathlib.Path(__file__).resolve().parent.parent / "tests" / "bad-inputs"
cases = []


def good_problem():
    return {
        "weight": [[0.5, -0.25]], "bias": [0.1],
        "tasks": [{"support": {"x": [[1.0, 2.0], [0.5, -1.0]], "y": [[1.0], [0.0]]},
                   "query": {"x": [[2.0, 0.0]], "y": [[1.5]]}}],
        "inner_lr": 0.1, "inner_steps": 2, "order": "second", "loss": "sse",
    }


def good_config():
    return {
        "meta": {"adapt": {"inner_lr": 0.1, "inner_steps": 2, "order": "second", "loss": "mse"},
                 "meta_lr": 0.01, "meta_optimizer": "adam"},
        "tasks": {"family": "linear", "d_in": 3, "d_out": 1, "support_shots": 4, "query_shots": 4,
                  "noise": 0.1, "coef_mean": 1.0, "coef_std": 0.5, "offset_mean": 0.0,
                  "offset_std": 0.5},
        "meta_batch": 4, "meta_steps": 2, "seed": 0,
    }


def good_checkpoint():
    return {"format": "maml-burn checkpoint v1", "step": 2, "config": good_config(),
            "weights": {"weight": [[0.1, 0.2, 0.3]], "bias": [0.0]}}


def add(folder, name, content, expect):
    path = root / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(json.dumps(content, indent=1))
    cases.append((f"{folder}/{name}", expect))


def problem(name, expect, **changes):
    p = good_problem()
    for key, value in changes.items():
        if value is DELETE:
            del p[key]
        else:
            p[key] = value
    add("problems", name, p, expect)


def task_problem(name, expect, mutate):
    p = good_problem()
    mutate(p["tasks"][0])
    add("problems", name, p, expect)


DELETE = object()

# Malformed or truncated JSON: the message names the file, line and column.
add("problems", "empty.json", "", "line 1, column 0")
add("problems", "not-json.json", "hello", "line 1, column 1")
add("problems", "truncated.json", json.dumps(good_problem(), indent=1)[:120], "EOF while parsing")
add("problems", "array.json", "[1, 2, 3]", "line 1, column 2: invalid type: integer `1`, expected a sequence")
add("problems", "trailing-garbage.json", json.dumps(good_problem()) + " }", "trailing characters")
add("problems", "nan-literal.json", json.dumps(good_problem()).replace("0.5", "NaN", 1), "line 1")
add("problems", "number-out-of-range.json", json.dumps(good_problem()).replace("0.5", "1e999", 1), "number out of range")
add("problems", "invalid-utf8.json", b'{"weight": [[0.5\xff]]}', "invalid-utf8.json")
add("problems", "duplicate-key.json", json.dumps(good_problem())[:-1] + ', "loss": "mse"}', "duplicate field `loss`")
# Missing and unknown fields.
for field in ["weight", "bias", "tasks", "inner_lr", "inner_steps", "order", "loss"]:
    problem(f"missing-{field.replace('_', '-')}.json", f"missing field `{field}`", **{field: DELETE})
problem("unknown-field.json", "unknown field `learning_rate`", learning_rate=0.1)
# Wrong types.
problem("weight-string.json", "invalid type: string", weight="0.5")
problem("bias-null.json", "invalid type: null", bias=None)
problem("tasks-object.json", "invalid type: map", tasks={"support": {}})
problem("inner-steps-negative.json", "invalid value: integer `-1`", inner_steps=-1)
problem("inner-steps-fraction.json", "invalid type: floating point `1.5`", inner_steps=1.5)
problem("order-number.json", "invalid type: integer `2`, expected a string", order=2)
# Unknown names.
problem("order-unknown.json", 'unknown order "third": expected one of first second', order="third")
problem("loss-unknown.json", 'unknown loss "mae": expected one of sse mse', loss="mae")
# Shapes.
problem("weight-empty.json", "problem.weight is empty", weight=[])
problem("weight-empty-row.json", "problem.weight[0] is empty", weight=[[]])
problem("weight-ragged.json", "problem.weight[1]: row has 1 entries, expected 2", weight=[[0.5, 0.1], [0.2]], bias=[0.0, 0.0])
problem("bias-too-long.json", "bias has 2 entries but the weight has 1 rows", bias=[0.1, 0.2])
problem("bias-empty.json", "bias has 0 entries but the weight has 1 rows", bias=[])
problem("tasks-empty.json", "tasks is empty", tasks=[])
task_problem("support-missing.json", "missing field `support`", lambda t: t.pop("support"))
task_problem("query-missing.json", "missing field `query`", lambda t: t.pop("query"))
task_problem("support-x-missing.json", "missing field `x`", lambda t: t["support"].pop("x"))
task_problem("support-empty.json", "tasks[0].support.x is empty", lambda t: t["support"].update(x=[], y=[]))
task_problem("query-empty.json", "tasks[0].query.x is empty", lambda t: t["query"].update(x=[], y=[]))
task_problem("support-row-too-short.json", "tasks[0].support.x[1]: row has 1 entries, expected 2",
             lambda t: t["support"]["x"].__setitem__(1, [0.5]))
task_problem("query-row-too-long.json", "tasks[0].query.x[0]: row has 3 entries, expected 2",
             lambda t: t["query"]["x"].__setitem__(0, [2.0, 0.0, 1.0]))
task_problem("support-y-rows.json", "tasks[0].support.y: 1 target rows for 2 feature rows",
             lambda t: t["support"].update(y=[[1.0]]))
task_problem("support-y-width.json", "tasks[0].support.y[0]: row has 2 entries, expected 1",
             lambda t: t["support"]["y"].__setitem__(0, [1.0, 2.0]))
task_problem("query-y-width.json", "tasks[0].query.y[0]: row has 0 entries, expected 1",
             lambda t: t["query"]["y"].__setitem__(0, []))
task_problem("x-string.json", "invalid type: string", lambda t: t["support"]["x"].__setitem__(0, ["1", "2"]))
add("problems", "second-task-bad.json",
    {**good_problem(), "tasks": good_problem()["tasks"] + [{"support": {"x": [[1.0]]}, "query": {"x": [[1.0, 2.0]]}}]},
    "tasks[1].support.x[0]: row has 1 entries, expected 2")
# Hyperparameters.
problem("inner-lr-negative.json", "invalid inner_lr = -0.1: must be positive", inner_lr=-0.1)
problem("inner-lr-zero.json", "invalid inner_lr = 0: must be positive", inner_lr=0.0)
problem("inner-lr-string.json", "invalid type: string", inner_lr="fast")

# Version 4, the family's fields.
def good_family():
    lin = lambda o, i: {"type": "linear", "weight": [[0.1 * (r + c + 1) for c in range(i)] for r in range(o)],
                        "bias": [0.0] * o}
    return {
        "version": 4, "model": {"input": [2], "layers": [lin(2, 2), {"type": "tanh"}, lin(2, 2)]},
        "tasks": [{"support": {"x": [[1.0, 2.0], [0.5, -1.0]], "y": [0, 1]},
                   "query": {"x": [[2.0, 0.0], [0.0, 1.0]], "y": [1, 0]}}],
        "inner_lr": 0.1, "inner_steps": 2, "order": "second", "loss": "cross_entropy",
    }
def family(name, expect, mutate, text=None):
    p = good_family(); mutate(p)
    add("problems", "family-" + name, text(json.dumps(p)) if text else p, expect)
adam = {"type": "adam", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "eps_root": 1e-8}
step = lambda *entries: [dict(e) for e in entries]
family("optimizer-unknown.json", "unknown variant `rmsprop`", lambda p: p.update(inner_optimizer={"type": "rmsprop"}))
family("algorithm-unknown.json", 'unknown algorithm "maml++": expected one of maml reptile', lambda p: p.update(algorithm="maml++"))
family("momentum-too-big.json", "invalid inner_optimizer.momentum = 1.5: must be in [0, 1)", lambda p: p.update(inner_optimizer={"type": "momentum", "momentum": 1.5}))
family("beta2-one.json", "invalid inner_optimizer.beta2 = 1: must be in [0, 1)", lambda p: p.update(inner_optimizer={**adam, "beta2": 1.0}))
family("eps-root-negative.json", "invalid inner_optimizer.eps_root = -0.001: must be a finite number >= 0", lambda p: p.update(inner_optimizer={**adam, "eps_root": -1e-3}))
family("eps-root-zero-second.json", "invalid inner_optimizer.eps_root = 0: must be > 0 in second order", lambda p: p.update(inner_optimizer={**adam, "eps_root": 0.0}))
family("adam-missing-eps-root.json", "missing field `eps_root`", lambda p: p.update(inner_optimizer={k: v for k, v in adam.items() if k != "eps_root"}))
family("momentum-nan.json", "invalid JSON at line 1, column 512: expected value", lambda p: p.update(inner_optimizer={"type": "momentum", "momentum": 0.5}),
       text=lambda t: t.replace('"momentum": 0.5', '"momentum": NaN'))
family("step-loss-weights-length.json", "invalid step_loss_weights = 1 weights: must have one weight per inner step", lambda p: p.update(step_loss_weights=[1.0]))
family("step-loss-weights-negative.json", "invalid step_loss_weights = -1: must be finite numbers >= 0", lambda p: p.update(step_loss_weights=[0.5, -1.0]))
family("step-loss-weights-zero.json", "invalid step_loss_weights = all 0: at least one weight must be positive", lambda p: p.update(step_loss_weights=[0.0, 0.0]))
family("inner-layers-out-of-range.json", "inner_layers[0]: layer index 7 is out of range (the model has 3 layers)", lambda p: p.update(inner_layers=[7]))
family("inner-layers-activation.json", "inner_layers[1]: layer 1 (tanh) has no parameters the inner loop can adapt", lambda p: p.update(inner_layers=[2, 1]))
family("inner-layers-twice.json", "inner_layers[1]: layer 2 is listed twice", lambda p: p.update(inner_layers=[2, 2]))
family("per-step-steps.json", "1 steps of step sizes for inner_steps = 2", lambda p: p.update(inner_lr={"per_step": [step({"weight": 0.1, "bias": 0.1}, {}, {"weight": 0.1, "bias": 0.1})]}))
family("per-step-layers.json", "2 layers of step sizes for a model of 3 layers", lambda p: p.update(inner_lr={"per_step": [step({"weight": 0.1, "bias": 0.1}, {})] * 2}))
family("per-step-activation.json", "inner_lr.per_step[k][1].weight: layer 1 (tanh) is not adapted by the inner loop", lambda p: p.update(inner_lr={"per_step": [step({"weight": 0.1, "bias": 0.1}, {"weight": 0.1}, {"weight": 0.1, "bias": 0.1})] * 2}))
family("per-step-missing.json", "inner_lr.per_step[k][0].weight: layer 0 (linear) is adapted by the inner loop: give its step size", lambda p: p.update(inner_lr={"per_step": [step({}, {}, {"weight": 0.1, "bias": 0.1})] * 2}))
family("per-step-negative.json", "step size -0.1 must be finite and positive", lambda p: p.update(inner_lr={"per_step": [step({"weight": -0.1, "bias": 0.1}, {}, {"weight": 0.1, "bias": 0.1})] * 2}))
family("per-step-norm-sets.json", "model.layers[1].weight: a per-step batch norm needs inner_steps + 1 = 3 sets, found 1",
       lambda p: p["model"]["layers"].insert(1, {"type": "batch_norm", "per_step": True, "weight": [[1.0, 1.0]], "bias": [[0.0, 0.0]]}))
family("version-unknown.json", 'unknown problem version "5"', lambda p: p.update(version=5))
family("field-without-version.json", "invalid inner_layers = given: is a version-4 field", lambda p: (p.pop("version"), p.update(inner_layers=[2])))
family("reptile-second-order.json", "invalid order = second: Reptile is first order", lambda p: p.update(algorithm="reptile"))

# Checkpoints, through `maml eval`.
add("checkpoints", "empty.json", "", "line 1, column 0")
add("checkpoints", "truncated.json", json.dumps(good_checkpoint(), indent=1)[:200], "EOF while parsing")
add("checkpoints", "wrong-format.json", {**good_checkpoint(), "format": "pytorch state_dict"}, "unknown checkpoint format \"pytorch state_dict\"")
c = good_checkpoint(); del c["weights"]
add("checkpoints", "missing-weights.json", c, "missing field `weights`")
c = good_checkpoint(); del c["config"]
add("checkpoints", "missing-config.json", c, "missing field `config`")
add("checkpoints", "other-shape.json", {**good_checkpoint(), "weights": {"weight": [[0.1, 0.2]], "bias": [0.0]}},
    "holds a model of shape [1, 2], expected [1, 3]")
add("checkpoints", "bias-mismatch.json", {**good_checkpoint(), "weights": {"weight": [[0.1, 0.2, 0.3]], "bias": [0.0, 1.0]}},
    "bias has 2 entries but the weight has 1 rows")
add("checkpoints", "weights-empty.json", {**good_checkpoint(), "weights": {"weight": [], "bias": []}}, "weights.weight is empty")
add("checkpoints", "step-negative.json", {**good_checkpoint(), "step": -3}, "invalid value: integer `-3`")
c = good_checkpoint(); c["config"]["meta"]["meta_lr"] = -1.0
add("checkpoints", "config-meta-lr-negative.json", c, "invalid meta_lr = -1: must be positive")
c = good_checkpoint(); c["config"]["tasks"]["family"] = "imagenet"
add("checkpoints", "config-family-unknown.json", c, "unknown variant `imagenet`")
add("checkpoints", "weights-huge.json", json.dumps(good_checkpoint()).replace("0.2", "1e400"), "number out of range")

# Configurations, through `maml train --config`.
add("configs", "empty.json", "", "line 1, column 0")
add("configs", "truncated.json", json.dumps(good_config(), indent=1)[:150], "EOF while parsing")
def config(name, expect, mutate):
    c = good_config(); mutate(c); add("configs", name, c, expect)
config("optimizer-unknown.json", 'unknown meta-optimizer "rmsprop": expected one of sgd adam', lambda c: c["meta"].update(meta_optimizer="rmsprop"))
config("meta-lr-zero.json", "invalid meta_lr = 0: must be positive", lambda c: c["meta"].update(meta_lr=0.0))
config("inner-lr-negative.json", "invalid inner_lr = -1: must be positive", lambda c: c["meta"]["adapt"].update(inner_lr=-1.0))
config("meta-batch-zero.json", "invalid meta_batch = 0: must be at least 1", lambda c: c.update(meta_batch=0))
config("order-unknown.json", 'unknown order "zeroth"', lambda c: c["meta"]["adapt"].update(order="zeroth"))
config("loss-unknown.json", 'unknown loss "huber"', lambda c: c["meta"]["adapt"].update(loss="huber"))
config("family-unknown.json", "unknown variant `imagenet`", lambda c: c["tasks"].update(family="imagenet"))
config("tasks-file-missing.json", "cannot read /nonexistent/tasks.json", lambda c: c.update(tasks={"family": "file", "path": "/nonexistent/tasks.json"}))
config("family-in-zero.json", "invalid in = 0: must be at least 1", lambda c: c["tasks"].update(d_in=0))
config("family-noise-negative.json", "invalid noise = -0.5: must be finite and not negative", lambda c: c["tasks"].update(noise=-0.5))
config("missing-meta.json", "missing field `meta`", lambda c: c.pop("meta"))
config("missing-tasks.json", "missing field `tasks`", lambda c: c.pop("tasks"))

manifest = root / "expected.tsv"
manifest.write_text("# file\ttext its error line must contain\n" + "".join(f"{f}\t{e}\n" for f, e in cases))
print(f"{len(cases)} cases written to {root}")

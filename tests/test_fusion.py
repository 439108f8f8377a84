"""Fusion: kernel counts for known patterns, kept as budgets that may only go down.

Each pattern is compiled and run against torch too, so a budget can never be met
by fusing wrongly. Lower a budget when fusion improves; never raise one."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tracegrad
from tracegrad.tracer.passes.fusion import fuse
from util import assert_values

TF = torch.nn.functional


def _both(shape, seed=0, requires_grad=False):
    a = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    t, r = tracegrad.tensor(a), torch.tensor(a)
    if requires_grad:
        t.requires_grad_(True)
        r.requires_grad_(True)
    return t, r


def chain8(L, x):
    return ((x * 2.0 + 1.0).exp() - 0.5).abs().sqrt() * 3.0 + x


def softmax(L, x):
    e = (x - x.amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


def layer_norm(L, x, w, b):
    return L.nn.functional.layer_norm(x, x.shape[-1:], w, b)


def layer_norm_by_hand(L, x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / (var + 1e-5).sqrt() * w + b


def gelu_mlp(L, x, w1, b1, w2, b2):
    h = L.nn.functional.gelu(L.nn.functional.linear(x, w1, b1))
    return L.nn.functional.linear(h, w2, b2)


def relu_mlp_loss(L, x, w1, w2):
    return (x.mm(w1).clamp(min=0).mm(w2) * 0.01 - 1).pow(2).mean()


# name: (function, input shapes, kernel budget of the forward, budget of the backward or None)
BUDGETS = {
    "pointwise_chain": (chain8, [(1000,)], 1, None),
    "pointwise_broadcast": (lambda L, x, b: (x * b + 1).tanh() * b, [(64, 100), (100,)], 1, None),
    "row_softmax": (softmax, [(64, 100)], 1, None),
    "softmax_functional": (lambda L, x: L.nn.functional.softmax(x, -1), [(64, 100)], 1, None),
    "layer_norm": (layer_norm, [(64, 100), (100,), (100,)], 1, None),
    "layer_norm_by_hand": (layer_norm_by_hand, [(64, 100), (100,), (100,)], 1, None),
    "gelu_mlp": (gelu_mlp, [(32, 20), (40, 20), (40,), (10, 40), (10,)], 2, None),
    "sum_of_squares": (lambda L, x: (x * x).sum(), [(1000,)], 1, None),
    "relu_mlp_loss": (relu_mlp_loss, [(64, 100), (100, 50), (50, 10)], 3, None),
    # backward graphs (every input requires grad)
    "pointwise_chain_grad": (chain8, [(1000,)], 1, 1),
    "softmax_grad": (softmax, [(64, 100)], 1, 1),
    "layer_norm_grad": (layer_norm, [(64, 100), (100,), (100,)], 1, 2),
    "relu_mlp_loss_grad": (relu_mlp_loss, [(64, 100), (100, 50), (50, 10)], 3, 6),
}


def _kernels(plan):
    return len(plan.kernels)


@pytest.mark.parametrize("name", list(BUDGETS))
def test_kernel_budget(name):
    fn, shapes, fwd_budget, bwd_budget = BUDGETS[name]
    grad = bwd_budget is not None
    pairs = [_both(s, i, grad) for i, s in enumerate(shapes)]
    ours = [p[0] for p in pairs]
    theirs = [p[1] for p in pairs]
    rep = tracegrad.explain(lambda *xs: fn(tracegrad, *xs), *ours)
    assert len(rep.kernels) <= fwd_budget, f"{name}: {len(rep.kernels)} kernels > budget {fwd_budget}\n" \
                                           f"{rep.forward_plan}"
    if grad:
        assert len(rep.backward_kernels) <= bwd_budget, \
            f"{name}: {len(rep.backward_kernels)} backward kernels > budget {bwd_budget}\n{rep.backward_plan}"
    # the fused program still computes torch's numbers (float32; float64 as the tie-breaking reference)
    t64 = [t.detach().double().requires_grad_(grad) for t in theirs]
    out = tracegrad.compile(lambda *xs: fn(tracegrad, *xs))(*ours)
    ref, ref64 = fn(torch, *theirs), fn(torch, *t64)
    assert_values(out, ref.detach(), name, ref64=ref64.detach())
    if grad:
        for o, lib in ((out, None), (ref, None), (ref64, None)):
            ((o + 1) ** 2).mean().backward()
        for o, t, t6 in zip(ours, theirs, t64):
            assert_values(o.grad, t.grad, f"{name} grad", ref64=t6.grad)


def test_matmul_bias_and_activation_share_a_kernel():
    (x, _), (w, _), (b, _) = _both((32, 20)), _both((40, 20), 1), _both((40,), 2)
    rep = tracegrad.explain(lambda x, w, b: tracegrad.nn.functional.gelu(x @ w.t() + b), x, w, b)
    (k,) = rep.kernels
    assert k.kind == "matmul"
    assert "matmul" in k.ops and "add" in k.ops and "erf" in k.ops


def test_a_reduction_is_never_duplicated():
    x, _ = _both((16, 30))
    # the row sum feeds two consumers of different shapes
    g = tracegrad.trace(lambda x: (x.sum(-1, keepdim=True) * x, x.sum(-1) + 1), x)
    from tracegrad.tracer.passes import optimize

    plan = fuse(optimize(g))
    counts = {}
    for grp in plan.groups:
        for n in grp.nodes:
            if n.op.kind == "reduce":
                counts[id(n)] = counts.get(id(n), 0) + 1
    assert counts and all(c == 1 for c in counts.values())


def test_group_inputs_and_outputs_are_minimal():
    x, _ = _both((64, 100))
    rep = tracegrad.explain(lambda x: chain8(tracegrad, x), x)
    (g,) = [grp for grp in rep.forward_plan.groups if grp.launches]
    assert [v.name for v in g.inputs] == ["x"]  # intermediates stay inside
    assert len(g.outputs) == 1


def test_plan_is_backend_independent_and_documented():
    from tracegrad.tracer.passes import fusion

    x, _ = _both((8, 10))
    plan = fuse(tracegrad.trace(lambda x: softmax(tracegrad, x), x))
    (g,) = plan.kernels
    assert g.kind == "reduction" and len(g.anchors) == 2  # max and sum in one persistent-row kernel
    assert g.domain == (8, 10) and g.reduce_dims == (1,)
    assert [n.op.name for n in g.prologue] == [] and g.epilogue
    for field in ("kind", "nodes", "inputs", "outputs", "anchors", "domain"):
        assert field in fusion.__doc__

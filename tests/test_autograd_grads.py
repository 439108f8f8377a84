"""Gradients of every differentiable op, compared with torch's on the same inputs.

Each case is one function `fn(m, *xs)` written once and run twice: with
`m = torch` and with `m = tracegrad`, on leaf tensors built from the same NumPy
arrays. For every case we compare
  - the forward values,
  - the grad_fn's name and the names along `next_functions` (torch's graph shape),
  - the gradients of every input under a NON-uniform upstream gradient: the
    loss is ((out + 1) ** 2).mean(), so each output element sends back a
    different value (out.sum() would hide rules that get the weighting wrong),
and, separately, that tracegrad's own `gradcheck` (finite differences in float64)
accepts the op. Hypothesis then varies shapes, broadcasting and strides for the
pointwise, reduction and matmul ops.
torch is only the reference; tracegrad never imports it."""
from __future__ import annotations

import math

import numpy as np
import pytest

import torch  # the reference; part of the test extra

import tracegrad  # noqa: E402
from tracegrad.autograd import gradcheck  # noqa: E402

from hypothesis import given, settings, HealthCheck, strategies as st  # noqa: E402


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
TOL = {np.float64: dict(rtol=1e-7, atol=1e-7), np.float32: dict(rtol=1.3e-6, atol=1e-5)}


def _leaf(m, arr):
    """A leaf that requires grad and shares `arr`'s layout (strides included)."""
    t = m.from_numpy(arr)
    return t.requires_grad_(True)


def _outputs(r):
    """The float tensors an op returned (max(dim) returns values and int indices)."""
    if isinstance(r, (tuple, list)):
        return [o for o in r if o.dtype.is_floating_point]
    return [r]


def _graph_names(t, depth=2):
    """grad_fn name, then the names of its next_functions (AccumulateGrad, None...)."""
    fn = t.grad_fn
    if fn is None:
        return None
    names = [type(fn).__name__]
    if depth > 1:
        names.append(tuple(None if n is None else type(n).__name__ for n, _ in fn.next_functions))
    return names


def _loss(m, outs):
    total = None
    for o in outs:
        term = ((o + 1) ** 2).mean()
        total = term if total is None else total + term
    return total


def _to_np(t):
    return t.detach().numpy() if hasattr(t, "detach") else np.asarray(t)


def assert_close(ours, ref, where, tol):
    if ref.dtype == torch.float32 and tol["rtol"] < TOL[np.float32]["rtol"]:
        tol = TOL[np.float32]  # a float32 result of float64 inputs (x.float(), sum(dtype=...))
    a = np.asarray(_to_np(ours), dtype=np.float64)
    b = ref.detach().double().numpy()
    assert a.shape == b.shape, f"{where}: shape {a.shape} != torch {b.shape}"
    np.testing.assert_allclose(a, b, equal_nan=True, err_msg=where, **tol)


def run_both(fn, arrays, *, check_graph=True, tol=None):
    """Run `fn` in torch and in tracegrad on the same arrays; compare values, graph, grads."""
    tol = tol or TOL[arrays[0].dtype.type]
    t_in = [_leaf(torch, a.copy() if a.flags.c_contiguous else a) for a in arrays]
    g_in = [_leaf(tracegrad, a.copy() if a.flags.c_contiguous else a) for a in arrays]
    try:
        t_out = fn(torch, *t_in)
    except Exception as e:  # torch refuses (a view of a non-viewable layout): so must we
        with pytest.raises(type(e)):
            fn(tracegrad, *g_in)
        return
    g_out = fn(tracegrad, *g_in)
    t_outs, g_outs = _outputs(t_out), _outputs(g_out)
    assert len(t_outs) == len(g_outs)
    shapes = [tuple(a.shape) for a in arrays]
    strides = [a.strides for a in arrays]
    info = f"shapes={shapes} strides={strides} dtype={arrays[0].dtype}"
    for i, (g, t) in enumerate(zip(g_outs, t_outs)):
        assert_close(g, t, f"forward output {i} ({info})", tol)
        if check_graph:
            assert _graph_names(g) == _graph_names(t), \
                f"graph of output {i}: {_graph_names(g)} != torch {_graph_names(t)} ({info})"
            assert g.requires_grad == t.requires_grad
            assert g.is_leaf == t.is_leaf
    t_live = [o for o in t_outs if o.requires_grad]
    g_live = [o for o in g_outs if o.requires_grad]
    if not t_live:
        return
    _loss(torch, t_live).backward()
    _loss(tracegrad, g_live).backward()
    for i, (g, t) in enumerate(zip(g_in, t_in)):
        if t.grad is None:
            assert g.grad is None, f"input {i}: torch gives no grad ({info})"
            continue
        assert g.grad is not None, f"input {i}: no gradient ({info})"
        assert g.grad.dtype.name == str(t.grad.dtype).split(".")[1], f"grad dtype of input {i}"
        assert_close(g.grad, t.grad, f"grad of input {i} ({info})", tol)


# ---------------------------------------------------------------------------
# the cases: name, fn(m, *xs), input shapes, value range
# ---------------------------------------------------------------------------
class Case:
    def __init__(self, name, fn, *shapes, low=-2.0, high=2.0, gradcheck=True, graph=True, values=None, tol=None):
        self.name, self.fn, self.shapes = name, fn, shapes
        self.tol = tol  # for ops that pass values through float32 even on float64 inputs
        self.low, self.high = low, high
        self.gradcheck = gradcheck
        self.graph = graph
        self.values = values  # fixed inputs (ties, zeros) instead of random ones

    def arrays(self, rng, dtype=np.float64):
        if self.values is not None:
            return [np.array(v, dtype=dtype) for v in self.values]
        return [rng.uniform(self.low, self.high, size=s).astype(dtype) for s in self.shapes]

    def __repr__(self):
        return self.name


def _idx(m, *v):
    return m.tensor(list(v), dtype=m.int64)


POS = dict(low=0.5, high=2.0)
UNIT = dict(low=-0.9, high=0.9)
S = (3, 4)

CASES = [
    # ---- pointwise unary
    Case("neg", lambda m, x: -x, S),
    Case("abs", lambda m, x: x.abs(), S),
    Case("abs_at_zero", lambda m, x: x.abs(), values=[[0.0, 1.0, -2.0]], gradcheck=False),
    Case("exp", lambda m, x: x.exp(), S),
    Case("exp2", lambda m, x: x.exp2(), S),
    Case("expm1", lambda m, x: x.expm1(), S),
    Case("log", lambda m, x: x.log(), S, **POS),
    Case("log2", lambda m, x: x.log2(), S, **POS),
    Case("log10", lambda m, x: x.log10(), S, **POS),
    Case("log1p", lambda m, x: x.log1p(), S, **POS),
    Case("sqrt", lambda m, x: x.sqrt(), S, **POS),
    Case("rsqrt", lambda m, x: x.rsqrt(), S, **POS),
    Case("sin", lambda m, x: x.sin(), S),
    Case("cos", lambda m, x: x.cos(), S),
    Case("tan", lambda m, x: x.tan(), S, **UNIT),
    Case("tanh", lambda m, x: x.tanh(), S),
    Case("sigmoid", lambda m, x: x.sigmoid(), S),
    Case("torch.sigmoid", lambda m, x: m.sigmoid(x), S),
    Case("asin", lambda m, x: x.asin(), S, **UNIT),
    Case("acos", lambda m, x: x.acos(), S, **UNIT),
    Case("atan", lambda m, x: x.atan(), S),
    Case("sinh", lambda m, x: x.sinh(), S),
    Case("cosh", lambda m, x: x.cosh(), S),
    Case("erf", lambda m, x: x.erf(), S),
    Case("relu", lambda m, x: x.relu(), S),
    Case("torch.relu", lambda m, x: m.relu(x), S),
    Case("relu_at_zero", lambda m, x: x.relu(), values=[[0.0, 1.0, -1.0]], gradcheck=False),
    Case("reciprocal", lambda m, x: x.reciprocal(), S, **POS),
    Case("square", lambda m, x: x.square(), S),
    Case("sign", lambda m, x: x.sign(), S, gradcheck=False),
    Case("floor", lambda m, x: x.floor(), S, gradcheck=False),
    Case("ceil", lambda m, x: x.ceil(), S, gradcheck=False),
    Case("trunc", lambda m, x: x.trunc(), S, gradcheck=False),
    Case("round", lambda m, x: x.round(), S, gradcheck=False),
    Case("round_decimals", lambda m, x: x.round(decimals=1), S, gradcheck=False),
    Case("frac", lambda m, x: x.frac(), S, gradcheck=False),
    Case("clamp", lambda m, x: x.clamp(-0.5, 0.5), S),
    Case("clamp_min", lambda m, x: x.clamp(min=-0.5), S),
    Case("clamp_min_fn", lambda m, x: x.clamp_min(-0.5), S),
    Case("clamp_max", lambda m, x: x.clamp(max=0.5), S),
    Case("clamp_boundary", lambda m, x: x.clamp(0.0, 1.0), values=[[0.0, 1.0, 0.5, 2.0]], gradcheck=False),
    Case("clamp_tensor", lambda m, x, lo, hi: x.clamp(lo, hi), S, S, S),
    Case("clamp_tensor_min", lambda m, x, lo: x.clamp(min=lo), S, (4,)),
    Case("clip", lambda m, x: m.clip(x, -1.0, 1.0), S),
    Case("to_float32", lambda m, x: x.to(m.float32), S, gradcheck=False, tol=TOL[np.float32]),
    Case("float_to_double", lambda m, x: x.float().double(), S, gradcheck=False, tol=TOL[np.float32]),
    # ---- pointwise binary, with broadcasting and scalars
    Case("add", lambda m, x, y: x + y, S, S),
    Case("add_broadcast", lambda m, x, y: x + y, (3, 1), (1, 4)),
    Case("add_rank", lambda m, x, y: x + y, (2, 3, 4), (4,)),
    Case("add_scalar", lambda m, x: x + 2, S),
    Case("radd_scalar", lambda m, x: 2 + x, S),
    Case("add_alpha", lambda m, x, y: m.add(x, y, alpha=3), S, (4,)),
    Case("add_alpha_scalar", lambda m, x: m.add(x, 2, alpha=3), S),
    Case("sub", lambda m, x, y: x - y, S, (3, 1)),
    Case("sub_scalar", lambda m, x: x - 2, S),
    Case("rsub_scalar", lambda m, x: 2 - x, S),
    Case("sub_alpha", lambda m, x, y: m.sub(x, y, alpha=2), S, S),
    Case("mul", lambda m, x, y: x * y, S, S),
    Case("mul_broadcast", lambda m, x, y: x * y, (2, 1, 4), (3, 1)),
    Case("mul_scalar", lambda m, x: x * 3, S),
    Case("rmul_scalar", lambda m, x: 3 * x, S),
    Case("mul_self", lambda m, x: x * x, S),
    Case("div", lambda m, x, y: x / y, S, (4,), low=0.5, high=2.0),
    Case("div_scalar", lambda m, x: x / 3, S),
    Case("rdiv_scalar", lambda m, x: 3 / x, S, **POS),
    Case("div_floor", lambda m, x, y: m.div(x, y, rounding_mode="floor"), S, S, gradcheck=False, **POS),
    Case("div_trunc", lambda m, x, y: m.div(x, y, rounding_mode="trunc"), S, S, gradcheck=False, **POS),
    Case("pow_scalar", lambda m, x: x ** 3, S),
    Case("pow_scalar_frac", lambda m, x: x ** 0.5, S, **POS),
    Case("pow_scalar_zero", lambda m, x: x ** 0, S),
    Case("pow_tensor", lambda m, x, y: x ** y, S, S, **POS),
    Case("pow_tensor_broadcast", lambda m, x, y: m.pow(x, y), S, (4,), **POS),
    Case("rpow_scalar", lambda m, x: 2 ** x, S),
    Case("maximum", lambda m, x, y: m.maximum(x, y), S, S),
    Case("minimum", lambda m, x, y: m.minimum(x, y), S, (4,)),
    Case("maximum_ties", lambda m, x, y: m.maximum(x, y), values=[[1.0, 2.0, 3.0], [1.0, 1.0, 3.0]],
         gradcheck=False),
    Case("remainder", lambda m, x, y: m.remainder(x, y), S, S, **POS),
    Case("remainder_scalar", lambda m, x: x % 0.7, S),
    Case("fmod", lambda m, x, y: m.fmod(x, y), S, S, **POS),
    Case("fmod_scalar", lambda m, x: m.fmod(x, 0.7), S),
    Case("atan2", lambda m, x, y: m.atan2(x, y), S, S),
    Case("lerp", lambda m, x, y: m.lerp(x, y, 0.3), S, S),
    Case("lerp_high_weight", lambda m, x, y: m.lerp(x, y, 0.8), S, S),
    Case("lerp_tensor", lambda m, x, y, w: m.lerp(x, y, w), S, S, S),
    Case("where", lambda m, x, y: m.where(x > 0, x, y), S, S),
    Case("where_scalar", lambda m, x: m.where(x > 0, x, 0.0), S),
    Case("where_scalar_first", lambda m, x: m.where(x > 0, 1.0, x), S),
    Case("where_broadcast", lambda m, x, y: m.where(x > 0, x, y), S, (4,)),
    Case("masked_fill", lambda m, x: x.masked_fill(x > 0, 2.0), S),
    Case("masked_fill_tensor", lambda m, x, v: x.masked_fill(x > 0, v), S, ()),
    Case("mixed_dtype", lambda m, x, y: x * y.float(), S, S, gradcheck=False, tol=TOL[np.float32]),
    # ---- reductions
    Case("sum", lambda m, x: x.sum(), S),
    Case("sum_dim", lambda m, x: x.sum(1), S),
    Case("sum_dim_keepdim", lambda m, x: x.sum(0, keepdim=True), S),
    Case("sum_dims", lambda m, x: x.sum((0, 2)), (2, 3, 4)),
    Case("sum_neg_dim", lambda m, x: m.sum(x, dim=-1), (2, 3, 4)),
    Case("sum_dtype", lambda m, x: x.sum(dtype=m.float32), S, gradcheck=False, tol=TOL[np.float32]),
    Case("nansum", lambda m, x: x.nansum(), S),
    Case("mean", lambda m, x: x.mean(), S),
    Case("mean_dim", lambda m, x: x.mean(1), S),
    Case("mean_dims_keepdim", lambda m, x: x.mean((0, 1), keepdim=True), (2, 3, 4)),
    Case("prod", lambda m, x: x.prod(), S),
    Case("prod_dim", lambda m, x: x.prod(1), S),
    Case("prod_dim_keepdim", lambda m, x: x.prod(0, keepdim=True), S),
    Case("prod_one_zero", lambda m, x: x.prod(), values=[[2.0, 0.0, 3.0]]),
    Case("prod_two_zeros", lambda m, x: x.prod(), values=[[2.0, 0.0, 0.0]]),
    Case("prod_dim_zero", lambda m, x: x.prod(1), values=[[[2.0, 0.0, 3.0], [1.0, 2.0, 3.0]]]),
    Case("max", lambda m, x: x.max(), S),
    Case("min", lambda m, x: x.min(), S),
    Case("max_ties", lambda m, x: x.max(), values=[[1.0, 3.0, 3.0, 2.0]], gradcheck=False),
    Case("max_dim", lambda m, x: x.max(1), S),
    Case("max_dim_keepdim", lambda m, x: x.max(0, keepdim=True), S),
    Case("min_dim", lambda m, x: x.min(-1), S),
    Case("max_dim_values", lambda m, x: x.max(dim=1).values, S),
    Case("torch.max_dim", lambda m, x: m.max(x, 1)[0], S),
    Case("amax", lambda m, x: x.amax(), S),
    Case("amax_dim", lambda m, x: x.amax(1), S),
    Case("amin_dims", lambda m, x: x.amin((0, 1)), (2, 3, 4)),
    Case("amax_ties", lambda m, x: x.amax(1), values=[[[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]], gradcheck=False),
    Case("var", lambda m, x: x.var(), S),
    Case("var_dim", lambda m, x: x.var(1), S),
    Case("var_correction0", lambda m, x: x.var(0, correction=0, keepdim=True), S),
    Case("var_unbiased_false", lambda m, x: x.var(1, unbiased=False), S),
    Case("std", lambda m, x: x.std(), S),
    Case("std_dim", lambda m, x: x.std(1, keepdim=True), S),
    Case("std_dims", lambda m, x: m.std(x, (0, 2)), (2, 3, 4)),
    Case("norm", lambda m, x: x.norm(), S),
    Case("norm_dim", lambda m, x: x.norm(dim=1), S),
    Case("norm_p1", lambda m, x: x.norm(1), S),
    Case("norm_p3", lambda m, x: x.norm(3, dim=0, keepdim=True), S),
    Case("norm_inf", lambda m, x: x.norm(float("inf")), S),
    Case("norm_zero_vector", lambda m, x: x.norm(), values=[[0.0, 0.0, 0.0]], gradcheck=False),
    Case("logsumexp", lambda m, x: x.logsumexp(1), S),
    Case("logsumexp_dims", lambda m, x: m.logsumexp(x, (0, 1), keepdim=True), (2, 3, 4)),
    Case("cumsum", lambda m, x: x.cumsum(1), S),
    Case("cumsum_dim0", lambda m, x: m.cumsum(x, 0), S),
    Case("cumprod", lambda m, x: x.cumprod(1), S),
    # ---- linear algebra
    Case("mm", lambda m, a, b: a.mm(b), (3, 4), (4, 5)),
    Case("matmul_2d", lambda m, a, b: a @ b, (3, 4), (4, 2)),
    Case("mm_t", lambda m, a, b: a @ b.t(), (3, 4), (5, 4)),
    Case("mv", lambda m, a, v: a.mv(v), (3, 4), (4,)),
    Case("matmul_mv", lambda m, a, v: a @ v, (3, 4), (4,)),
    Case("matmul_vm", lambda m, v, a: v @ a, (3,), (3, 4)),
    Case("dot", lambda m, u, v: u.dot(v), (4,), (4,)),
    Case("matmul_dot", lambda m, u, v: m.matmul(u, v), (4,), (4,)),
    Case("bmm", lambda m, a, b: a.bmm(b), (2, 3, 4), (2, 4, 5)),
    Case("matmul_3d_2d", lambda m, a, b: a @ b, (2, 3, 4), (4, 5)),
    Case("matmul_3d_1d", lambda m, a, v: a @ v, (2, 3, 4), (4,)),
    Case("matmul_1d_3d", lambda m, v, a: v @ a, (3,), (2, 3, 4)),
    Case("matmul_2d_3d", lambda m, a, b: a @ b, (3, 4), (2, 4, 5), graph=False),
    Case("matmul_3d_3d", lambda m, a, b: a @ b, (2, 3, 4), (2, 4, 5), graph=False),
    Case("matmul_broadcast_batch", lambda m, a, b: a @ b, (2, 1, 3, 4), (3, 4, 2), graph=False),
    Case("outer", lambda m, u, v: m.outer(u, v), (3,), (4,)),
    Case("addmm", lambda m, c, a, b: m.addmm(c, a, b), (5,), (3, 4), (4, 5)),
    Case("addmm_scaled", lambda m, c, a, b: m.addmm(c, a, b, beta=0.5, alpha=2.0), (3, 5), (3, 4), (4, 5)),
    # ---- views and movement
    Case("view", lambda m, x: x.view(12), S),
    Case("view_infer", lambda m, x: x.view(-1, 2), S),
    Case("view_as", lambda m, x, y: x.view_as(y), S, (4, 3)),
    Case("reshape_view", lambda m, x: x.reshape(2, 6), S),
    Case("reshape_copy", lambda m, x: x.t().reshape(12), S),
    Case("flatten", lambda m, x: x.flatten(), (2, 3, 4)),
    Case("flatten_copy", lambda m, x: x.transpose(0, 2).flatten(1), (2, 3, 4)),
    Case("unflatten", lambda m, x: x.unflatten(1, (2, 2)), S),
    Case("permute", lambda m, x: x.permute(2, 0, 1), (2, 3, 4)),
    Case("transpose", lambda m, x: x.transpose(0, 2), (2, 3, 4)),
    Case("t", lambda m, x: x.t(), S),
    Case("T", lambda m, x: x.T, S),
    Case("mT", lambda m, x: x.mT, (2, 3, 4)),
    Case("movedim", lambda m, x: x.movedim(0, 2), (2, 3, 4)),
    Case("swapaxes", lambda m, x: x.swapaxes(0, 1), S),
    Case("expand", lambda m, x: x.expand(2, 3, 4), (3, 1)),
    Case("expand_same", lambda m, x: x.expand(3, 4), S),
    Case("expand_as", lambda m, x, y: x.expand_as(y), (4,), S),
    Case("broadcast_to", lambda m, x: x.broadcast_to((2, 4)), (4,)),
    Case("unsqueeze", lambda m, x: x.unsqueeze(1), S),
    Case("squeeze", lambda m, x: x.squeeze(), (3, 1, 4)),
    Case("squeeze_dim", lambda m, x: x.squeeze(1), (3, 1, 4)),
    Case("squeeze_noop", lambda m, x: x.squeeze(0), S),
    Case("squeeze_dims", lambda m, x: x.squeeze((0, 2)), (1, 3, 1)),
    Case("select", lambda m, x: x[1], S),
    Case("select_dim", lambda m, x: x.select(1, -1), S),
    Case("slice", lambda m, x: x[1:], S),
    Case("slice_step", lambda m, x: x[:, ::2], S),
    Case("slice_full", lambda m, x: x[:], S),
    Case("index_mixed_basic", lambda m, x: x[1, 1:3], S),
    Case("index_none_ellipsis", lambda m, x: x[None, ..., 0], (2, 3, 4)),
    Case("ellipsis", lambda m, x: x[...], S),
    Case("narrow", lambda m, x: x.narrow(1, 1, 2), S),
    Case("as_strided", lambda m, x: x.as_strided((2, 2), (1, 2)), S),
    Case("as_strided_overlap", lambda m, x: x.as_strided((3, 3), (1, 1)), (6,)),
    Case("diagonal", lambda m, x: x.diagonal(), S),
    Case("diagonal_offset", lambda m, x: x.diagonal(1), S),
    Case("split", lambda m, x: x.split(2, 1), S),
    Case("split_sizes", lambda m, x: x.split([1, 3], 1), S),
    Case("split_unused", lambda m, x: x.split(2)[0], (5, 2)),
    Case("chunk", lambda m, x: x.chunk(2), (4, 3)),
    Case("tensor_split", lambda m, x: x.tensor_split(2), S),
    Case("unbind", lambda m, x: x.unbind(1), S),
    Case("unbind_one_used", lambda m, x: x.unbind(0)[1], S),
    Case("unfold", lambda m, x: x.unfold(1, 2, 1), S),
    Case("clone", lambda m, x: x.clone(), S),
    Case("contiguous", lambda m, x: x.t().contiguous(), S),
    Case("flip", lambda m, x: x.flip(0), S),
    Case("flip_dims", lambda m, x: x.flip(0, 2), (2, 3, 4)),
    Case("fliplr", lambda m, x: x.fliplr(), S),
    Case("repeat", lambda m, x: x.repeat(2, 1, 3), S),
    Case("tile", lambda m, x: x.tile(2), S),
    Case("cat", lambda m, x, y: m.cat([x, y]), S, (2, 4)),
    Case("cat_dim", lambda m, x, y: m.cat([x, y, x], dim=1), S, (3, 2)),
    Case("cat_const", lambda m, x: m.cat([x, m.zeros(1, 4, dtype=x.dtype)]), S),
    Case("stack", lambda m, x, y: m.stack([x, y], 1), S, S),
    Case("hstack", lambda m, x, y: m.hstack([x, y]), S, S),
    Case("vstack", lambda m, x, y: m.vstack([x, y]), S, S),
    # ---- indexing
    Case("index_tensor", lambda m, x: x[_idx(m, 0, 2, 0)], S),
    Case("index_list", lambda m, x: x[[2, 0]], S),
    Case("index_two_tensors", lambda m, x: x[_idx(m, 0, 2), _idx(m, 1, 3)], S),
    Case("index_with_slice", lambda m, x: x[_idx(m, 2, 2), 1:], S),
    Case("index_mask", lambda m, x: x[x > 0], S),
    Case("index_mask_row", lambda m, x: x[m.tensor([True, False, True])], S),
    Case("index_select", lambda m, x: x.index_select(1, _idx(m, 0, 3, 3)), S),
    Case("gather", lambda m, x: x.gather(1, _idx(m, 0, 3, 3, 1, 2, 2).view(3, 2)), S),
    Case("scatter", lambda m, x, s: x.scatter(1, _idx(m, 0, 3, 2, 1, 2, 0).view(3, 2), s), S, (3, 2)),
    Case("scatter_value", lambda m, x: x.scatter(0, _idx(m, 1, 0, 2, 1).view(1, 4), 5.0), S),
    Case("scatter_add", lambda m, x, s: x.scatter_add(1, _idx(m, 0, 0, 2, 2, 1, 1).view(3, 2), s), S, (3, 2)),
    Case("masked_select", lambda m, x: x.masked_select(x > 0), S),
    Case("masked_select_broadcast", lambda m, x, y: x.masked_select(y > 0), (4,), S),
    Case("take", lambda m, x: x.take(_idx(m, 0, 5, 5, 11)), S),
    Case("index_put", lambda m, x, v: x.index_put((_idx(m, 0, 2),), v), S, (4,)),
    Case("index_put_accumulate", lambda m, x, v: x.index_put((_idx(m, 0, 0),), v, accumulate=True), S, (2, 4)),
    Case("index_fill", lambda m, x: x.index_fill(1, _idx(m, 0, 2), -1.0), S),
    Case("index_add", lambda m, x, s: x.index_add(0, _idx(m, 0, 2, 0), s), S, S),
]

IDS = [c.name for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_grad_matches_torch(case):
    """Values, graph names and gradients agree with torch (float64, contiguous)."""
    rng = np.random.default_rng(abs(hash(case.name)) % 2**32)
    run_both(case.fn, case.arrays(rng), check_graph=case.graph, tol=case.tol)


@pytest.mark.parametrize("case", [c for c in CASES if c.values is None], ids=[c.name for c in CASES if c.values is None])
def test_grad_matches_torch_float32_noncontiguous(case):
    """The same in float32, with every input a non-contiguous leaf (a strided view)."""
    rng = np.random.default_rng(1 + abs(hash(case.name)) % 2**32)
    arrays = []
    for a in case.arrays(rng, np.float32):
        # a view with doubled strides in every dim (and reversed order for 2-D):
        big = np.zeros(tuple(2 * n for n in a.shape) or (), np.float32)
        view = big[tuple(slice(None, None, 2) for _ in a.shape)] if a.ndim else big
        view[...] = a
        arrays.append(view)
    run_both(case.fn, arrays, check_graph=False)


@pytest.mark.parametrize("case", [c for c in CASES if c.gradcheck], ids=[c.name for c in CASES if c.gradcheck])
def test_gradcheck(case):
    """tracegrad's analytical gradients agree with finite differences (float64)."""
    rng = np.random.default_rng(2 + abs(hash(case.name)) % 2**32)
    xs = [tracegrad.tensor(a, dtype=tracegrad.float64, requires_grad=True) for a in case.arrays(rng)]
    assert gradcheck(lambda *a: case.fn(tracegrad, *a), xs)


# ---------------------------------------------------------------------------
# hypothesis: shapes, broadcasting, strides
# ---------------------------------------------------------------------------
def _shape(min_dims=0, max_dims=3):
    return st.lists(st.integers(1, 4), min_size=min_dims, max_size=max_dims).map(tuple)


@st.composite
def broadcast_pair(draw):
    out = draw(_shape(1, 3))

    def sub():
        k = draw(st.integers(0, len(out)))
        return tuple(1 if draw(st.booleans()) else n for n in out[len(out) - k:])

    return sub(), sub()


@st.composite
def array(draw, shape, low=-2.0, high=2.0):
    """A float32 array of `shape`, possibly a non-contiguous view (transposed or strided)."""
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    a = rng.uniform(low, high, size=shape).astype(np.float32)
    layout = draw(st.sampled_from(["c", "strided", "transposed"]))
    if layout == "strided" and a.ndim:
        big = np.zeros(tuple(2 * n for n in shape), np.float32)
        v = big[tuple(slice(None, None, 2) for _ in shape)]
        v[...] = a
        return v
    if layout == "transposed" and a.ndim >= 2:
        return np.ascontiguousarray(a.T).T
    return a


BINARY = {
    "add": lambda m, x, y: x + y,
    "sub": lambda m, x, y: x - y,
    "mul": lambda m, x, y: x * y,
    "div": lambda m, x, y: x / (y.abs() + 0.5),
    "maximum": lambda m, x, y: m.maximum(x, y),
    "minimum": lambda m, x, y: m.minimum(x, y),
    "pow": lambda m, x, y: (x.abs() + 0.5) ** y,
    "atan2": lambda m, x, y: m.atan2(x, y),
    "where": lambda m, x, y: m.where(x > y, x, y),
}
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # examples: the conftest profile


@settings(**SETTINGS)
@given(name=st.sampled_from(sorted(BINARY)), shapes=broadcast_pair(), data=st.data())
def test_hypothesis_binary_broadcast(name, shapes, data):
    a = data.draw(array(shapes[0]))
    b = data.draw(array(shapes[1]))
    run_both(BINARY[name], [a, b], check_graph=False)


UNARY = {
    "exp": lambda m, x: x.exp(), "tanh": lambda m, x: x.tanh(), "sigmoid": lambda m, x: x.sigmoid(),
    "log": lambda m, x: (x.abs() + 0.1).log(), "relu": lambda m, x: x.relu(), "abs": lambda m, x: x.abs(),
    "sin": lambda m, x: x.sin(), "sqrt": lambda m, x: (x * x + 0.1).sqrt(), "pow3": lambda m, x: x ** 3,
    "clamp": lambda m, x: x.clamp(-1, 1), "neg": lambda m, x: -x, "erf": lambda m, x: x.erf(),
}


@settings(**SETTINGS)
@given(name=st.sampled_from(sorted(UNARY)), shape=_shape(0, 4), data=st.data())
def test_hypothesis_unary(name, shape, data):
    run_both(UNARY[name], [data.draw(array(shape))], check_graph=False)


REDUCE = {
    "sum": lambda m, x, d, k: x.sum(d, keepdim=k),
    "mean": lambda m, x, d, k: x.mean(d, keepdim=k),
    "amax": lambda m, x, d, k: x.amax(d, keepdim=k),
    "max": lambda m, x, d, k: x.max(d, keepdim=k)[0],
    "std": lambda m, x, d, k: x.std(d, keepdim=k),
    "var": lambda m, x, d, k: x.var(d, keepdim=k, correction=0),
    "norm": lambda m, x, d, k: x.norm(dim=d, keepdim=k),
    "logsumexp": lambda m, x, d, k: x.logsumexp(d, keepdim=k),
    "prod": lambda m, x, d, k: x.prod(d, keepdim=k),
    "cumsum": lambda m, x, d, k: x.cumsum(d),
}


@settings(**SETTINGS)
@given(name=st.sampled_from(sorted(REDUCE)), shape=_shape(1, 3), keepdim=st.booleans(), data=st.data())
def test_hypothesis_reductions(name, shape, keepdim, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(array(shape))
    fn = REDUCE[name]
    run_both(lambda m, t: fn(m, t, dim, keepdim), [x], check_graph=False,
             tol=dict(rtol=1e-4, atol=1e-5))


@settings(**SETTINGS)
@given(batch=_shape(0, 2), n=st.integers(1, 4), k=st.integers(1, 4), p=st.integers(1, 4),
       a_vec=st.booleans(), b_vec=st.booleans(), data=st.data())
def test_hypothesis_matmul(batch, n, k, p, a_vec, b_vec, data):
    sa = (k,) if a_vec else batch + (n, k)
    bb = batch[data.draw(st.integers(0, len(batch))):]
    sb = (k,) if b_vec else bb + (k, p)
    a = data.draw(array(sa))
    b = data.draw(array(sb))
    run_both(lambda m, x, y: x @ y, [a, b], check_graph=False, tol=dict(rtol=1e-4, atol=1e-5))


@settings(**SETTINGS)
@given(shape=_shape(1, 3), data=st.data())
def test_hypothesis_views(shape, data):
    """A random chain of views and copies, then a pointwise op: gradients reach the leaf."""
    x = data.draw(array(shape))
    ops = data.draw(st.lists(st.sampled_from(["t", "flip", "unsq", "sq", "slice", "expand", "perm", "reshape"]),
                             max_size=4))

    def fn(m, t):
        for op in ops:
            if op == "t" and t.ndim >= 2:
                t = t.transpose(0, -1)
            elif op == "flip" and t.ndim:
                t = t.flip(0)
            elif op == "unsq":
                t = t.unsqueeze(0)
            elif op == "sq":
                t = t.squeeze()
            elif op == "slice" and t.ndim and t.shape[0] > 1:
                t = t[1:]
            elif op == "expand":
                t = t.expand((2,) + tuple(t.shape))
            elif op == "perm" and t.ndim:
                t = t.permute(*reversed(range(t.ndim)))
            elif op == "reshape":
                t = t.reshape(-1)
        return t * t

    run_both(fn, [x], check_graph=True)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumprod_gradient_with_zeros_first_and_second_order(dim):
    """cumprod's backward splits each row at its first zero (before it: divide by x; at it: a
    cumprod with the zero as 1; after it: 0). Rows with none, one and several zeros, and the
    second derivative through create_graph, all against torch."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal((4, 6))
    a[1, 2] = 0.0
    a[2, [1, 4]] = 0.0
    a[3, 0] = 0.0
    up = rng.standard_normal((4, 6))
    x, tx = tracegrad.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    (g,) = tracegrad.autograd.grad((x.cumprod(dim) * tracegrad.tensor(up)).sum(), x, create_graph=True)
    (tg,) = torch.autograd.grad((tx.cumprod(dim) * torch.tensor(up)).sum(), tx, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), tg.detach().numpy(), rtol=1e-12, atol=1e-12)
    (h,) = tracegrad.autograd.grad((g * g).sum(), x)
    (th,) = torch.autograd.grad((tg * tg).sum(), tx)
    np.testing.assert_allclose(h.numpy(), th.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("vals", [[0.0, 2, 3], [1.0, 0, 3, 0.5], [1.0, 2, 0, 0, 4]])
def test_cumprod_second_derivative_through_a_zero(vals):
    """Past a row's first zero the gradient is 0 in value but not in its derivative with respect to
    that zero: create_graph must differentiate a formula that is smooth in x."""
    res = []
    for L in (tracegrad, torch):
        x = L.tensor(vals, dtype=L.float64, requires_grad=True)
        (g,) = L.autograd.grad(L.cumprod(x, 0).sum(), x, create_graph=True)
        (h,) = L.autograd.grad((g * L.arange(1.0, len(vals) + 1, dtype=L.float64)).sum(), x)
        res.append(h.numpy())
    np.testing.assert_allclose(res[0], res[1], rtol=1e-12)

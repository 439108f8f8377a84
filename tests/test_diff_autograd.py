"""Differential autograd checks against torch: subgradients at edge values (ties, zeros, NaN),
double backward through them, and the engine's and grad modes' behaviour around them.

Each scenario is written once as `fn(m)` and run with `m = torch` and `m = tracegrad`
(tests/side_by_side.py compares values, dtypes, requires_grad and raised errors).
torch is only the reference; tracegrad never imports it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import tracegrad
from side_by_side import same, raises_same
from util import make_pair, assert_same, describe

NAN = float("nan")


def _grads(m, out, inputs, create_graph=False):
    """d(out weighted non-uniformly)/d(inputs); None where an input is unused."""
    w = m.arange(1, out.numel() + 1, dtype=out.dtype).reshape(out.shape)
    return m.autograd.grad((out * w).sum(), inputs, allow_unused=True, create_graph=create_graph)


def _leaves(m, vals, dtype):
    return [m.tensor(v, dtype=getattr(m, dtype), requires_grad=True) for v in vals]


# ---- subgradients at edge values ------------------------------------------------------------
EDGE = {
    # std of a constant slice, and of one element with correction=0: torch masks 0/0 to 0
    "std_constant": (lambda m, x: x.std(), [[1.0, 1.0, 1.0]]),
    "std_dim_constant_row": (lambda m, x: x.std(1), [[[2.0, 2.0], [1.0, 3.0]]]),
    "std_one_element_corr0": (lambda m, x: x.std(correction=0), [[1.5]]),
    "std_mean_constant": (lambda m, x: m.std_mean(x, 0)[0], [[[1.0, 2.0], [1.0, 5.0]]]),
    # atan2 at the origin: 0, not NaN
    "atan2_origin": (lambda m, y, x: m.atan2(y, x), [[0.0, 1.0, 0.0], [0.0, 0.0, -2.0]]),
    # fmax/fmin: the chosen side gets it all at ties, NaN loses to a number
    "fmax_ties": (lambda m, x, y: m.fmax(x, y), [[1.0, 2.0, 3.0], [1.0, 3.0, 1.0]]),
    "fmin_ties": (lambda m, x, y: m.fmin(x, y), [[1.0, 2.0, 3.0], [1.0, 3.0, 1.0]]),
    "fmax_nan": (lambda m, x, y: m.fmax(x, y), [[NAN, 2.0, NAN], [1.0, NAN, NAN]]),
    "fmin_nan": (lambda m, x, y: m.fmin(x, y), [[NAN, 2.0, NAN], [1.0, NAN, NAN]]),
    # clamp with tensor bounds: no half-and-half at ties; with min > max the result is max
    "clamp_tensor_ties": (lambda m, x, lo, hi: x.clamp(lo, hi),
                          [[0.0, 1.0, 0.5, 2.0], [0.0, 0.0, 0.0, 2.0], [1.0, 1.0, 0.5, 2.0]]),
    "clamp_tensor_crossed": (lambda m, x, lo, hi: x.clamp(lo, hi),
                             [[0.0, 1.0, 3.0, 2.0], [2.0, 2.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0]]),
    "clamp_tensor_nan": (lambda m, x, lo, hi: x.clamp(lo, hi),
                         [[NAN, 1.0, 5.0], [0.0, NAN, 0.0], [2.0, 2.0, NAN]]),
    "clamp_tensor_min_only": (lambda m, x, lo: x.clamp(min=lo), [[0.0, 1.0, -1.0], [0.0, 0.0, 0.0]]),
    "clamp_tensor_max_only": (lambda m, x, hi: m.clamp(x, max=hi), [[0.0, 1.0, -1.0], [0.0, 0.0, 0.0]]),
    # the scalar forms torch defines at the boundary, kept here next to the tensor ones
    "clamp_scalar_ties": (lambda m, x: x.clamp(0.0, 1.0), [[0.0, 1.0, 0.5, -1.0]]),
    "maximum_ties": (lambda m, x, y: m.maximum(x, y), [[1.0, 2.0], [1.0, 3.0]]),
    "amax_ties": (lambda m, x: x.amax(1), [[[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]]),
    "max_ties": (lambda m, x: x.max(), [[3.0, 1.0, 3.0]]),
    "abs_zero": (lambda m, x: x.abs(), [[0.0, -0.0, 1.0]]),
    "sqrt_zero": (lambda m, x: x.sqrt(), [[0.0, 4.0]]),
    "pow_zero_base": (lambda m, x, y: x ** y, [[0.0, 0.0, 0.0, 2.0], [0.0, 1.0, 2.0, 0.0]]),
    "norm_zero": (lambda m, x: x.norm(), [[0.0, 0.0]]),
    "where_nan_branch": (lambda m, x: m.where(x > 0, x, x.log()), [[1.0, -1.0]]),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(EDGE))
def test_edge_subgradients(name, dtype):
    fn, vals = EDGE[name]

    def run(m):
        xs = _leaves(m, vals, dtype)
        out = fn(m, *xs)
        return [out] + [g if g is not None else "unused" for g in _grads(m, out, xs)]

    same(run)


# a few of them twice: the second derivative through the masked rules
DOUBLE_EDGE = ["std_dim_constant_row", "atan2_origin", "fmax_ties", "clamp_tensor_ties", "clamp_tensor_crossed"]


@pytest.mark.parametrize("name", DOUBLE_EDGE)
def test_edge_double_backward(name):
    fn, vals = EDGE[name]

    def run(m):
        xs = _leaves(m, vals, "float64")
        gs = _grads(m, fn(m, *xs) ** 2, xs, create_graph=True)
        total = sum((g ** 2).sum() for g in gs if g is not None and g.requires_grad)
        if not isinstance(total, (torch.Tensor, tracegrad.Tensor)):
            return gs
        return list(gs) + [g if g is not None else "unused" for g in m.autograd.grad(total, xs, allow_unused=True)]

    same(run)


def test_fmax_fmin_graph_and_dtypes():
    def run(m):
        a = m.tensor([[NAN, 1.0, 2.0]], requires_grad=True)
        b = m.tensor([[1.0], [NAN]], dtype=m.float64, requires_grad=True)
        r, s = m.fmax(a, b), m.fmin(a, b)
        return (r, s, type(r.grad_fn).__name__, type(s.grad_fn).__name__,
                m.fmax(m.tensor([1, 5]), m.tensor([3, 2])), list(_grads(m, r + s, [a, b])))

    same(run)
    raises_same(lambda m: m.fmax(m.tensor([1.0]), 2.0))


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(["contig", "transposed", "sliced", "expanded"]), st.sampled_from(["float32", "float64"]),
       st.integers(0, 2**31 - 1))
def test_clamp_tensor_bounds_layouts(layout, dtype, seed):
    """x.clamp(lo, hi) with broadcast, strided bounds, on values rounded so ties happen."""
    rng = np.random.default_rng(seed)
    pairs = [make_pair((3, 4), dtype, layout, rng), make_pair((4,), dtype, "sliced", rng),
             make_pair((3, 1), dtype, "contig", rng)]
    got = {}
    for k, m in ((0, tracegrad), (1, torch)):
        xs = [p[k].detach().mul(2).round().div(2).requires_grad_(True) for p in pairs]
        out = xs[0].clamp(xs[1], xs[2])
        got[m] = [out] + list(_grads(m, out, xs))
    assert_same(got[tracegrad], got[torch], describe("clamp(lo, hi)", [p[0] for p in pairs], seed, layout=layout),
                strides=False)


# ---- engine and grad-mode behaviour ------------------------------------------------------------
def test_saved_input_sharing_the_written_version_counter():
    """y.mul_(y.detach()) saves the detached alias at its version before the write: backward must
    then find it modified, as torch does (a later in-place op too, with the same numbers)."""
    def alias(m):
        x = m.ones(2, requires_grad=True)
        y = x * 2
        y.add_(1)
        y.mul_(y.detach())
        y.sum().backward()

    def later_write(m):
        x = m.tensor([0.3, 1.0], requires_grad=True)
        y = x * 2
        y.add_(1)
        y.mul_(y.detach() * 1)
        z = y * y
        y[0] = 0.0
        z.sum().backward()

    raises_same(alias)
    raises_same(later_write)

    def fine(m):  # a copy is not an alias: no error, torch's gradient
        x = m.tensor([0.3, 1.0], requires_grad=True)
        y = x * 2
        y.mul_(y.detach().clone())
        y.sigmoid_()
        y.sum().backward()
        return x.grad

    same(fine)


def test_requires_grad_and_grad_assignment_messages():
    def nonleaf(flag):
        def run(m):
            x = m.ones(2, requires_grad=True)
            (x * 2).requires_grad = flag
        return run

    raises_same(nonleaf(False))
    raises_same(nonleaf(True))
    raises_same(lambda m: setattr(m.ones(2, 3, requires_grad=True), "grad", m.ones(3, 2)))
    for dt in ("float64", "float16", "int64"):
        raises_same(lambda m: setattr(m.ones(2, requires_grad=True), "grad", m.ones(2, dtype=getattr(m, dt))))


@pytest.mark.parametrize("mode", ["no_grad", "enable_grad", "inference_mode", "set_grad_enabled"])
def test_grad_mode_decorates_generators(mode):
    """A decorated generator runs its body in the mode at every resume, and the caller's mode is
    back between yields (torch wraps generator functions specially)."""
    def run(m):
        deco = {"no_grad": m.no_grad(), "enable_grad": m.enable_grad(), "inference_mode": m.inference_mode(),
                "set_grad_enabled": m.set_grad_enabled(False)}[mode]

        @deco
        def gen(a):
            got = yield (a * 2).requires_grad, m.is_grad_enabled()
            yield got, m.is_grad_enabled(), (a * 3).requires_grad
            return "done"

        x = m.ones(2, requires_grad=True)
        seen = []
        with m.set_grad_enabled(mode != "enable_grad"):
            g = gen(x)
            seen.append(next(g))
            seen.append(m.is_grad_enabled())
            seen.append(g.send("sent"))
            try:
                next(g)
            except StopIteration as e:
                seen.append(e.value)
        seen.append(m.is_grad_enabled())
        return seen

    same(run)


# ---- einsum has a gradient ------------------------------------------------------------------------
EINSUM = [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("i,i->", [(4,), (4,)]),
    ("ii->i", [(3, 3)]), ("ii", [(3, 3)]), ("ij->ji", [(2, 3)]), ("ji", [(2, 3)]), ("i,j->ij", [(2,), (3,)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]), ("...ij->...", [(2, 3, 4)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]), ("iij->j", [(2, 2, 3)]), ("ik,kj", [(2, 3), (3, 4)]),
    ("a...,a...->...", [(2, 3), (2, 1)]),
]


@pytest.mark.parametrize("eq,shapes", EINSUM, ids=[e for e, _ in EINSUM])
def test_einsum_gradients(eq, shapes):
    """einsum on inputs that require grad: the result requires grad, and first and second
    derivatives match torch's (it returned a detached result before)."""
    arrs = [np.random.default_rng(len(eq)).standard_normal(s) for s in shapes]

    def run(m):
        xs = [m.tensor(a, requires_grad=True) for a in arrs]
        r = m.einsum(eq, *xs)
        gs = _grads(m, r, xs, create_graph=True)
        g2 = m.autograd.grad(sum((g ** 2).sum() for g in gs), xs, allow_unused=True)
        return [r, r.requires_grad] + list(gs) + [g if g is not None else "unused" for g in g2]

    same(run)


@settings(max_examples=10, deadline=None)
@given(st.sampled_from(["contig", "transposed", "sliced", "expanded"]), st.integers(0, 2**31 - 1))
def test_einsum_gradients_float32_layouts(layout, seed):
    rng = np.random.default_rng(seed)
    pairs = [make_pair((3, 4), "float32", layout, rng), make_pair((4, 2), "float32", "transposed", rng)]
    got = {}
    for k, m in ((0, tracegrad), (1, torch)):
        xs = [p[k].detach().requires_grad_(True) for p in pairs]
        out = m.einsum("ij,jk->ik", *xs)
        # (the layout of a gradient autograd.grad returns is not a contract: values only)
        got[m] = [out] + [g.contiguous() for g in _grads(m, out, xs)]
    assert_same(got[tracegrad], got[torch], describe("einsum", [p[0] for p in pairs], seed, layout=layout),
                strides=False)


@pytest.mark.parametrize("requires_grad", [False, True])
def test_einsum_errors_and_size_one_broadcast(requires_grad):
    def op(eq, *shapes):
        def run(m):
            xs = [m.arange(float(np.prod(s))).reshape(s).requires_grad_(requires_grad) for s in shapes]
            return m.einsum(eq, *xs)
        return run

    same(op("ij,jk", (2, 1), (3, 2)))  # a size-1 labelled dim broadcasts, as in torch
    for case in [op("ij,jk", (2, 2), (3, 2)), op("ij,jk", (2, 2)), op("i", (2, 2), (2,)), op("ij", (2, 2, 2)),
                 op("ij->k", (2, 2)), op("ij->ii", (2, 2))]:
        raises_same(case)


# ---- in-place rules for views, out=, anomaly mode, grad()'s inputs -------------------------------
MULTI_VIEW = {
    "unbind": lambda m, y: y.unbind()[0],
    "unbind_dim1": lambda m, y: y.unbind(1)[1],
    "chunk": lambda m, y: y.chunk(2)[1],
    "split": lambda m, y: y.split(1)[0],
    "split_sizes": lambda m, y: y.split([1, 1])[1],
}


@pytest.mark.parametrize("leaf", [False, True])
@pytest.mark.parametrize("name", sorted(MULTI_VIEW))
def test_inplace_on_multi_output_view(name, leaf):
    """One of several views an op returned may not be written in place under grad mode."""
    def run(m):
        x = m.ones(2, 2, requires_grad=True)
        MULTI_VIEW[name](m, x if leaf else x * 1).mul_(2)

    raises_same(run)

    def allowed(m):  # under no_grad, or after clone / tensor_split (slices), it is fine
        x = m.ones(2, 2, requires_grad=True)
        y = x * 1
        with m.no_grad():
            MULTI_VIEW[name](m, y).mul_(2)
        v = MULTI_VIEW[name](m, y).clone()
        v.mul_(3)
        y.tensor_split(2)[0].mul_(5)
        (y * v.sum()).sum().backward()
        return y, x.grad

    same(allowed)


def test_inplace_on_view_made_under_no_grad():
    def run(m):
        x = m.ones(2, 2, requires_grad=True)
        y = x * 1
        with m.no_grad():
            a = y[0]
        a.mul_(2)

    raises_same(run)

    def inside(m):  # view and write both under no_grad: allowed, and the base sees the write
        x = m.ones(2, 2, requires_grad=True)
        y = x * 1
        with m.no_grad():
            y[0].mul_(2)
        d = y.detach()
        d[1].add_(1)  # a detached alias is not a view of y
        return y

    same(inside)


@pytest.mark.parametrize("op", ["exp", "mm", "add", "sum", "clamp", "cumsum"])
def test_out_argument_with_grad_names_the_function(op):
    calls = {
        "exp": lambda m, x: m.exp(x, out=m.empty(2, 2)),
        "mm": lambda m, x: m.mm(x, x, out=m.empty(2, 2)),
        "add": lambda m, x: m.add(x, 1, out=m.empty(2, 2)),
        "sum": lambda m, x: m.sum(x, 0, out=m.empty(2)),
        "clamp": lambda m, x: m.clamp(x, 0, out=m.empty(2, 2)),
        "cumsum": lambda m, x: m.cumsum(x, 0, out=m.empty(2, 2)),
    }
    raises_same(lambda m: calls[op](m, m.ones(2, 2, requires_grad=True)))


def test_detect_anomaly_reports_nan_gradients():
    def nan_in_backward(ctx_name, check_nan=True, use_grad=False):
        def run(m):
            x = m.tensor([0.0, 2.0], requires_grad=True)
            ctx = (m.autograd.detect_anomaly(check_nan=check_nan) if ctx_name == "detect"
                   else m.autograd.set_detect_anomaly(True, check_nan=check_nan))
            with ctx:
                loss = (x.sqrt() * 0).exp().sum()
                if use_grad:
                    return m.autograd.grad(loss, x)
                loss.backward()
            return x.grad, m.is_anomaly_enabled()
        return run

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that anomaly mode is slow, with a traceback
        raises_same(nan_in_backward("detect"))
        raises_same(nan_in_backward("set"))
        raises_same(nan_in_backward("detect", use_grad=True))
        same(nan_in_backward("detect", check_nan=False))

        def nan_leaf(m):  # a NaN already in the input is not the backward's doing
            y = m.tensor([NAN, 1.0], requires_grad=True)
            with m.autograd.detect_anomaly():
                (y * 2).sum().backward()
            return y.grad

        same(nan_leaf)


def test_grad_inputs_must_be_tensors():
    def run(m):
        x = m.ones(1, requires_grad=True)
        return m.autograd.grad((x * x).sum(), [x, 3])

    raises_same(run)


# ---- autograd.functional ------------------------------------------------------------------------
def _t(m, v):
    return m.tensor(v, dtype=m.float64)


FUNCTIONAL = {
    "jacobian": lambda m, F: F.jacobian(lambda x: x.exp() * x.sum(), _t(m, [1.0, 2.0])),
    "jacobian_tuples": lambda m, F: F.jacobian(lambda x, y: (x * y, (x ** 2).sum()),
                                               (_t(m, [1.0, 2.0]), _t(m, [[3.0], [4.0]]))),
    "jacobian_unused_input": lambda m, F: F.jacobian(lambda x, y: x * 2, (_t(m, [1.0, 2.0]), _t(m, [3.0]))),
    "jacobian_constant": lambda m, F: F.jacobian(lambda x: m.ones(3, dtype=m.float64), _t(m, [1.0, 2.0])),
    "jacobian_scalar": lambda m, F: F.jacobian(lambda x: (x ** 3).sum(), _t(m, [1.0, 2.0])),
    "hessian": lambda m, F: F.hessian(lambda x: (x.exp() * x.sum()).sum(), _t(m, [1.0, 2.0])),
    "hessian_tuple": lambda m, F: F.hessian(lambda x, y: (x.exp() * y).sum(), (_t(m, [1.0, 2.0]), _t(m, [3.0, 1.0]))),
    "vjp": lambda m, F: F.vjp(lambda x: x.exp() * x.sum(), _t(m, [1.0, 2.0]), _t(m, [1.0, 0.0])),
    "vjp_scalar_no_v": lambda m, F: F.vjp(lambda x: x.exp().sum(), _t(m, [1.0, 2.0])),
    "vjp_tuples": lambda m, F: F.vjp(lambda x, y: (x * y, x + y), (_t(m, [1.0, 2.0]), _t(m, [3.0, 4.0])),
                                     (_t(m, [1.0, 1.0]), _t(m, [0.0, 2.0]))),
    "jvp": lambda m, F: F.jvp(lambda x: x.exp() * x.sum(), _t(m, [1.0, 2.0]), _t(m, [1.0, 0.0])),
    "jvp_tuples": lambda m, F: F.jvp(lambda x, y: (x * y, x + y), (_t(m, [1.0, 2.0]), _t(m, [3.0, 4.0])),
                                     (_t(m, [1.0, 1.0]), _t(m, [0.0, 2.0]))),
    "hvp": lambda m, F: F.hvp(lambda x: (x.exp() * x.sum()).sum(), _t(m, [1.0, 2.0]), _t(m, [1.0, -1.0])),
    "vhp_tuple": lambda m, F: F.vhp(lambda x, y: (x.exp() * y).sum(), (_t(m, [1.0, 2.0]), _t(m, [3.0, 1.0])),
                                    (_t(m, [1.0, -1.0]), _t(m, [2.0, 0.0]))),
}
FUNCTIONAL_ERRORS = {
    "hessian_not_scalar": lambda m, F: F.hessian(lambda x: x.exp(), _t(m, [1.0, 2.0])),
    "hessian_tuple_out": lambda m, F: F.hessian(lambda x: (x.sum(), x.sum()), _t(m, [1.0, 2.0])),
    "vhp_not_scalar": lambda m, F: F.vhp(lambda x: x, _t(m, [1.0, 2.0]), _t(m, [1.0, 2.0])),
    "vjp_no_v": lambda m, F: F.vjp(lambda x: x.exp(), _t(m, [1.0, 2.0])),
    "list_inputs": lambda m, F: F.jacobian(lambda x, y: x, [_t(m, [1.0]), _t(m, [1.0])]),
    "float_in_tuple": lambda m, F: F.jacobian(lambda x: x, (1.0,)),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONAL))
def test_autograd_functional(name):
    same(lambda m: FUNCTIONAL[name](m, m.autograd.functional))


@pytest.mark.parametrize("name", sorted(FUNCTIONAL_ERRORS))
def test_autograd_functional_errors(name):
    raises_same(lambda m: FUNCTIONAL_ERRORS[name](m, m.autograd.functional))


def test_autograd_functional_create_graph_and_leaves():
    def run(m):
        x = _t(m, [1.0, 2.0]).requires_grad_()
        j = m.autograd.functional.jacobian(lambda a: a.sin() * a, x, create_graph=True)
        j.sum().backward()
        plain = m.autograd.functional.jacobian(lambda a: a * 2, x)
        return j, j.requires_grad, x.grad, plain.requires_grad, x.is_leaf

    same(run)


def test_softmax_methods_double_backward():
    """Tensor.softmax / torch.log_softmax exist (as in torch), with torch's nodes and second derivatives."""
    def run(m):
        x = _t(m, [[0.3, 1.7, -1.0], [0.2, 0.1, 0.0]]).requires_grad_()
        s, ls = x.softmax(1), m.log_softmax(x, 0)
        y = (s * m.arange(3, dtype=m.float64)).sum() + ls.pow(2).sum() + m.softmax(x, -1, dtype=m.float32).sum()
        g, = m.autograd.grad(y, x, create_graph=True)
        return (s, ls, type(s.grad_fn).__name__, type(ls.grad_fn).__name__, g,
                m.autograd.grad((g ** 2).sum(), x)[0], x.log_softmax(1))

    same(run)
    raises_same(lambda m: m.ones(2).softmax(), phrase="softmax()")


OVERLAP = {
    "shifted": lambda m, y: y[1:].add_(y[:-1]),
    "scalar_view": lambda m, y: y.mul_(y[0]),
    "self": lambda m, y: y.add_(y),
    "same_view_twice": lambda m, y: y.view(2, 2).add_(y.view(2, 2)),
    "transposed_alias": lambda m, y: y.view(2, 2).t().add_(y.view(2, 2)),
    "disjoint_halves": lambda m, y: y[:2].add_(y[2:]),
    "step_slices": lambda m, y: y[::2].add_(y[1::2]),
    "row_broadcast": lambda m, y: y.view(2, 2).add_(y[:2]),
}


@pytest.mark.parametrize("name", sorted(OVERLAP))
def test_inplace_partial_overlap(name):
    """An in-place op whose input covers part of the memory it writes is torch's error; the same
    memory seen the same way, disjoint memory, or layouts torch calls too hard to tell, are not."""
    def run(m):
        y = m.arange(4.0)
        OVERLAP[name](m, y)
        return y

    same(run)

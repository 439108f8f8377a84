"""Differential fuzzing of tracegrad.compile against eager torch (and eager tracegrad).

Random programs are drawn by hypothesis: a few inputs (float32/float64/int64/bool,
contiguous or not, 0-d, with size-0 dims, some requiring grad), then a chain of
steps, each one op from the tables below applied to earlier values (pointwise,
reductions, views, matmul, broadcasting binaries, where/masked_fill, softmax,
layer_norm, cross_entropy, integer indexing, in-place writes, Python control flow
on shapes), returned as a tensor, a tuple, a dict or a nested structure. Each
program runs in torch, eagerly in tracegrad and through `tracegrad.compile`; the
results (type, dtype, shape, values, requires_grad), the inputs after the call
(in-place writes), the gradients of a loss over the outputs, the cache (a second
call with new data of the same signature does not trace again) and
`tracegrad.trace`/`tracegrad.explain` are checked. When torch raises, tracegrad
must raise the same (builtin) exception type.

The regression tests after the fuzzers pin the bugs the fuzzers found.
torch is only a reference here: tracegrad itself never imports it."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

import tracegrad
from util import assert_same, make_pair


# ---- the op tables: each entry is written once against a library L -----------------------------
def _imul_view(x):
    y = x.clone()
    (y[0] if y.dim() else y).mul_(2)
    return y


def _setitem(x):
    y = x.clone()
    if y.dim():
        y[..., 0] = 7
    return y


def _set0(x):  # an in-place write into whatever it gets: an input, a view, an intermediate
    if x.dim():
        x[0] = 1
    return x


def _iadd(x):
    x += 1
    return x


UNARY = {
    "exp": lambda L, x: x.exp(), "tanh": lambda L, x: L.tanh(x), "sigmoid": lambda L, x: x.sigmoid(),
    "relu": lambda L, x: L.relu(x), "abs": lambda L, x: x.abs(), "neg": lambda L, x: -x,
    "mul_s": lambda L, x: x * 2.5, "add_s": lambda L, x: x + 1, "div_s": lambda L, x: x / 3,
    "pow2": lambda L, x: x ** 2, "rsub": lambda L, x: 1 - x, "clamp": lambda L, x: x.clamp(-0.5, 0.5),
    "rdiv": lambda L, x: 2 / (x.abs() + 1), "sqrt_abs": lambda L, x: (x.abs() + 0.1).sqrt(),
    "float": lambda L, x: x.float(), "double": lambda L, x: x.double(), "long": lambda L, x: x.long(),
    "gt0": lambda L, x: x > 0, "boolf": lambda L, x: (x > 0).float(), "mul_int": lambda L, x: x * 3,
    "floordiv": lambda L, x: x // 2, "eq": lambda L, x: (x == x).float() + x,
    "sum_all": lambda L, x: x.sum(), "mean_all": lambda L, x: x.float().mean(), "sum0": lambda L, x: x.sum(0),
    "sum_last_k": lambda L, x: x.sum(-1, keepdim=True), "mean_last": lambda L, x: x.mean(-1),
    "amax0k": lambda L, x: x.amax(0, keepdim=True), "max_last": lambda L, x: x.max(-1).values,
    "argmax": lambda L, x: x.argmax(-1), "lse": lambda L, x: x.logsumexp(-1), "prod": lambda L, x: x.prod(-1),
    "var": lambda L, x: x.var(-1), "std0k": lambda L, x: x.std(0, keepdim=True),
    "sum_tuple": lambda L, x: x.sum((0, -1)), "any": lambda L, x: (x > 0).any(-1), "all": lambda L, x: (x > 0).all(),
    "cumsum": lambda L, x: x.cumsum(-1), "norm": lambda L, x: x.norm(dim=-1),
    "sum_f64": lambda L, x: x.sum(-1, dtype=L.float64),
    "T": lambda L, x: x.transpose(0, -1), "perm": lambda L, x: x.permute(*reversed(range(x.dim()))),
    "flat": lambda L, x: x.reshape(-1), "view": lambda L, x: x.contiguous().view(-1, 1) if x.dim() else x.view(1),
    "slice": lambda L, x: x[..., ::2], "slice1": lambda L, x: x[1:], "idx0": lambda L, x: x[0],
    "unsq": lambda L, x: x.unsqueeze(0), "expand": lambda L, x: x.unsqueeze(0).expand(2, *x.shape),
    "squeeze": lambda L, x: x.squeeze(), "flip": lambda L, x: x.flip(-1),
    "mT": lambda L, x: x.t() if x.dim() <= 2 else x.mT, "narrow": lambda L, x: x.narrow(0, 0, 1) if x.dim() else x,
    "chunk0": lambda L, x: x.chunk(2, -1)[0], "split": lambda L, x: x.split(1, 0)[-1],
    "unbind": lambda L, x: x.unbind(0)[0],
    "cat": lambda L, x: L.cat([x, x * 2], 0), "stack": lambda L, x: L.stack([x, x], -1),
    "repeat": lambda L, x: x.repeat(2, *([1] * (x.dim() - 1))) if x.dim() else x,
    "clone": lambda L, x: x.clone(), "detach": lambda L, x: x.detach(), "data": lambda L, x: x.data,
    "contig": lambda L, x: x.contiguous(),
    "softmax": lambda L, x: L.nn.functional.softmax(x, -1), "lsm0": lambda L, x: L.nn.functional.log_softmax(x, 0),
    "ln": lambda L, x: L.nn.functional.layer_norm(x, x.shape[-1:]) if x.dim() else x,
    "gelu": lambda L, x: L.nn.functional.gelu(x),
    "self_mm": lambda L, x: x @ x.transpose(-1, -2), "mv": lambda L, x: x @ x[0] if x.dim() == 2 else x @ x,
    "bmm": lambda L, x: L.bmm(x, x.transpose(1, 2)) if x.dim() == 3 else x,
    "masked_fill": lambda L, x: x.masked_fill(x < 0, 0.5), "where_s": lambda L, x: L.where(x > 0, x, 0.0),
    "shape_ctl": lambda L, x: x * 2 if x.dim() and x.shape[0] > 2 else x - 1,
    "dim_ctl": lambda L, x: x.sum(0) if x.dim() > 1 else x + x.numel(),
    "clone_add_": lambda L, x: x.clone().add_(1), "imul_view": _imul_view, "setitem": _setitem,
    "mul_": lambda L, x: x.mul_(2), "view_add_": lambda L, x: x[..., :1].add_(1) if x.dim() else x.add_(1),
    "set0": _set0, "iadd": _iadd,
    "cross_ent": lambda L, x: L.nn.functional.cross_entropy(x, L.zeros(x.shape[0], dtype=L.long))
    if x.dim() == 2 else x,
    "mse": lambda L, x: L.nn.functional.mse_loss(x, x.detach() * 0.5),
    "gather": lambda L, x: x.gather(-1, L.zeros(x.shape, dtype=L.long)) if x.dim() else x,
    "const_idx": lambda L, x: x[L.tensor([0, 0])] if x.dim() else x,
    "self_idx": lambda L, x: x[(x.abs() * 10).long() % x.shape[0]] if x.dim() and x.shape[0] else x,
    "idx_last": lambda L, x: x[..., L.tensor([1, 0, -1])] if x.dim() and x.shape[-1] else x,
}
BINARY = {
    "add": lambda L, a, b: a + b, "mul": lambda L, a, b: a * b, "sub": lambda L, a, b: a - b,
    "div": lambda L, a, b: a / (b.abs() + 1), "maximum": lambda L, a, b: L.maximum(a, b),
    "where": lambda L, a, b: L.where(a > 0, a, b), "lt": lambda L, a, b: a < b,
    "mm": lambda L, a, b: a @ b.transpose(-1, -2) if b.dim() >= 2 else a @ b,
    "matmul": lambda L, a, b: L.matmul(a, b), "pow": lambda L, a, b: a.abs() ** b,
    "atan2": lambda L, a, b: L.atan2(a, b), "and": lambda L, a, b: (a > 0) & (b > 0),
    "clone_add_b": lambda L, a, b: a.clone().add_(b), "cat0": lambda L, a, b: L.cat([a, b], 0),
    "fmod": lambda L, a, b: L.fmod(a, b.abs() + 1), "lerp": lambda L, a, b: L.lerp(a.float(), b.float(), 0.3),
    "masked": lambda L, a, b: a.masked_fill(b > 0, -1),
    "take_b": lambda L, a, b: a[(b.abs() * 7).long() % a.shape[0]] if a.dim() and a.shape[0] else a,
    "isel": lambda L, a, b: a.index_select(-1, (b.abs() * 7).long().reshape(-1) % a.shape[-1])
    if a.dim() and a.shape[-1] else a,
}
SHAPES = [(3, 4), (4,), (), (2, 3, 4), (0, 3), (3, 1), (1, 4), (2, 0, 4)]
OUTS = ["last", "tuple", "dict", "list", "input", "nested"]


def program(steps, out):
    def f(L, *xs):
        vals = list(xs)
        for s in steps:
            if s[0] == "u":
                vals.append(UNARY[s[1]](L, vals[s[2]]))
            else:
                vals.append(BINARY[s[1]](L, vals[s[2]], vals[s[3]]))
        if out == "last":
            return vals[-1]
        if out == "tuple":
            return vals[-1], vals[len(xs)]
        if out == "dict":
            return {"a": vals[-1], "b": vals[0]}
        if out == "list":
            return [vals[-1], 3, vals[-2]]
        if out == "input":
            return vals[0], vals[-1]
        return vals[-1], {"x": [vals[-2]]}

    return f


@st.composite
def programs(draw, dtypes=("float32",) * 6 + ("float64", "float64", "int64", "bool"), max_steps=5,
             unary=tuple(UNARY), binary=tuple(BINARY), outs=tuple(OUTS)):
    n_in = draw(st.integers(1, 3))
    base = draw(st.sampled_from(SHAPES))
    ins = []
    for _ in range(n_in):
        shape = base if draw(st.booleans()) else draw(st.sampled_from(SHAPES))
        dt = draw(st.sampled_from(dtypes))
        layout = draw(st.sampled_from(["contig", "contig", "transposed", "sliced", "expanded", "offset"]))
        rg = dt.startswith("float") and layout != "expanded" and draw(st.booleans())
        ins.append((shape, dt, layout, rg))
    steps = []
    n = n_in
    for _ in range(draw(st.integers(1, max_steps))):
        if draw(st.integers(0, 9)) < 7:
            steps.append(("u", draw(st.sampled_from(unary)), draw(st.integers(0, n - 1))))
        else:
            steps.append(("b", draw(st.sampled_from(binary)), draw(st.integers(0, n - 1)),
                          draw(st.integers(0, n - 1))))
        n += 1
    return ins, steps, draw(st.sampled_from(outs))


def make_inputs(ins, seed):
    rng = np.random.default_rng(seed)
    ours, theirs = [], []
    for shape, dt, layout, rg in ins:
        o, t = make_pair(shape, dt, layout, rng)
        if rg:
            o, t = o.detach().requires_grad_(True), t.detach().requires_grad_(True)
        ours.append(o)
        theirs.append(t)
    return ours, theirs


def _leaves(x):
    if isinstance(x, dict):
        return [v for k in x for v in _leaves(x[k])]
    if isinstance(x, (list, tuple)):
        return [v for e in x for v in _leaves(e)]
    return [x]


def check_outputs(ours, theirs, ctx):
    """Same structure; per tensor: dtype, shape, values (torch's tolerance), requires_grad."""
    assert type(ours).__name__ == type(theirs).__name__ or isinstance(theirs, torch.Tensor), ctx
    lo, lt = _leaves(ours), _leaves(theirs)
    assert len(lo) == len(lt), ctx
    for k, (a, b) in enumerate(zip(lo, lt)):
        if isinstance(b, torch.Tensor):
            assert_same(a, b.detach(), f"{ctx}\n  [leaf {k}]", strides=False)
            assert a.requires_grad == b.requires_grad, f"requires_grad {a.requires_grad} != torch's\n  {ctx} [leaf {k}]"
        else:
            assert a == b, ctx


def _loss(outs):
    total = None
    for o in _leaves(outs):
        if getattr(o, "requires_grad", False) and o.dtype.is_floating_point:
            term = ((o + 1) ** 2).mean() if o.numel() else o.sum()
            total = term if total is None else total + term
    return total


def _raises_like(fn, texc, ctx):
    try:
        fn()
    except Exception as e:  # compared with torch's error
        base = next(c for c in type(texc).__mro__ if c.__module__ == "builtins")
        assert isinstance(e, base), f"raised {type(e).__name__}: {e}\n  torch raised {type(texc).__name__}: {texc}\n  {ctx}"
        return
    raise AssertionError(f"torch raised {type(texc).__name__}: {texc}\n  but tracegrad did not\n  {ctx}")


def run_program(ins, steps, out, seed, backend="numpy", check_grads=True, check_explain=True):
    f = program(steps, out)
    ctx = f"inputs {ins}\n  steps {steps}\n  returns {out}, seed {seed}, backend {backend}"
    o_eager, t = make_inputs(ins, seed)
    o_comp, _ = make_inputs(ins, seed)
    compiled = tracegrad.compile(lambda *a: f(tracegrad, *a), backend=backend)
    try:
        ref = f(torch, *t)
    except Exception as e:  # torch refuses: eager tracegrad and the compiled function refuse alike
        _raises_like(lambda: f(tracegrad, *o_eager), e, "eager\n  " + ctx)
        _raises_like(lambda: compiled(*o_comp), e, "compiled\n  " + ctx)
        return
    check_outputs(f(tracegrad, *o_eager), ref, "eager\n  " + ctx)
    # a first call with other data, then the call compared: the second must reuse the first's program
    o_first, t_first = make_inputs(ins, seed + 1)
    check_outputs(compiled(*o_first), f(torch, *t_first), "compiled, first call\n  " + ctx)
    got = compiled(*o_comp)
    assert compiled.recompiles == 0 and sum(len(v) for v in compiled.cache.values()) == 1, \
        f"traced again for the same signature (recompiles {compiled.recompiles})\n  {ctx}"
    check_outputs(got, ref, "compiled\n  " + ctx)
    for k, (a, b) in enumerate(zip(o_comp, t)):  # in-place writes into the inputs
        assert_same(a, b.detach(), f"input {k} after the call\n  {ctx}", strides=False)
    if check_grads:
        lt = _loss(ref)
        if lt is not None:
            try:
                lt.backward()
            except RuntimeError as e:  # (torch has no derivative for some int-valued paths)
                _raises_like(lambda: _loss(got).backward(), e, "backward\n  " + ctx)
            else:
                lo = _loss(got)
                assert lo is not None, ctx
                lo.backward()
                for k, (a, b) in enumerate(zip(o_comp, t)):
                    if b.grad is None:
                        assert a.grad is None or not a.grad.abs().sum().item(), f"grad of input {k}\n  {ctx}"
                    else:
                        assert a.grad is not None, f"no grad for input {k}\n  {ctx}"
                        assert_same(a.grad, b.grad, f"grad of input {k}\n  {ctx}", strides=False)
    if check_explain:
        x, _ = make_inputs(ins, seed)
        assert "def " in str(tracegrad.trace(lambda *a: f(tracegrad, *a), *x))
        rep = tracegrad.explain(lambda *a: f(tracegrad, *a), *x, backend=backend)
        assert str(rep).startswith("=== tracegrad.explain")
        for k in rep.kernels:
            assert isinstance(k.name, str) and isinstance(k.source, str) and k.bytes >= 0 and k.flops >= 0


# no shrinking: a failing program is printed whole (its steps name it), and shrinking re-runs compile many times
_SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                 phases=[Phase.explicit, Phase.generate])


# ---- the fuzzers -------------------------------------------------------------------------------
@settings(max_examples=60, **_SETTINGS)
@given(p=programs(), seed=st.integers(0, 2 ** 16))
def test_random_programs_compiled_match_torch(p, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (an eager fallback's warning; torch's own warnings)
        run_program(*p, seed)


@settings(max_examples=25, **_SETTINGS)
@given(p=programs(dtypes=("float32", "float64"), max_steps=4), seed=st.integers(0, 2 ** 16))
def test_random_float_programs_gradients_match_torch(p, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_program(*p, seed)


@settings(max_examples=4, **_SETTINGS)
@given(p=programs(dtypes=("float32",), max_steps=2,
                  unary=("exp", "tanh", "relu", "mul_s", "add_s", "sum_last_k", "mean_last", "T", "slice", "unsq",
                         "softmax", "where_s", "masked_fill", "clamp", "rsub", "detach"),
                  binary=("add", "mul", "sub", "maximum", "where"), outs=("last", "tuple", "dict")),
       seed=st.integers(0, 2 ** 16))
def test_random_programs_on_the_triton_backend_match_torch(p, seed):
    """A few tiny programs through Triton's interpreter (slow: kept few and small)."""
    ins, steps, out = p
    ins = [((3, 4) if s else (4,), dt, lay, rg) for s, dt, lay, rg in ins]  # no 0-d or empty inputs here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (groups with no Triton form fall back to NumPy with a warning)
        run_program(ins, steps, out, seed, backend="triton", check_explain=False)


# ---- regressions: what the fuzzers found ---------------------------------------------------------
def _pair(shape, seed=0, dtype="float32", requires_grad=False):
    o, t = make_pair(shape, dtype, "contig", np.random.default_rng(seed))
    if requires_grad:
        o, t = o.requires_grad_(True), t.requires_grad_(True)
    return o, t


def test_an_output_that_feeds_another_output_keeps_its_gradient():
    """(cat([x, v]), v): the engine walked v's node twice (once as a root, once below the cat) and
    never reached x; the compiled outputs lost requires_grad and x got no gradient."""

    def f(L, x):
        v = x * 2
        return L.cat([x, v], 0), v

    (x, xr) = _pair((4,), requires_grad=True)
    cf = tracegrad.compile(lambda x: f(tracegrad, x))
    got, ref = cf(x), f(torch, xr)
    check_outputs(got, ref, "compiled")
    (got[0].sum() * 3 + (got[1] ** 2).sum()).backward()
    (ref[0].sum() * 3 + (ref[1] ** 2).sum()).backward()
    assert_same(x.grad, xr.grad)


def test_autograd_grad_of_two_roots_one_below_the_other_matches_torch():
    grads = []
    for L in (tracegrad, torch):
        x = L.tensor([1.0, -2.0, 3.0], requires_grad=True)
        v = x * 2
        c = x[:2] + v[:2]
        grads.append(L.autograd.grad([v, c], [x], [L.ones(3), L.tensor([1.0, 5.0])], retain_graph=True)[0])
        L.autograd.backward([c, v], [L.tensor([1.0, 5.0]), L.ones(3)])
        grads.append(x.grad)
    assert_same(grads[0], grads[2])
    assert_same(grads[1], grads[3])


@pytest.mark.parametrize("how", ["detach", "data"])
def test_returning_detach_of_an_input_gives_a_new_tensor_over_its_memory(how):
    """compile returned the input itself (requires_grad=True, the same object) for x.detach()."""
    x, xr = _pair((4,), requires_grad=True)
    f = (lambda L, x: (x.clamp(-0.5, 0.5), getattr(x, how) if how == "data" else x.detach()))
    cf = tracegrad.compile(lambda x: f(tracegrad, x))
    for _ in range(2):  # traced, then cached
        got, ref = cf(x), f(torch, xr)
        check_outputs(got, ref, how)
        assert got[1] is not x and not got[1].requires_grad and got[1].is_leaf
        assert got[1].data_ptr() == x.data_ptr()
    assert cf.recompiles == 0
    got[1][0] = 5.0  # a write through it shows in x, as in torch
    ref[1][0] = 5.0
    assert_same(x.detach(), xr.detach())


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_over_an_empty_dim_compiles(fn):
    """The traced decomposition took amax over the size-0 dim, which raises."""
    x, xr = _pair((0, 3), requires_grad=True)
    f = lambda L, x: getattr(L.nn.functional, fn)(x, 0) * 2  # noqa: E731
    got, ref = tracegrad.compile(lambda x: f(tracegrad, x))(x), f(torch, xr)
    check_outputs(got, ref, fn)
    got.sum().backward()
    ref.sum().backward()
    assert_same(x.grad, xr.grad)


def test_partial_write_into_an_expanded_input_matches_torch():
    """Tracing sees each element of an expanded input as its own value: a write into part of it was
    written back per element (and lost); such a signature now runs eagerly, with a warning."""

    def f(x):
        x[:1].add_(1)
        return x * 2

    x, xr = tracegrad.zeros(1).expand(4), torch.zeros(1).expand(4)
    cf = tracegrad.compile(f)
    with pytest.warns(UserWarning, match="runs eagerly for this input signature.*expand"):
        got = cf(x)
    ref = f(xr)
    assert_same(got, ref)
    assert_same(x, xr)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per signature
        got = cf(x)
    assert_same(got, f(xr))
    assert_same(x, xr)


INDEXING = {
    "x[i]": lambda L, x, i: x[i],
    "x[:, i]": lambda L, x, i: x[:, i],
    "x[..., i]": lambda L, x, i: x[..., i],
    "x[None, 1:, i]": lambda L, x, i: x[None, 1:, i],
    "x[1, i]": lambda L, x, i: x[1, i],
    "x[i.view(3, 1)]": lambda L, x, i: x[i.view(3, 1)],
    "index_select 1": lambda L, x, i: x.index_select(1, i.abs()),
    "index_select 0": lambda L, x, i: L.index_select(x, 0, i.abs()),
}


@pytest.mark.parametrize("name", list(INDEXING))
def test_indexing_with_an_integer_tensor_argument_compiles(name):
    """x[i] and index_select with i a traced int tensor raised DataDependentError (the error itself
    recommended index_select); they are a gather now."""
    f = INDEXING[name]
    x, xr = _pair((4, 3), requires_grad=True)
    cf = tracegrad.compile(lambda x, i: f(tracegrad, x, i))
    for idx in ([0, -2, 2], [1, 1, 0]):
        i, ir = tracegrad.tensor(idx), torch.tensor(idx)
        got, ref = cf(x, i), f(torch, xr, ir)
        assert_same(got, ref, name)
        ((got + 1) ** 2).sum().backward()
        ((ref + 1) ** 2).sum().backward()
        assert_same(x.grad, xr.grad, name)
        x.grad = xr.grad = None  # (a set .grad is another signature)
    assert cf.recompiles == 0


def test_gather_with_an_empty_index_stays_on_the_graph():
    x, xr = _pair((0, 3), requires_grad=True)
    got, ref = x.gather(0, tracegrad.zeros((0, 3), dtype=tracegrad.long)), xr.gather(0, torch.zeros((0, 3), dtype=torch.long))
    assert_same(got, ref)
    assert got.requires_grad == ref.requires_grad


def test_a_function_returning_its_input_is_traced_once():
    """The tracer's leak check kept the last symbolic tensor alive: `lambda x: x` looked like it stored a
    traced tensor somewhere, so it was never cached."""
    calls = []

    def f(x):
        calls.append(1)
        return x

    cf = tracegrad.compile(f)
    for rg in (False, True):
        x = tracegrad.ones(3, requires_grad=rg)
        assert cf(x) is x and cf(x) is x
    assert len(calls) == 2 and cf.recompiles == 1


@pytest.mark.parametrize("fn, dtype", [("softmax", "int64"), ("log_softmax", "bool"), ("gelu", "int64"),
                                       ("layer_norm", "int64")])
def test_float_only_functions_raise_torchs_error_eager_and_compiled(fn, dtype):
    args = {"softmax": (0,), "log_softmax": (-1,), "gelu": (), "layer_norm": ((3,),)}[fn]
    x, xr = make_pair((2, 3), dtype)
    with pytest.raises(NotImplementedError) as want:
        getattr(torch.nn.functional, fn)(xr, *args)
    for call in (lambda x: getattr(tracegrad.nn.functional, fn)(x, *args),
                 tracegrad.compile(lambda x: getattr(tracegrad.nn.functional, fn)(x, *args))):
        with pytest.raises(NotImplementedError) as got:
            call(x)
        assert str(got.value).replace("tracegrad", "torch") == str(want.value)


def test_layer_norm_of_an_empty_normalized_shape_raises_like_torch():
    with pytest.raises(RuntimeError) as want:
        torch.nn.functional.layer_norm(torch.tensor(1.0), ())
    with pytest.raises(RuntimeError) as got:
        tracegrad.nn.functional.layer_norm(tracegrad.tensor(1.0), ())
    assert str(got.value) == str(want.value)


def test_rebinding_a_closure_or_global_tensor_is_seen():
    """compile kept using the tensor its first trace captured after the name was rebound
    (w = w * 2 between calls), where the Python function reads the new one."""
    results = {}
    for L in (torch, tracegrad):
        w = L.ones(3)

        def f(x):
            return x + w

        g = tracegrad.compile(f) if L is tracegrad else f
        outs = []
        for _ in range(3):
            outs.append(g(L.zeros(3)))
            w = w * 2
        results[L] = outs
        if L is tracegrad:
            assert len(g.cache) == 1  # (entries for rebound tensors are dropped, not kept alive)
    for a, b in zip(results[tracegrad], results[torch]):
        assert_same(a, b)


GLOBAL_W = tracegrad.ones(2)


def _reads_global(x):
    return x * GLOBAL_W


def test_rebinding_a_global_tensor_is_seen():
    global GLOBAL_W
    cf = tracegrad.compile(_reads_global)
    old = GLOBAL_W
    try:
        assert cf(tracegrad.ones(2)).tolist() == [1.0, 1.0]
        GLOBAL_W = tracegrad.full((2,), 3.0)
        assert cf(tracegrad.ones(2)).tolist() == [3.0, 3.0]
    finally:
        GLOBAL_W = old


@pytest.mark.parametrize("case", ["exp", "index_select"])
def test_an_input_written_by_the_call_and_read_by_its_backward(case):
    """The compiled backward recomputed from x0's memory, which the call's own write-back replaced, and the
    version check then failed the backward (torch saves nothing of x0 there)."""

    def f(L, x0, x1):
        x0.mul_(2)
        if case == "exp":
            return (x1 * x0.exp()).sum()
        return ((x1 * x0).index_select(0, (x0 * 7).long() % 4) * x0).sum()

    vals = [0.3, 0.6, 0.1, 0.2]
    res = []
    for L in (torch, tracegrad):
        x0, x1 = L.tensor(vals, dtype=L.float64), L.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
        g = tracegrad.compile(lambda a, b: f(tracegrad, a, b)) if L is tracegrad else (lambda a, b: f(torch, a, b))
        y = g(x0, x1)
        y.backward()
        res.append((y, x1.grad, x0))
    for a, b in zip(res[1], res[0]):
        assert_same(a.detach(), b.detach())

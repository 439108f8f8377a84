"""tracegrad.compile: caching by signature, retracing, gradients through the compiled backward,
training steps compiled end to end, explain() and TRACEGRAD_DEBUG. Results against torch."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import tracegrad
from util import assert_values
from training_steps import D_IN, D_OUT, H, N, build_mlp, module_step, two_layer_step


def _arr(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _both(shape, seed=0, requires_grad=False, dtype=np.float32):
    a = _arr(shape, seed, dtype)
    t, r = tracegrad.tensor(a), torch.tensor(a)
    if requires_grad:
        t.requires_grad_(True)
        r.requires_grad_(True)
    return t, r


def close(ours, theirs, rtol=1e-4, atol=1e-5):
    """For several training steps: float32 rounding (BLAS summation order) drifts a little."""
    np.testing.assert_allclose(np.asarray(ours.detach()._values(), np.float64),
                               theirs.detach().to(torch.float64).numpy(), rtol=rtol, atol=atol)


def fn(L, x, y):
    return ((x * 2 + y).exp() - x.sum(-1, keepdim=True)).relu()


class Counter:
    """Counts how often the Python body runs (it runs only while tracing)."""

    def __init__(self, body):
        self.body = body
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.body(*args, **kwargs)


# ---- caching ------------------------------------------------------------------------------
def test_same_signature_is_traced_once():
    f = Counter(lambda x, y: fn(tracegrad, x, y))
    cf = tracegrad.compile(f)
    for seed in range(4):
        (x, xr), (y, yr) = _both((3, 4), seed), _both((3, 4), seed + 10)
        assert_values(cf(x, y), fn(torch, xr, yr))
    assert f.calls == 1
    assert cf.recompiles == 0


@pytest.mark.parametrize("change", ["shape", "dtype", "requires_grad", "grad_mode", "strides", "scalar"])
def test_a_new_signature_is_traced_again(change):
    f = Counter(lambda x, y, s=1.0: fn(tracegrad, x, y) * s)
    cf = tracegrad.compile(f)
    (x, _), (y, _) = _both((3, 4)), _both((3, 4), 1)
    cf(x, y)
    if change == "shape":
        (x, xr), (y, yr) = _both((5, 4)), _both((5, 4), 1)
    elif change == "dtype":
        (x, xr), (y, yr) = _both((3, 4), dtype=np.float64), _both((3, 4), 1, dtype=np.float64)
    elif change == "requires_grad":
        (x, xr), (y, yr) = _both((3, 4), requires_grad=True), _both((3, 4), 1)
    elif change == "strides":
        (x, xr) = _both((4, 3))
        x, xr = x.t(), xr.t()
        (y, yr) = _both((3, 4), 1)
    else:
        (x, xr), (y, yr) = _both((3, 4)), _both((3, 4), 1)
    if change == "grad_mode":
        with tracegrad.no_grad():
            out = cf(x, y)
    elif change == "scalar":
        out = cf(x, y, 3.0)
    else:
        out = cf(x, y)
    ref = fn(torch, xr, yr) * (3.0 if change == "scalar" else 1.0)
    assert_values(out, ref)
    assert out.dtype.name == str(ref.dtype).split(".")[-1]
    assert out.requires_grad == ref.requires_grad
    assert f.calls == 2 and cf.recompiles == 1


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([(2, 3), (3, 3), (1, 5)]), st.sampled_from(["float32", "float64"]),
                          st.booleans()), min_size=2, max_size=6))
def test_no_cache_entry_is_used_for_another_signature(calls):
    """Whatever the order of signatures, every call gives torch's answer for its own inputs."""
    cf = tracegrad.compile(lambda x, y: fn(tracegrad, x, y))
    for i, (shape, dt, rg) in enumerate(calls):
        (x, xr), (y, yr) = _both(shape, i, rg, np.dtype(dt)), _both(shape, i + 50, False, np.dtype(dt))
        out = cf(x, y)
        ref = fn(torch, xr, yr)
        assert tuple(out.shape) == tuple(ref.shape) and out.dtype.name == dt
        assert_values(out, ref)
        if rg:
            ((out - 1) ** 2).sum().backward()
            ((ref - 1) ** 2).sum().backward()
            assert_values(x.grad, xr.grad)


def test_captured_tensors_are_guarded():
    w = tracegrad.ones(4)
    f = Counter(lambda x: x * w)
    cf = tracegrad.compile(f)
    x = tracegrad.ones(4)
    cf(x)
    w.data = tracegrad.full((4,), 2.0)  # same shape: the cached program reads the new values
    assert cf(x).tolist() == [2.0] * 4 and f.calls == 1
    w.requires_grad_(True)  # a different signature for a captured tensor
    out = cf(x)
    assert f.calls == 2 and out.requires_grad


def test_recompile_warning_names_the_change():
    cf = tracegrad.compile(lambda x: x + 1)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for n in range(1, 11):
            cf(tracegrad.ones(n))
    msgs = [str(m.message) for m in w if "recompiled" in str(m.message)]
    assert len(msgs) == 1
    assert "shape" in msgs[0] and "->" in msgs[0]


def test_compile_is_a_decorator_and_takes_kwargs_and_nested_outputs():
    @tracegrad.compile
    def f(x, *, scale, extra=None):
        return {"a": x * scale, "b": (x.sum(), [x.t()])}

    @tracegrad.compile(backend="numpy")
    def g(x):
        return x.max(0)

    x, xr = _both((3, 2))
    out = f(x, scale=2.0)
    assert_values(out["a"], xr * 2.0)
    assert_values(out["b"][0], xr.sum())
    assert_values(out["b"][1][0], xr.t())
    vals, idx = g(x)
    ref = xr.max(0)
    assert_values(vals, ref.values)
    assert_values(idx, ref.indices)
    assert type(g(x)).__name__ == "max"
    with pytest.raises(ValueError, match="unknown backend"):
        tracegrad.compile(lambda x: x, backend="nope")


# ---- gradients ------------------------------------------------------------------------------------
def test_gradients_flow_through_the_compiled_backward_into_eager_autograd():
    (x, xr), (y, yr) = _both((3, 4), 0, True), _both((3, 4), 1, True)
    cf = tracegrad.compile(lambda x, y: fn(tracegrad, x, y))
    h = x * 3  # eager history before
    hr = xr * 3
    out = cf(h, y)
    assert type(out.grad_fn).__name__ == "CompiledFunctionBackward"
    loss = (out.sin() * 2).sum()  # eager ops after
    lr_ = (fn(torch, hr, yr).sin() * 2).sum()
    loss.backward()
    lr_.backward()
    assert_values(x.grad, xr.grad)
    assert_values(y.grad, yr.grad)


def test_gradients_reach_captured_parameters():
    w, wr = _both((4, 2), 3, True)
    b, br = _both((2,), 4, True)
    cf = tracegrad.compile(lambda x: (x @ w + b).tanh())
    x, xr = _both((5, 4))
    for _ in range(2):  # accumulates, as eager does
        ((cf(x) + 1) ** 2).mean().backward()
        (((xr @ wr + br).tanh() + 1) ** 2).mean().backward()
    assert_values(w.grad, wr.grad)
    assert_values(b.grad, br.grad)


def test_backward_twice_needs_retain_graph():
    x, xr = _both((3,), 0, True)
    cf = tracegrad.compile(lambda x: (x.exp() * x).sum())
    out = cf(x)
    out.backward(retain_graph=True)
    out.backward()
    ref = (xr.exp() * xr).sum()
    ref.backward(retain_graph=True)
    ref.backward()
    assert_values(x.grad, xr.grad)
    out = cf(x)
    out.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        out.backward()


def test_double_backward_is_refused_clearly():
    x, _ = _both((3,), 0, True)
    out = tracegrad.compile(lambda x: (x ** 3).sum())(x)
    with pytest.raises(RuntimeError, match="double backward"):
        tracegrad.autograd.grad(out, x, create_graph=True)


def test_no_grad_calls_return_plain_tensors():
    x, _ = _both((3,), 0, True)
    cf = tracegrad.compile(lambda x: x * 2)
    with tracegrad.no_grad():
        out = cf(x)
    assert not out.requires_grad and out.grad_fn is None


# ---- training steps compiled end to end ------------------------------------------------------------
def test_seed_two_layer_training_step_manual_sgd():
    """The tutorial's network and loop (x.mm(w1).clamp(min=0).mm(w2), manual update), compiled."""
    (x, xr), (y, yr) = _both((N, D_IN), 0), _both((N, D_OUT), 1)
    (w1, w1r), (w2, w2r) = _both((D_IN, H), 2, True), _both((H, D_OUT), 3, True)
    step = two_layer_step
    cstep = tracegrad.compile(lambda *a: step(tracegrad, *a))
    w1e, w2e = w1.detach().clone().requires_grad_(True), w2.detach().clone().requires_grad_(True)
    for _ in range(5):
        loss = cstep(x, y, w1, w2)
        ref = step(torch, xr, yr, w1r, w2r)
        eager = step(tracegrad, x, y, w1e, w2e)
        close(loss, ref)
        close(w1, w1r)
        close(w2, w2r)
        assert np.array_equal(w1.detach().numpy(), w1e.detach().numpy())  # the same NumPy calls as eager
        assert loss.item() == eager.item()
    assert sum(len(v) for v in cstep.cache.values()) <= 2


@pytest.mark.parametrize("opt,kw", [("SGD", {}), ("SGD", {"momentum": 0.9}), ("Adam", {}),
                                    ("AdamW", {"weight_decay": 0.1}), ("Adam", {"amsgrad": True})])
def test_module_training_step_with_optim(opt, kw):
    """zero_grad, forward, loss, backward and the optimizer's step: one compiled call, several steps."""
    (mt, ot, lt), (mr, orr, lr_) = build_mlp(tracegrad, opt, **kw), build_mlp(torch, opt, **kw)
    step = module_step
    cstep = tracegrad.compile(lambda x, y: step(mt, ot, lt, x, y))
    for i in range(4):
        (x, xr), (y, yr) = _both((6, 10), 10 + i), _both((6, 3), 20 + i)
        close(cstep(x, y), step(mr, orr, lr_, xr, yr))
        for p, q in zip(mt.parameters(), mr.parameters()):
            close(p, q)
            close(p.grad, q.grad)


def test_compile_a_module():
    model = tracegrad.nn.Sequential(tracegrad.nn.Linear(6, 5), tracegrad.nn.GELU(), tracegrad.nn.Linear(5, 2))
    ref = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.GELU(), torch.nn.Linear(5, 2))
    with torch.no_grad():
        for p, q in zip(model.parameters(), ref.parameters()):
            q.copy_(torch.tensor(p.detach().numpy()))
    cm = tracegrad.compile(model)
    assert len(list(cm.parameters())) == 4  # the module's own, through the wrapper
    x, xr = _both((3, 6))
    out = cm(x)
    r = ref(xr)
    assert_values(out, r.detach())
    ((out + 1) ** 2).mean().backward()
    ((r + 1) ** 2).mean().backward()
    for p, q in zip(model.parameters(), ref.parameters()):
        assert_values(p.grad, q.grad)
    cm.eval()
    out = cm(x)  # train -> eval is a new signature
    assert_values(out, ref(xr).detach())


# ---- explain and debugging output ---------------------------------------------------------------
def test_explain_reports_graphs_groups_and_kernels():
    x, _ = _both((64, 100), 0, True)
    rep = tracegrad.explain(lambda x: (x * 2 + 1).exp().sum(), x)
    text = str(rep)
    for section in ("forward graph", "backward graph", "fusion groups", "kernels: forward"):
        assert section in text
    assert len(rep.kernels) == 1
    k = rep.kernels[0]
    assert k.name.startswith("k0_red_") and "64x100" in k.name
    assert "def " + k.name in k.source and "out=" in k.source
    assert k.bytes == 64 * 100 * 4 + 4 + 64 * 100 * 4 or k.bytes >= 64 * 100 * 4
    assert k.flops >= 4 * 64 * 100
    with pytest.raises(RuntimeError, match="NumPy backend"):
        k.ir("ptx")


def test_explain_bytes_and_flops_of_a_pointwise_chain():
    n = 1000
    x, _ = _both((n,))
    rep = tracegrad.explain(lambda x: ((x * 2).exp() + 1).sqrt(), x)
    (k,) = rep.kernels
    assert k.bytes == 2 * n * 4  # read x once, write the result once
    assert k.flops == 4 * n
    assert k.kind == "pointwise"


def test_debug_level_1_prints_one_line_per_kernel_and_recompiles(monkeypatch, capsys):
    monkeypatch.setenv("TRACEGRAD_DEBUG", "1")
    cf = tracegrad.compile(lambda x: (x.exp() * 2).sum(-1).relu())
    cf(tracegrad.ones(3, 4))
    cf(tracegrad.ones(3, 4))
    cf(tracegrad.ones(5, 4))
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "GB/s" in ln]
    assert len(lines) == 3  # one kernel, three calls
    assert "k0_red_sum_mul_exp_3x4" in lines[0] or "3x4" in lines[0]
    assert " us" in lines[0] and "fused:" in lines[0] and "exp" in lines[0]
    assert "recompiling" in err and "[3, 4] -> [5, 4]" in err


def test_debug_level_2_adds_the_source(monkeypatch, capsys):
    monkeypatch.setenv("TRACEGRAD_DEBUG", "2")
    tracegrad.compile(lambda x: x.exp() + 1)(tracegrad.ones(3))
    err = capsys.readouterr().err
    assert "def forward(" in err and "_u_exp" in err


def test_writing_a_saved_input_fails_at_backward_as_eagerly():
    def f(L, w):
        y = (w * w).sum()
        with L.no_grad():
            w.add_(1)  # w was saved for the backward of w * w
        return y

    wr = torch.ones(3, requires_grad=True)
    yr = f(torch, wr)
    with pytest.raises(RuntimeError, match="modified by an inplace operation") as theirs:
        yr.backward()
    w = tracegrad.ones(3, requires_grad=True)
    y = tracegrad.compile(lambda w: f(tracegrad, w))(w)  # the call itself works, as eagerly
    assert_values(w.detach(), wr.detach())
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
    assert type(theirs.value) is RuntimeError


def test_outputs_mixing_a_returned_input_and_computed_values():
    def f(x, y):
        return x, (x * y).sum(), y * 3

    for_torch = [torch.ones(3, requires_grad=True), torch.full((3,), 2.0, requires_grad=True)]
    ours = [tracegrad.ones(3, requires_grad=True), tracegrad.full((3,), 2.0, requires_grad=True)]
    a, b, c = tracegrad.compile(f)(*ours)
    ar, br, cr = f(*for_torch)
    assert a is ours[0]  # returned as is, like eager
    (a.sum() * 2 + b + c.sum()).backward()
    (ar.sum() * 2 + br + cr.sum()).backward()
    for o, t in zip(ours, for_torch):
        assert_values(o.grad, t.grad)


def test_results_of_earlier_calls_are_never_overwritten():
    """Temporaries live in buffers reused across calls; what a call returns must not."""
    def f(L, x):
        t = (x * 2).exp()  # a temporary
        return t.sum(0), t * x, x.t().contiguous()

    cf = tracegrad.compile(lambda x: f(tracegrad, x))
    (x1, x1r), (x2, x2r) = _both((4, 3), 1), _both((4, 3), 2)
    first = cf(x1)
    kept = [o.numpy().copy() for o in first]
    second = cf(x2)
    for o, k, r in zip(first, kept, f(torch, x1r)):
        assert np.array_equal(o.numpy(), k)
        assert_values(o, r)
    for o, r in zip(second, f(torch, x2r)):
        assert_values(o, r)


def test_module_buffers_updated_in_training_mode():
    """BatchNorm's running statistics are buffers written in place: effects of the compiled call."""
    def build(L):
        m = L.nn.Sequential(L.nn.Linear(6, 4), L.nn.BatchNorm1d(4), L.nn.ReLU())
        rng = np.random.default_rng(0)
        with L.no_grad():
            for p in m.parameters():
                p.copy_(L.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32)))
        return m

    mt, mr = build(tracegrad), build(torch)
    cm = tracegrad.compile(mt)
    for i in range(3):
        x, xr = _both((5, 6), i)
        close(cm(x), mr(xr))
        close(mt[1].running_mean, mr[1].running_mean)
        close(mt[1].running_var, mr[1].running_var)
        assert mt[1].num_batches_tracked.item() == mr[1].num_batches_tracked.item()
    mt.eval()
    mr.eval()
    x, xr = _both((5, 6), 9)
    close(cm(x), mr(xr))


def test_the_same_tensor_passed_twice():
    def f(L, a, b):
        a.mul_(2)
        return a + b

    x, xr = _both((3,), 0)
    y, _ = _both((3,), 1)
    cf = tracegrad.compile(lambda a, b: f(tracegrad, a, b))
    out = cf(x, x)  # b sees the write through a, as eagerly
    ref = f(torch, xr, xr)
    assert_values(out, ref)
    assert_values(x, xr)
    y0 = y.clone()
    out = cf(x, y)  # distinct tensors: another signature, not the aliased program
    ref = f(torch, xr, torch.tensor(y0.numpy()))
    assert_values(out, ref)
    assert len(cf.cache) == 2


def test_old_style_updates_through_data_aliases():
    """`w.data -= lr * w.grad.data` (pre-0.4 tutorials): aliases of the same memory are one value."""
    def make(L):
        rng = np.random.default_rng(0)
        return [L.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in ((8, 5), (5, 3))]

    def step(L, ws, x, y):
        w1, w2 = ws
        loss = (x.mm(w1).clamp(min=0).mm(w2) - y).pow(2).sum()
        loss.backward()
        w1.data -= 1e-3 * w1.grad.data
        w2.data -= 1e-3 * w2.grad.data
        w1.grad.data.zero_()
        w2.grad.data.zero_()
        return loss

    wt, wr = make(tracegrad), make(torch)
    cstep = tracegrad.compile(lambda x, y: step(tracegrad, wt, x, y))
    for i in range(4):
        (x, xr), (y, yr) = _both((4, 8), 10 + i), _both((4, 3), 20 + i)
        close(cstep(x, y), step(torch, wr, xr, yr))
        for p, q in zip(wt, wr):
            close(p, q)
            close(p.grad, q.grad)


def test_partition_recomputes_cheap_pointwise_values_instead_of_saving_them():
    x, xr = _both((64, 32), 0, True)
    rep = tracegrad.explain(lambda x: ((x * 2).sin() * 3).sum(), x)
    assert [v.name for v in rep.saved] == ["x"]  # not x * 2, not sin(x * 2): the backward recomputes them
    assert any(v.name == "x" for n in rep.backward.nodes for v in n.inputs())  # x * 2 made again from x
    (w, wr) = _both((32, 16), 1, True)
    rep = tracegrad.explain(lambda x, w: (x @ w).exp().sum(), x, w)
    saved = {v.name: v for v in rep.saved}
    assert "x" in saved and "w" in saved
    # the matmul is never recomputed in the backward (only cheap pointwise work is)
    assert sum(n.op.name == "matmul" for n in rep.backward.nodes) == 2
    out = tracegrad.compile(lambda x, w: (x @ w * 0.1).exp().sum())(x, w)
    out.backward()
    (xr @ wr * 0.1).exp().sum().backward()
    close(w.grad, wr.grad)
    close(x.grad, xr.grad)


def test_an_untraceable_optimizer_fails_before_touching_its_state():
    m = tracegrad.nn.Linear(3, 2)
    opt = tracegrad.optim.Adagrad(m.parameters(), lr=0.1)
    x = tracegrad.ones(4, 3)
    m(x).sum().backward()
    opt.step()  # eagerly: state exists, step 1
    before = {k: v.clone() for k, v in opt.state[m.weight].items()}

    def step(x):
        opt.zero_grad()
        m(x).sum().backward()
        opt.step()

    with pytest.raises(NotImplementedError, match="Adagrad.step cannot be traced"):
        tracegrad.compile(step)(x)
    for k, v in opt.state[m.weight].items():
        assert np.array_equal(v.numpy(), before[k].numpy())
    assert m.weight.grad is not None  # the trace restored the gradient it cleared


def test_changing_a_saved_output_in_place_fails_at_backward_as_eagerly():
    def f(L, x, w):
        return (x @ w).relu()  # relu's backward reads its own output (the matmul is not recomputed)

    (x, xr), (w, wr) = _both((4, 3)), _both((3, 2), 1, True)
    yr = f(torch, xr, wr)
    with torch.no_grad():
        yr.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        yr.sum().backward()
    cf = tracegrad.compile(lambda x, w: f(tracegrad, x, w))
    assert any(v.kind == "node" for v in tracegrad.explain(lambda x, w: f(tracegrad, x, w), x, w).saved)
    y = cf(x, w)
    with tracegrad.no_grad():
        y.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_returning_an_argument_changed_in_place_returns_that_tensor():
    w = tracegrad.zeros(3)

    def f(x):
        x.mul_(2).add_(1)
        w.add_(x)
        return x, w

    x, xr = _both((3,))
    out, ww = tracegrad.compile(f)(x)
    assert out is x and ww is w  # the objects themselves, as eagerly
    xr.mul_(2).add_(1)
    assert_values(x, xr)
    assert_values(w, xr)


def test_compiled_backward_frees_its_saved_arrays():
    """After backward without retain_graph, the compiled node drops what it saved (as torch's nodes do),
    and a second backward raises torch's error."""
    f = tracegrad.compile(lambda x: (x * 2).exp().sum())
    x = tracegrad.ones(3, requires_grad=True)
    y = f(x)
    node = y.grad_fn
    assert node.ctx[1]  # the forward saved arrays for the backward program
    y.backward()
    assert node.ctx[1] == ()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()
    xr = torch.ones(3, requires_grad=True)
    yr = (xr * 2).exp().sum()
    yr.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        yr.backward()

"""tracegrad.compile(fn, backend="triton") on CPU tensors runs its Triton kernels.

Every launching fusion group that lowers runs as its generated Triton kernel under
Triton's interpreter; the rest fall back to NumPy with a warning. These tests
mirror a representative subset of tests/test_compile*.py (pointwise chains,
reductions, softmax, layer norm, an MLP, training steps) with backend="triton":
values and gradients against torch on the same inputs, and proof that the Triton
kernels really ran (a launch counter, and a deliberately wrong lowering that
changes the result)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import triton  # noqa: F401  (these tests must fail, not skip, without Triton)
import tracegrad as tg
from tracegrad.kernels.triton import backend as TB
from tracegrad.kernels.triton.backend import TritonKernel, TritonProgram
from tracegrad.ops.table import OPS
from test_compile_ops import CASES, _run_case
from util import assert_values
from training_steps import D_IN, D_OUT, H, N, build_mlp, module_step, two_layer_step

NO_TRITON_FORM = ".*has no Triton form"


def _both(shape, seed=0, requires_grad=False):
    a = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    t, r = tg.tensor(a), torch.tensor(a)
    if requires_grad:
        t.requires_grad_(True)
        r.requires_grad_(True)
    return t, r


def close(ours, theirs, rtol=1e-4, atol=1e-5):
    np.testing.assert_allclose(np.asarray(ours.detach()._values(), np.float64),
                               theirs.detach().to(torch.float64).numpy(), rtol=rtol, atol=atol)


@pytest.fixture
def launches(monkeypatch):
    """Counts the Triton kernel launches under the interpreter, by kernel name."""
    seen: list[str] = []
    real = TritonKernel.run_interpreted

    def counted(self, arrays):
        seen.append(self.name)
        return real(self, arrays)

    monkeypatch.setattr(TritonKernel, "run_interpreted", counted)
    return seen


def _programs(cf):
    for entries in cf.cache.values():
        for e in entries:
            yield e.fwd
            if e.bwd is not None:
                yield e.bwd


def all_triton(cf) -> None:
    """Every kernel of every program of `cf` is a Triton kernel that ran at least once."""
    progs = list(_programs(cf))
    assert progs and all(isinstance(p, TritonProgram) for p in progs)
    for p in progs:
        for k in p.kernels:
            assert isinstance(k, TritonKernel), f"{k.name} did not lower"
            assert k.runs >= 1 and k.failed is None, f"{k.name} never ran under the interpreter"


def fn(L, x, y):
    return ((x * 2 + y).exp() - x.sum(-1, keepdim=True)).relu()


# ---- item 1: the Triton kernels are what runs --------------------------------------------------------
def test_compiled_program_runs_triton_kernels_for_values_and_gradients(launches):
    (x, xr), (y, yr) = _both((3, 40), 0, True), _both((3, 40), 1, True)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=NO_TRITON_FORM)
        cf = tg.compile(lambda x, y: fn(tg, x, y), backend="triton")
        h, hr = x * 0.5, xr * 0.5  # eager history before
        out = cf(h, y)
        assert type(out.grad_fn).__name__ == "CompiledFunctionBackward"
        (out.sin() * 2).sum().backward()
    (fn(torch, hr, yr).sin() * 2).sum().backward()
    assert_values(out.detach(), fn(torch, hr, yr).detach())
    assert_values(x.grad, xr.grad)
    assert_values(y.grad, yr.grad)
    all_triton(cf)
    assert len(launches) == 2  # one forward kernel, one backward kernel


def test_a_wrong_lowering_changes_the_compiled_result(monkeypatch, rng):
    """If the program secretly ran NumPy, breaking the Triton form of exp would change nothing."""
    x = tg.from_numpy(rng.standard_normal((4, 8)).astype(np.float32))
    want = torch.from_numpy(x.numpy()).exp() * 2
    good = tg.compile(lambda t: t.exp() * 2, backend="triton")(x)
    torch.testing.assert_close(torch.from_numpy(good.numpy()), want)
    monkeypatch.setattr(OPS["exp"], "lowering", "tl.exp({0}) + 1.0")
    bad = tg.compile(lambda t: t.exp() * 2, backend="triton")(x)
    torch.testing.assert_close(torch.from_numpy(bad.numpy()), want + 2)
    numpy_backend = tg.compile(lambda t: t.exp() * 2)(x)  # the NumPy backend is untouched
    torch.testing.assert_close(torch.from_numpy(numpy_backend.numpy()), want)


def test_fallback_groups_warn_and_still_match_torch(launches, rng):
    x = tg.from_numpy(rng.standard_normal((4, 8)).astype(np.float32))
    with pytest.warns(UserWarning, match="has no Triton form and runs on NumPy"):
        cf = tg.compile(lambda t: (t.cumsum(-1) * 2).exp(), backend="triton")
        got = cf(x)
    torch.testing.assert_close(torch.from_numpy(got.numpy()), (torch.from_numpy(x.numpy()).cumsum(-1) * 2).exp())
    (prog,) = _programs(cf)
    kinds = [isinstance(k, TritonKernel) for k in prog.kernels]
    assert False in kinds and True in kinds and launches  # the scan on NumPy, the rest in Triton


def test_host_program_lists_each_launch(rng):
    x = tg.from_numpy(rng.standard_normal((4, 8)).astype(np.float32))
    cf = tg.compile(lambda t: t.exp().sum(-1), backend="triton")
    cf(x)
    (prog,) = _programs(cf)
    assert "@triton.jit" in prog.source and "# Triton" in prog.source and prog.source.rstrip().endswith(
        prog.graph.outputs[0].name)


# ---- item 2: a subset of the compile tests, with backend="triton" ----------------------------------
# cases of tests/test_compile_ops.py whose every group lowers (forward and backward)
FULLY_TRITON = ["exp", "sigmoid", "tanh", "erf", "clamp", "add", "div", "pow", "where", "gelu", "silu",
                "softplus", "mean", "max_full", "softmax_functional", "mse_loss_functional", "matmul", "clone",
                "transpose_3d", "squeeze_unsqueeze"]
# cases where some groups fall back (leading-dim reductions, multi-output ops, scans...) but values hold
MIXED = ["add_broadcast", "sum", "amax_amin", "var_std", "logsumexp", "layer_norm", "cross_entropy",
         "addmm_linear", "view_reshape"]
_BY_NAME = {c.name: c for c in CASES}


@pytest.mark.parametrize("name", FULLY_TRITON)
def test_compile_ops_case_runs_entirely_in_triton(name, launches):
    case = _BY_NAME[name]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=NO_TRITON_FORM)
        _run_case(case, case.shape or ((3, 4, 5) if case.min_dims >= 3 else (3, 33)), 7, backend="triton")
    assert launches


@pytest.mark.parametrize("name", MIXED)
def test_compile_ops_case_with_fallbacks_matches_torch(name, launches):
    case = _BY_NAME[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _run_case(case, case.shape or (4, 6), 3, backend="triton")
    assert launches


def softmax(L, x):
    e = (x - x.amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


def layer_norm(L, x, w, b):
    mu = x.mean(-1, keepdim=True)
    xc = x - mu
    var = (xc * xc).mean(-1, keepdim=True)
    return xc * (var + 1e-5).rsqrt() * w + b


@pytest.mark.parametrize("f, shapes", [(softmax, [(5, 70)]), (layer_norm, [(6, 48), (48,), (48,)])],
                         ids=["softmax", "layer_norm"])
def test_softmax_and_layer_norm_values_and_gradients(f, shapes, launches):
    pairs = [_both(s, i, True) for i, s in enumerate(shapes)]
    ours, theirs = [p[0] for p in pairs], [p[1] for p in pairs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # layer norm's weight gradient sums over rows: NumPy
        cf = tg.compile(lambda *a: f(tg, *a), backend="triton")
        out = cf(*ours)
        ((out + 1) ** 2).mean().backward()
    ref = f(torch, *theirs)
    ((ref + 1) ** 2).mean().backward()
    assert_values(out.detach(), ref.detach())
    for o, t in zip(ours, theirs):
        assert_values(o.grad, t.grad)
    fwd = next(_programs(cf))
    assert all(isinstance(k, TritonKernel) for k in fwd.kernels)
    assert len(launches) >= 2


def test_compiled_mlp_module_matmul_bias_activation():
    model = tg.nn.Sequential(tg.nn.Linear(6, 16), tg.nn.GELU(), tg.nn.Linear(16, 3), tg.nn.ReLU())
    ref = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.GELU(), torch.nn.Linear(16, 3), torch.nn.ReLU())
    with torch.no_grad():
        for p, q in zip(model.parameters(), ref.parameters()):
            q.copy_(torch.tensor(p.detach().numpy()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cm = tg.compile(model, backend="triton")
        x, xr = _both((5, 6))
        out = cm(x)
        ((out + 1) ** 2).mean().backward()
    r = ref(xr)
    ((r + 1) ** 2).mean().backward()
    assert_values(out.detach(), r.detach())
    for p, q in zip(model.parameters(), ref.parameters()):
        assert_values(p.grad, q.grad)
    fwd = next(_programs(cm._compiled))
    # matmul + bias + GELU and matmul + bias + ReLU: the forward is Triton kernels only
    assert fwd.kernels and all(isinstance(k, TritonKernel) and k.runs for k in fwd.kernels)
    assert any(k.spec.matmul is not None for k in fwd.kernels)


def test_seed_two_layer_training_step(launches):
    """The tutorial's loop (x.mm(w1).clamp(min=0).mm(w2), manual SGD), forward and backward, compiled."""
    (x, xr), (y, yr) = _both((N, D_IN), 0), _both((N, D_OUT), 1)
    (w1, w1r), (w2, w2r) = _both((D_IN, H), 2, True), _both((H, D_OUT), 3, True)
    step = two_layer_step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cstep = tg.compile(lambda *a: step(tg, *a), backend="triton")
        for _ in range(3):
            loss = cstep(x, y, w1, w2)
            ref = step(torch, xr, yr, w1r, w2r)
            close(loss, ref)
            close(w1, w1r)
            close(w2, w2r)
    assert launches and sum(isinstance(k, TritonKernel) for p in _programs(cstep) for k in p.kernels) >= 3


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_module_training_step_with_optim_sgd(momentum):
    (mt, ot, lt), (mr, orr, lr_) = build_mlp(tg, "SGD", momentum=momentum), build_mlp(torch, "SGD", momentum=momentum)
    step = module_step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cstep = tg.compile(lambda x, y: step(mt, ot, lt, x, y), backend="triton")
        for i in range(3):
            (x, xr), (y, yr) = _both((6, 10), 10 + i), _both((6, 3), 20 + i)
            close(cstep(x, y), step(mr, orr, lr_, xr, yr))
            for p, q in zip(mt.parameters(), mr.parameters()):
                close(p, q)
                close(p.grad, q.grad)
    assert any(isinstance(k, TritonKernel) and k.runs for p in _programs(cstep) for k in p.kernels)


# ---- item 3: explain with backend="triton" -----------------------------------------------------------
def test_explain_shows_triton_source_ir_resources_and_roofline(rng):
    x = tg.from_numpy(rng.standard_normal((8, 64)).astype(np.float32)).requires_grad_()
    rep = tg.explain(lambda t: tg.nn.functional.softmax(t * 2, -1), x, backend="triton")
    text = str(rep)
    assert "backend triton" in text and "@triton.jit" in text and "# roofline:" in text
    (k,) = rep.kernels
    assert isinstance(k, TritonKernel) and k.source in text
    assert "tt.func" in k.ir("ttir")
    assert "#ttg." in k.ir("ttgir") or "ttg." in k.ir("ttgir")
    assert "define" in k.ir("llir")
    assert ".target sm_90a" in k.ir("ptx")
    c = k.compiled()
    assert c.capability == 90 and c.n_regs > 0 and c.n_spills == 0 and c.shared >= 0
    line = k.roofline()
    # bytes: each load and store once (the input, the output, and the row statistics saved for backward)
    moved = sum(int(np.prod(b.shape)) * b.dtype.itemsize for b in k.spec.loads + k.spec.stores)
    assert line.bytes == moved >= 2 * 8 * 64 * 4 and line.flops > 0
    assert line.time == max(line.bytes / line.device.bandwidth, line.t_compute)
    report = k.report()
    assert f"{c.n_regs} registers" in report and "shared memory" in report and "roofline" in report
    assert rep.backward_kernels and all(isinstance(b, TritonKernel) for b in rep.backward_kernels)
    with pytest.raises(ValueError, match="unknown stage"):
        k.ir("sass")


def test_run_interpreted_helper_is_the_program(rng):
    x = rng.standard_normal((4, 8)).astype(np.float32)
    rep = tg.explain(lambda t: (t * 3).tanh().sum(-1), tg.from_numpy(x), backend="triton")
    (got,) = TB.run_interpreted(rep.forward, rep.forward_plan, rep.kernels, [x])
    torch.testing.assert_close(torch.from_numpy(np.asarray(got)), (torch.from_numpy(x) * 3).tanh().sum(-1))

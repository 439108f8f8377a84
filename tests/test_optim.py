"""tracegrad.optim against torch.optim: several steps from identical weights and gradients,
state and state dicts, param groups, errors, lr schedulers and gradient clipping."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tracegrad
from nn_helpers import close, copy_weights, pair, raises_like

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, weight_decay=0.1, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True, maximize=True)),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.9))),
    ("Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.01, weight_decay=0.5, amsgrad=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, alpha=0.3, centered=True, maximize=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.5)),
]


def _model(L):
    return L.nn.Sequential(L.nn.Linear(5, 8), L.nn.Tanh(), L.nn.Linear(8, 3))


def _run(L, model, opt, x, y, steps):
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = L.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _close_or_as_close_as_torch(ours, theirs, ref64, msg, rtol, atol):
    """Within tolerance of torch, or (DESIGN's rule for float32) no farther from the float64
    reference than torch's own float32 result is (with a factor 2 for our own rounding)."""
    a, b, r = (np.asarray(v, dtype=np.float64) for v in (ours, theirs, ref64))
    ok = np.abs(a - b) <= atol + rtol * np.abs(b)
    ok |= np.abs(a - r) <= 2 * np.abs(b - r) + atol
    assert ok.all(), f"{msg}: ours {a[~ok][:5]}, torch {b[~ok][:5]}, float64 reference {r[~ok][:5]}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,kw", CONFIGS, ids=[f"{n}-{k}" for n, k in CONFIGS])
def test_optimizer_matches_torch(name, kw, dtype):
    # fixed weights: otherwise they depend on which tests ran before in this worker
    torch.manual_seed(0)
    ours, theirs, ref = _model(tracegrad), _model(torch), _model(torch)
    copy_weights(ours, theirs)
    ref.load_state_dict(theirs.state_dict())
    ours.to(getattr(tracegrad, dtype)), theirs.to(getattr(torch, dtype)), ref.double()
    oo = getattr(tracegrad.optim, name)(ours.parameters(), **kw)
    ot = getattr(torch.optim, name)(theirs.parameters(), **kw)
    x, y = pair((16, 5), dtype, 1, requires_grad=False), pair((16, 3), dtype, 2, requires_grad=False)
    lo = _run(tracegrad, ours, oo, x[0], y[0], 6)
    lt = _run(torch, theirs, ot, x[1], y[1], 6)
    lr = _run(torch, ref, getattr(torch.optim, name)(ref.parameters(), **kw), x[1].double(), y[1].double(), 6)
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    _close_or_as_close_as_torch(lo, lt, lr, f"{name} losses", **tol)
    for (n, po), (_, pt), (_, pr) in zip(ours.named_parameters(), theirs.named_parameters(), ref.named_parameters()):
        _close_or_as_close_as_torch(po.detach().numpy(), pt.detach().numpy(), pr.detach().numpy(), f"{name} {n}",
                                    **tol)
    # the state holds the same things under the same names
    so, st = oo.state_dict(), ot.state_dict()
    assert so["param_groups"] == st["param_groups"]
    assert sorted(so["state"]) == sorted(st["state"])
    for k in st["state"]:
        assert list(so["state"][k]) == list(st["state"][k])
        for key, vt in st["state"][k].items():
            vo = so["state"][k][key]
            assert vo.dtype.name == str(vt.dtype).split(".")[-1], key
            # absolute error relative to the state's scale: float32 sums of products in another order
            # differ in the last bits, and a centered variance cancels them into small entries
            scale = max(1.0, float(vt.abs().max()))
            close(vo, vt, None, f"state {key}", rtol=tol["rtol"], atol=tol["atol"] * scale)


def test_param_groups_and_zero_grad():
    w1 = tracegrad.nn.Parameter(tracegrad.ones(3))
    w2 = tracegrad.nn.Parameter(tracegrad.ones(2))
    opt = tracegrad.optim.SGD([{"params": [w1]}, {"params": w2, "lr": 0.5}], lr=0.1, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert opt.param_groups[1]["momentum"] == 0.9 and opt.param_groups[1]["params"] == [w2]
    (w1.sum() + w2.sum()).backward()
    opt.step()
    np.testing.assert_allclose(w1.detach().numpy(), 0.9)
    np.testing.assert_allclose(w2.detach().numpy(), 0.5)
    opt.zero_grad(set_to_none=False)
    assert float(w1.grad.abs().sum()) == 0
    opt.zero_grad()
    assert w1.grad is None and w2.grad is None
    w3 = tracegrad.nn.Parameter(tracegrad.ones(1))
    opt.add_param_group({"params": [w3], "lr": 1.0})
    assert len(opt.param_groups) == 3 and opt.param_groups[2]["momentum"] == 0.9
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        opt.add_param_group({"params": [w1]})
    rep = repr(opt)
    assert rep.startswith("SGD (\nParameter Group 0\n    dampening: 0\n") and "Parameter Group 2" in rep


def test_optimizer_repr_matches_torch():
    for name, kw in [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", {}), ("AdamW", {}), ("RMSprop", {}),
                     ("Adagrad", {})]:
        po = [tracegrad.nn.Parameter(tracegrad.ones(2))]
        pt = [torch.nn.Parameter(torch.ones(2))]
        assert repr(getattr(tracegrad.optim, name)(po, **kw)) == repr(getattr(torch.optim, name)(pt, **kw))


def test_errors_match_torch():
    p, pt = tracegrad.nn.Parameter(tracegrad.ones(3)), torch.nn.Parameter(torch.ones(3))
    cases = [
        ("SGD", lambda L, q: ([], dict(lr=0.1))),
        ("SGD", lambda L, q: (q, dict(lr=0.1))),
        ("SGD", lambda L, q: ([q], dict(lr=-0.1))),
        ("SGD", lambda L, q: ([q], dict(lr=0.1, momentum=-1))),
        ("SGD", lambda L, q: ([q], dict(lr=0.1, nesterov=True))),
        ("SGD", lambda L, q: ([{"params": [q]}, {"params": [q]}], dict(lr=0.1))),
        ("Adam", lambda L, q: ([q], dict(betas=(1.0, 0.9)))),
        ("Adam", lambda L, q: ([q], dict(eps=-1))),
        ("Adam", lambda L, q: ([q], dict(weight_decay=-1))),
        ("SGD", lambda L, q: ([L.ones(2, requires_grad=True) * 2], dict(lr=0.1))),
        ("RMSprop", lambda L, q: ([q], dict(alpha=-1))),
        ("Adagrad", lambda L, q: ([q], dict(lr_decay=-1))),
    ]
    for name, make in cases:
        a_o, kw_o = make(tracegrad, p)
        a_t, kw_t = make(torch, pt)
        raises_like(lambda: getattr(tracegrad.optim, name)(a_o, **kw_o), lambda: getattr(torch.optim, name)(a_t, **kw_t))
    with pytest.warns(UserWarning, match="duplicate parameters"):
        tracegrad.optim.SGD([p, p], lr=0.1)
    o, t = tracegrad.optim.SGD([p], lr=0.1), torch.optim.SGD([pt], lr=0.1)
    for bad in ({"state": {}, "param_groups": [{"params": [0, 1], "lr": 0.1}]}, {"state": {}, "param_groups": []}):
        raises_like(lambda: o.load_state_dict(bad), lambda: t.load_state_dict(bad))


def test_state_dict_round_trip_continues_identically():
    def fresh(L, src=None):
        m = _model(L)
        if src is not None:
            copy_weights(m, src) if L is tracegrad else m.load_state_dict(src.state_dict())
        return m

    torch_model = _model(torch)
    ours = fresh(tracegrad, torch_model)
    theirs = fresh(torch, torch_model)
    x, y = pair((8, 5), requires_grad=False, seed=3), pair((8, 3), requires_grad=False, seed=4)
    oo = tracegrad.optim.Adam(ours.parameters(), lr=0.01)
    ot = torch.optim.Adam(theirs.parameters(), lr=0.01)
    _run(tracegrad, ours, oo, x[0], y[0], 3)
    _run(torch, theirs, ot, x[1], y[1], 3)
    # move both into new model/optimizer pairs through state dicts (ours through save/load too)
    import io

    buf = io.BytesIO()
    tracegrad.save({"model": ours.state_dict(), "opt": oo.state_dict()}, buf)
    buf.seek(0)
    ck = tracegrad.load(buf)
    ours2 = _model(tracegrad)
    ours2.load_state_dict(ck["model"])
    oo2 = tracegrad.optim.Adam(ours2.parameters(), lr=0.5)
    oo2.load_state_dict(ck["opt"])
    assert oo2.param_groups[0]["lr"] == 0.01
    theirs2 = _model(torch)
    theirs2.load_state_dict(theirs.state_dict())
    ot2 = torch.optim.Adam(theirs2.parameters(), lr=0.5)
    ot2.load_state_dict(ot.state_dict())
    lo = _run(tracegrad, ours2, oo2, x[0], y[0], 3)
    lt = _run(torch, theirs2, ot2, x[1], y[1], 3)
    np.testing.assert_allclose(lo, lt, rtol=2e-5)
    assert float(oo2.state[ours2[0].weight]["step"]) == 6.0


def test_closure_and_bfloat16_params():
    w = tracegrad.nn.Parameter(tracegrad.tensor([1.0, -2.0]))
    opt = tracegrad.optim.SGD([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure)) == 5.0
    np.testing.assert_allclose(w.detach().numpy(), [0.8, -1.6], rtol=1e-6)
    for name in ("SGD", "Adam"):
        wo = tracegrad.nn.Parameter(tracegrad.tensor([1.0, -2.0, 3.0], dtype=tracegrad.bfloat16))
        wt = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0], dtype=torch.bfloat16))
        oo = getattr(tracegrad.optim, name)([wo], lr=0.1)
        ot = getattr(torch.optim, name)([wt], lr=0.1)
        for _ in range(3):
            for w_, o_ in ((wo, oo), (wt, ot)):
                o_.zero_grad()
                (w_ * w_).sum().backward()
                o_.step()
        close(wo, wt, "bfloat16")


def test_plain_sgd_half_precision_and_versions():
    """Plain SGD (no momentum, weight decay or maximize) updates in place like torch: same values in
    float16, a version bump per step, and a parameter without a gradient left alone."""
    wo = tracegrad.nn.Parameter(tracegrad.tensor([1.0, -2.0, 3.0], dtype=tracegrad.float16))
    wt = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0], dtype=torch.float16))
    idle_o, idle_t = tracegrad.nn.Parameter(tracegrad.ones(2)), torch.nn.Parameter(torch.ones(2))
    oo, ot = tracegrad.optim.SGD([wo, idle_o], lr=0.1), torch.optim.SGD([wt, idle_t], lr=0.1)
    for _ in range(3):
        for w_, o_ in ((wo, oo), (wt, ot)):
            o_.zero_grad()
            (w_ * w_ * w_).sum().backward()
            o_.step()
    close(wo, wt, "float16")
    assert wo._version == wt._version and idle_o._version == idle_t._version == 0
    close(idle_o, idle_t)


# ---- schedulers ----------------------------------------------------------------------------------------------
SCHEDULERS = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5, 5], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=5)),
    ("CosineAnnealingLR", dict(T_max=4, eta_min=0.01)),
    ("LambdaLR", dict(lr_lambda=lambda e: 1.0 / (e + 1))),
]


@pytest.mark.parametrize("name,kw", SCHEDULERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(SCHEDULERS)])  # a lambda's repr differs per xdist worker
def test_scheduler_matches_torch(name, kw):
    po = [tracegrad.nn.Parameter(tracegrad.ones(1))]
    pt = [torch.nn.Parameter(torch.ones(1))]
    oo = tracegrad.optim.SGD([{"params": po}, {"params": [tracegrad.nn.Parameter(tracegrad.ones(1))], "lr": 0.3}],
                             lr=0.1)
    ot = torch.optim.SGD([{"params": pt}, {"params": [torch.nn.Parameter(torch.ones(1))], "lr": 0.3}], lr=0.1)
    so = getattr(tracegrad.optim.lr_scheduler, name)(oo, **kw)
    st = getattr(torch.optim.lr_scheduler, name)(ot, **kw)
    seq_o, seq_t = [], []
    for _ in range(14):
        oo.step(), ot.step()
        so.step(), st.step()
        seq_o.append(so.get_last_lr())
        seq_t.append(st.get_last_lr())
    assert seq_o == seq_t  # the same recurrences give the same floats
    assert [g["lr"] for g in oo.param_groups] == [g["lr"] for g in ot.param_groups]
    assert [g["initial_lr"] for g in oo.param_groups] == [0.1, 0.3]
    sd = so.state_dict()
    assert sd["last_epoch"] == st.state_dict()["last_epoch"] == 14 and "optimizer" not in sd
    fresh = getattr(tracegrad.optim.lr_scheduler, name)(tracegrad.optim.SGD(po, lr=0.1), **kw)
    fresh.load_state_dict(sd)
    assert fresh.last_epoch == 14 and fresh.get_last_lr() == so.get_last_lr()


def test_scheduler_warns_when_stepped_before_optimizer():
    opt = tracegrad.optim.SGD([tracegrad.nn.Parameter(tracegrad.ones(1))], lr=0.1)
    sched = tracegrad.optim.lr_scheduler.StepLR(opt, 1)
    with pytest.warns(UserWarning, match="Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`"):
        sched.step()
    with pytest.raises(TypeError, match="is not an Optimizer"):
        tracegrad.optim.lr_scheduler.StepLR(object(), 1)


# ---- clipping --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf"), 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    ours, theirs = _model(tracegrad), _model(torch)
    copy_weights(ours, theirs)
    x = pair((4, 5), requires_grad=False, seed=5)
    (ours(x[0]) ** 2).sum().backward()
    (theirs(x[1]) ** 2).sum().backward()
    no = tracegrad.nn.utils.clip_grad_norm_(ours.parameters(), max_norm, norm_type)
    nt = torch.nn.utils.clip_grad_norm_(theirs.parameters(), max_norm, norm_type)
    close(no, nt, rtol=1e-5)
    for (n, po), (_, pt) in zip(ours.named_parameters(), theirs.named_parameters()):
        close(po.grad, pt.grad, msg=n, rtol=1e-5)
    tracegrad.nn.utils.clip_grad_value_(ours.parameters(), 0.01)
    torch.nn.utils.clip_grad_value_(theirs.parameters(), 0.01)
    for (n, po), (_, pt) in zip(ours.named_parameters(), theirs.named_parameters()):
        close(po.grad, pt.grad, msg=n, rtol=1e-5)


def test_clip_grad_nonfinite_and_vectors():
    p = tracegrad.nn.Parameter(tracegrad.ones(2))
    p.grad = tracegrad.tensor([float("inf"), 1.0])
    with pytest.raises(RuntimeError, match="is non-finite, so it cannot be clipped"):
        tracegrad.nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert float(tracegrad.nn.utils.clip_grad_norm_([], 1.0)) == 0.0
    m = _model(tracegrad)
    v = tracegrad.nn.utils.parameters_to_vector(m.parameters())
    assert tuple(v.shape) == (5 * 8 + 8 + 8 * 3 + 3,)
    tracegrad.nn.utils.vector_to_parameters(v * 0 + 1, m.parameters())
    assert all(float(q.min()) == 1.0 for q in m.parameters())

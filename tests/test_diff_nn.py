"""Differential tests of tracegrad.nn, nn.functional and optim against torch: the Module API, the
functional forms with their less common arguments (values and gradients), argument errors, and
optimizers/schedulers over many steps. Each scenario runs with both libraries (`m` is torch or
tracegrad) and the results, or the raised errors, are compared."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch

import tracegrad
from side_by_side import raises_same, same

RNG = np.random.default_rng(20)
X = RNG.standard_normal((4, 5))                 # logits / inputs, float64 so tolerances are not the question
X4 = RNG.standard_normal((2, 4, 7, 6))
W4 = RNG.standard_normal((6, 2, 3, 3))
B6 = RNG.standard_normal(6)
T = np.array([1, 0, 4, 2])
T4 = RNG.integers(0, 4, (2, 7, 6))
P = RNG.random((4, 5))
WC = np.array([1.0, 2.0, 0.5, 3.0, 1.0])


def F(m):
    return m.nn.functional


def grads(m, fn, *arrays, grad_args=(0,)):
    """fn(*tensors) and the gradients of a non-uniform function of its (first) output w.r.t. the
    float arrays at positions grad_args."""
    ts = [m.tensor(a, requires_grad=(i in grad_args and a.dtype.kind == "f")) if isinstance(a, np.ndarray) else a
          for i, a in enumerate(arrays)]
    out = fn(*ts)
    first = out[0] if isinstance(out, tuple) else out
    res = [out]
    if first.requires_grad:
        ((first.double() * 1.3 + 0.5) ** 2).sum().backward()
        res += [t.grad for t in ts if isinstance(t, (torch.Tensor, tracegrad.Tensor)) and t.requires_grad]
    return res


# ---- Module API --------------------------------------------------------------------------------------
def _net(m):
    nn = m.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 4)
            self.seq = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2))
            self.b = self.a  # shared: deduplicated in parameters() and named_modules()
            self.register_buffer("rb", m.zeros(2))
            self.register_buffer("nb", m.ones(2), persistent=False)
            self.ml = nn.ModuleList([nn.LayerNorm(4), nn.Dropout(0.3)])
            self.md = nn.ModuleDict({"e": nn.Embedding(5, 3, padding_idx=0), "f": nn.Flatten()})
            self.pl = nn.ParameterList([nn.Parameter(m.ones(2)), nn.Parameter(m.ones(2, 3, dtype=m.float64))])
            self.pd = nn.ParameterDict({"p": nn.Parameter(m.zeros(3))})
    return Net()


@pytest.mark.parametrize("what", [
    lambda n: [k for k, _ in n.named_parameters()],
    lambda n: [k for k, _ in n.named_parameters(remove_duplicate=False)],
    lambda n: ([k for k, _ in n.named_parameters(prefix="x", recurse=False)],
               [k for k, _ in n.seq.named_parameters(prefix="p")]),
    lambda n: [k for k, _ in n.named_modules()],
    lambda n: [k for k, _ in n.named_modules(remove_duplicate=False)],
    lambda n: [k for k, _ in n.named_modules(prefix="r")],
    lambda n: ([k for k, _ in n.named_children()], len(list(n.children()))),
    lambda n: ([k for k, _ in n.named_buffers()], [k for k, _ in n.named_buffers(recurse=False)]),
    lambda n: list(n.state_dict().keys()),
    lambda n: list(n.state_dict(prefix="p.").keys()),
    lambda n: repr(n),
], ids=["params", "params_dup", "params_prefix", "modules", "modules_dup", "modules_prefix", "children",
        "buffers", "state_dict", "state_dict_prefix", "repr"])
def test_module_traversal(what):
    same(lambda m: what(_net(m)))


def test_parameter_containers_repr():
    """ParameterList names entries by dtype and ParameterDict by type name; one entry stays on the
    header line (torch's Module.__repr__ layout), more are indented; nested they indent again."""
    same(lambda m: repr(m.nn.ParameterList([m.nn.Parameter(m.ones(2))])))
    same(lambda m: repr(m.nn.ParameterList([m.nn.Parameter(m.ones(2)), m.nn.Parameter(m.ones(2, 3, dtype=m.float64))])))
    same(lambda m: repr(m.nn.ParameterDict({"a": m.nn.Parameter(m.ones(2, 3))})))
    same(lambda m: repr(m.nn.ParameterDict({"a": m.nn.Parameter(m.ones(2)),
                                            "b": m.nn.Parameter(m.ones(2, 3, dtype=m.float64))})))
    same(lambda m: (repr(m.nn.ParameterList()), repr(m.nn.ParameterDict())))
    same(lambda m: repr(m.nn.Sequential(m.nn.ParameterList([m.nn.Parameter(m.ones(2)), m.nn.Parameter(m.ones(2))]))))


def _load(m, edit, strict=True):
    n = _net(m)
    sd = n.state_dict()
    edit(m, sd)
    r = n.load_state_dict(sd, strict=strict)
    return list(r.missing_keys), list(r.unexpected_keys), str(r)


def test_load_state_dict_errors():
    same(lambda m: _load(m, lambda m, s: None))
    raises_same(lambda m: _load(m, lambda m, s: s.pop("a.weight")))
    raises_same(lambda m: _load(m, lambda m, s: s.update(q=m.zeros(1))))
    raises_same(lambda m: _load(m, lambda m, s: s.update({"a.bias": m.zeros(5)})))
    raises_same(lambda m: _load(m, lambda m, s: (s.update({"a.bias": m.zeros(5), "zz": m.ones(1)}), s.pop("rb"))))
    same(lambda m: _load(m, lambda m, s: (s.pop("a.weight"), s.update(zz=m.zeros(1))), strict=False))


def test_train_eval_apply_to_zero_grad_requires_grad():
    def train_eval(m):
        n = _net(m)
        n.eval()
        a = [x.training for x in n.modules()]
        n.ml.train()
        b = [x.training for x in n.modules()]
        return a, b, n.train(False) is n

    same(train_eval)

    def apply_to(m):
        n = _net(m)
        seen = []
        r = n.apply(lambda x: seen.append(type(x).__name__))
        n.to(m.float64)
        return seen, r is n, [str(p.dtype) for p in n.parameters()] + [str(b.dtype) for b in n.buffers()]

    same(apply_to)

    def zero_grad(m):
        n = _net(m)
        n.a(m.ones(2, 3)).sum().backward()
        n.a.zero_grad(set_to_none=False)
        kept = [p.grad for p in n.a.parameters()]
        n.zero_grad()
        r = n.requires_grad_(False)
        return kept, [p.grad for p in n.parameters()], [p.requires_grad for p in n.parameters()], r is n

    same(zero_grad)


def test_containers():
    def seq(m):
        s = m.nn.Sequential(m.nn.Linear(2, 3), m.nn.ReLU(), m.nn.Linear(3, 1))
        out = [len(s), repr(s[1:]), repr(s[-1]), type(s[0:2]).__name__]
        s.append(m.nn.Tanh())
        s[0] = m.nn.GELU()
        del s[1]
        s.insert(0, m.nn.Sigmoid())
        return out + [repr(s), len(s)]

    same(seq)
    same(lambda m: repr(m.nn.Sequential(OrderedDict([("fc", m.nn.Linear(2, 3)), ("act", m.nn.ReLU())]))))
    raises_same(lambda m: m.nn.Sequential(m.nn.ReLU())[3])

    def mlist(m):
        ml = m.nn.ModuleList([m.nn.ReLU()])
        ml.append(m.nn.Tanh())
        ml.extend([m.nn.Sigmoid()])
        ml.insert(1, m.nn.GELU())
        return repr(ml), len(ml), repr(ml[1:]), repr(ml[-1])

    same(mlist)
    raises_same(lambda m: m.nn.ModuleList([m.nn.ReLU()])[5])

    def mdict(m):
        d = m.nn.ModuleDict({"b": m.nn.ReLU(), "a": m.nn.Tanh()})
        d["c"] = m.nn.GELU()
        p = d.pop("b")
        return repr(d), list(d.keys()), len(d), "a" in d, repr(p)

    same(mdict)
    raises_same(lambda m: m.nn.ModuleDict({"b": m.nn.ReLU()})["zz"])


def test_setattr_delattr():
    def f(m):
        n = m.nn.Module()
        n.w = m.nn.Parameter(m.ones(2))
        n.c = m.nn.Linear(1, 1)
        a = [k for k, _ in n.named_parameters()]
        del n.w
        b = [k for k, _ in n.named_parameters()]
        del n.c
        lin = m.nn.Linear(2, 2)
        lin.bias = None
        return a, b, list(n.state_dict()), hasattr(n, "w"), list(lin.state_dict())

    same(f)
    raises_same(lambda m: setattr(m.nn.Linear(2, 2), "weight", m.ones(2, 2)))
    raises_same(lambda m: m.nn.Linear(2, 2).foo)


def test_forward_hooks_with_same_weights():
    def f(m):
        lin = m.nn.Linear(2, 2)
        with m.no_grad():
            lin.weight.copy_(m.tensor([[0.5, -1.0], [2.0, 0.25]]))
            lin.bias.copy_(m.tensor([0.1, -0.2]))
        calls = []
        h = lin.register_forward_hook(lambda mod, inp, out: out * 2)
        h2 = lin.register_forward_pre_hook(lambda mod, inp: (inp[0] + 1,))
        lin.register_forward_hook(lambda mod, inp, out: calls.append((type(inp).__name__, len(inp))))
        a = lin(m.ones(1, 2))
        h.remove()
        b = lin(m.ones(1, 2))
        h2.remove()
        return a, b, lin(m.ones(1, 2)), calls

    same(f)


# ---- functional forms: values and gradients ------------------------------------------------------------
T_IGN = T.copy()
T_IGN[1] = -100
T_3 = T.copy()
T_3[2] = 3

LOSS_CASES = {
    "ce_w": (lambda m, r, x, t, w: F(m).cross_entropy(x, t, weight=w, reduction=r), X, T, WC),
    "ce_w_ls": (lambda m, r, x, t, w: F(m).cross_entropy(x, t, weight=w, reduction=r, label_smoothing=0.2), X, T, WC),
    "ce_w_ignore_ls": (lambda m, r, x, t, w: F(m).cross_entropy(x, t, weight=w, reduction=r, ignore_index=3,
                                                                label_smoothing=0.1), X, T_3, WC),
    "ce_ignore_default": (lambda m, r, x, t: F(m).cross_entropy(x, t, reduction=r), X, T_IGN),
    "ce_probs": (lambda m, r, x, t, w: F(m).cross_entropy(x, t, weight=w, reduction=r, label_smoothing=0.3), X, P, WC),
    "ce_probs_neg_ignore": (lambda m, r, x, t: F(m).cross_entropy(x, t, reduction=r, ignore_index=-5), X, P),
    "ce_nd": (lambda m, r, x, t: F(m).cross_entropy(x, t, reduction=r, label_smoothing=0.1), X4, T4),
    "ce_nd_w": (lambda m, r, x, t, w: F(m).cross_entropy(x, t, w, reduction=r, ignore_index=1), X4, T4, WC[:4]),
    "nll_w": (lambda m, r, x, t, w: F(m).nll_loss(F(m).log_softmax(x, 1), t, weight=w, reduction=r, ignore_index=2),
              X, T, WC),
    "nll_nd": (lambda m, r, x, t: F(m).nll_loss(x, t, reduction=r), X4, T4),
    "mse": (lambda m, r, x, y: F(m).mse_loss(x, y, reduction=r), X, P),
    "l1": (lambda m, r, x, y: F(m).l1_loss(x, y, reduction=r), X, P),
    "smooth_l1_beta": (lambda m, r, x, y: F(m).smooth_l1_loss(x, y, reduction=r, beta=0.5), X, P),
    "smooth_l1_beta0": (lambda m, r, x, y: F(m).smooth_l1_loss(x, y, reduction=r, beta=0.0), X, P),
    "huber_delta": (lambda m, r, x, y: F(m).huber_loss(x, y, reduction=r, delta=0.3), X, P),
    "bce_w": (lambda m, r, x, y, w: F(m).binary_cross_entropy(x.sigmoid(), y, weight=w, reduction=r), X, P, WC),
    "bce_logits_w_pos": (lambda m, r, x, y, w, pw: F(m).binary_cross_entropy_with_logits(
        x, y, weight=w, pos_weight=pw, reduction=r), X, P, WC, WC[::-1].copy()),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", list(LOSS_CASES))
def test_losses_values_and_grads(name, reduction):
    fn, *arrays = LOSS_CASES[name]
    same(lambda m: grads(m, lambda *t: fn(m, reduction, *t), *arrays))


def test_cross_entropy_probabilities_refuse_ignore_index():
    """torch refuses a class index to ignore (>= 0) when the target holds probabilities."""
    raises_same(lambda m: F(m).cross_entropy(m.tensor(X), m.tensor(P), ignore_index=1))
    raises_same(lambda m: F(m).cross_entropy(m.tensor(X), m.tensor(P), ignore_index=0, label_smoothing=0.1))


CONV_KWARGS = [dict(), dict(stride=2), dict(stride=(2, 1), padding=(1, 2)), dict(padding="same"), dict(padding="valid"),
               dict(dilation=2, padding=2), dict(dilation=(2, 1), padding="same"), dict(padding=1, stride=3, dilation=2)]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kw", CONV_KWARGS, ids=str)
def test_conv2d_arguments(kw, bias):
    same(lambda m: grads(m, lambda x, w, b: F(m).conv2d(x, w, b if bias else None, **kw), X4[:, :2], W4, B6,
                         grad_args=(0, 1, 2)))


def test_conv2d_groups_and_unbatched():
    same(lambda m: grads(m, lambda x, w, b: F(m).conv2d(x, w, b, groups=2, padding=1), X4, W4, B6, grad_args=(0, 1)))
    same(lambda m: grads(m, lambda x, w: F(m).conv2d(x, w, groups=2, padding="same", dilation=2), X4,
                         W4[:, :, :2, :].copy(), grad_args=(0, 1)))
    same(lambda m: grads(m, lambda x, w, b: F(m).conv2d(x, w, b), X4[0, :2], W4, B6))


@pytest.mark.parametrize("kw", [
    dict(stride=0), dict(stride=(1, -1)), dict(padding=-1), dict(padding=(1, -1)), dict(stride=0, padding=-1),
    dict(dilation=0), dict(padding="same", stride=2), dict(padding="full")], ids=str)
def test_conv2d_argument_errors(kw):
    """torch's RuntimeErrors and messages (a zero stride was a ZeroDivisionError, a negative padding a NumPy
    broadcast error, a bad padding string a ValueError)."""
    x, w = X4[:, :2].astype(np.float32), W4.astype(np.float32)  # (torch's float64 kernel words some differently)
    raises_same(lambda m: F(m).conv2d(m.tensor(x), m.tensor(w), **kw))


POOL_KWARGS = [dict(kernel_size=2), dict(kernel_size=3, stride=2), dict(kernel_size=3, stride=2, padding=1),
               dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), ceil_mode=True),
               dict(kernel_size=2, ceil_mode=True), dict(kernel_size=3, stride=2, ceil_mode=True, padding=1)]


@pytest.mark.parametrize("kw", POOL_KWARGS, ids=str)
def test_pool_arguments(kw):
    same(lambda m: grads(m, lambda x: F(m).max_pool2d(x, **kw), X4))
    same(lambda m: grads(m, lambda x: F(m).max_pool2d(x, return_indices=True, **kw), X4))
    same(lambda m: grads(m, lambda x: F(m).max_pool2d(x, dilation=2, **kw), X4))
    same(lambda m: grads(m, lambda x: F(m).avg_pool2d(x, **kw), X4))
    same(lambda m: grads(m, lambda x: F(m).avg_pool2d(x, count_include_pad=False, **kw), X4))
    same(lambda m: grads(m, lambda x: F(m).avg_pool2d(x, divisor_override=3, **kw), X4))


@pytest.mark.parametrize("pool", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("args", [(9,), ((2, 9),), ((9, 2),), (2, 0), (2, -1), (0,), (2, None, -1)], ids=str)
def test_pool_argument_errors(pool, args):
    """Zero strides, negative pads and kernels larger than the input: torch's RuntimeError and message
    (a zero stride was a ZeroDivisionError; 'Output size is too small' lacked the calculated size)."""
    raises_same(lambda m: getattr(F(m), pool)(m.tensor(X4), *args))
    raises_same(lambda m: getattr(F(m), pool)(m.tensor(X4[0]), *args))


def test_max_pool2d_dilation_error():
    raises_same(lambda m: F(m).max_pool2d(m.tensor(X4), 2, dilation=0))


@pytest.mark.parametrize("size", [1, 3, (2, 4), (None, 2), (5, None), (7, 6), (10, 9)], ids=str)
def test_adaptive_avg_pool2d(size):
    same(lambda m: grads(m, lambda x: F(m).adaptive_avg_pool2d(x, size), X4))


def test_layer_norm_and_embedding():
    same(lambda m: grads(m, lambda x, w, b: F(m).layer_norm(x, (7, 6), w, b, eps=1e-3), X4, X4[0, 0], X4[0, 1],
                         grad_args=(0, 1, 2)))
    same(lambda m: grads(m, lambda x: F(m).layer_norm(x, [6]), X4))
    raises_same(lambda m: F(m).layer_norm(m.tensor(X4), [5]))
    raises_same(lambda m: F(m).layer_norm(m.tensor(X4), 6))  # an int shape: the function wants a sequence
    same(lambda m: m.nn.LayerNorm(6)(m.tensor(X4).float()).shape)  # (the module takes one)
    e = RNG.standard_normal((6, 3))
    i = np.array([[0, 2, 5], [2, 2, 1]])
    for pad in (None, 2, -1):
        same(lambda m: grads(m, lambda i, w: F(m).embedding(i, w, padding_idx=pad), i, e, grad_args=(1,)))
    same(lambda m: F(m).embedding(m.tensor(i), m.tensor(e), max_norm=1.0))
    raises_same(lambda m: F(m).embedding(m.tensor(i), m.tensor(e), padding_idx=7))


@pytest.mark.parametrize("dtype", [None, "float64", "float32"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_family_dim_dtype(dim, dtype):
    x32 = X.astype(np.float32)
    for fn in ("softmax", "log_softmax", "softmin"):
        same(lambda m: grads(m, lambda x: getattr(F(m), fn)(x, dim, dtype=dtype and getattr(m, dtype)), x32))


def test_tensor_softmax_methods_and_functions():
    """x.softmax(dim), x.log_softmax(dim, dtype=...) and torch.softmax / torch.log_softmax exist (they
    were missing) and match the functional forms, gradients included."""
    x32 = X.astype(np.float32)
    same(lambda m: grads(m, lambda x: x.softmax(1), x32))
    same(lambda m: grads(m, lambda x: x.log_softmax(0, dtype=m.float64), x32))
    same(lambda m: grads(m, lambda x: m.softmax(x, dim=-1), x32))
    same(lambda m: grads(m, lambda x: m.log_softmax(x, 1, m.float64), x32))
    raises_same(lambda m: m.ones(2, 3).softmax(2))


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1])
def test_softmax_integer_input_error(fn, dim):
    """An integer input is torch's NotImplementedError naming the last-dim or the general kernel."""
    raises_same(lambda m: getattr(F(m), fn)(m.ones(3, 4, dtype=m.int64), dim))
    raises_same(lambda m: getattr(F(m), fn)(m.ones(3, dtype=m.bool), 0))


def test_activations_one_hot_pad():
    x32 = X.astype(np.float32)
    w = RNG.standard_normal((3, 6))
    same(lambda m: grads(m, lambda x: F(m).gelu(x, approximate="tanh"), X))
    same(lambda m: grads(m, lambda x, w, b: F(m).linear(x, w, b), X4, w, B6[:3],
                         grad_args=(0, 1, 2)))
    same(lambda m: F(m).one_hot(m.tensor(T4), 7))
    raises_same(lambda m: F(m).one_hot(m.tensor(T), 3))
    for mode in ("constant", "reflect", "replicate", "circular"):
        for p in [(1, 2), (1, 0, 2, 1), (-1, 2)]:
            same(lambda m: grads(m, lambda x: F(m).pad(x, p, mode=mode), X4))
    same(lambda m: grads(m, lambda x: F(m).pad(x, (1, 1), value=3.5), x32))


def test_dropout_train_and_eval():
    def stats(m):
        m.manual_seed(0)
        x = m.ones(400, 500)
        out = F(m).dropout(x, 0.3).numpy()
        keep = float((out != 0).mean())
        return (round(keep, 2), sorted(set(np.round(np.unique(out), 5).tolist())),
                F(m).dropout(x, 0.3, training=False) is x, m.nn.Dropout(0.3).eval()(x).sum().item())

    same(stats)
    raises_same(lambda m: F(m).dropout(m.ones(2), 1.5))


def test_linear_conv_default_init_statistics():
    """kaiming_uniform(a=sqrt(5)) weights and uniform(+-1/sqrt(fan_in)) biases: both libraries fill within
    the bound, nearly up to it, with a uniform's spread (the random streams differ, so statistics)."""
    for L in (tracegrad, torch):
        L.manual_seed(0)
        for mod, fan_in in ((L.nn.Linear(400, 300), 400), (L.nn.Conv2d(16, 64, 5), 16 * 25)):
            bound = 1 / np.sqrt(fan_in)
            for name in ("weight", "bias"):
                a = getattr(mod, name).detach().numpy()
                assert bound * 0.9 < np.abs(a).max() <= bound * (1 + 1e-6), (L.__name__, name, np.abs(a).max(), bound)
                tol = 0.25 if name == "bias" else 0.05
                assert abs(a.std() - bound / np.sqrt(3)) < tol * bound / np.sqrt(3), (L.__name__, name, a.std())


# ---- optim -----------------------------------------------------------------------------------------------
W0 = RNG.standard_normal((3, 4))
BIAS0 = RNG.standard_normal(3)
XO = RNG.standard_normal((8, 4))
YO = RNG.standard_normal((8, 3))


def _train(m, opt_name, kw, steps=20, groups=False, sched=None, roundtrip=False):
    w = m.nn.Parameter(m.tensor(W0, dtype=m.float32))
    b = m.nn.Parameter(m.tensor(BIAS0, dtype=m.float32))
    x, y = m.tensor(XO, dtype=m.float32), m.tensor(YO, dtype=m.float32)
    params = [{"params": [w]}, {"params": [b], "lr": 0.05}] if groups else [w, b]
    opt = getattr(m.optim, opt_name)(params, **kw)
    sch = getattr(m.optim.lr_scheduler, sched[0])(opt, **sched[1]) if sched else None
    lrs = []
    for i in range(steps):
        opt.zero_grad()
        loss = ((x @ w.t() + b - y) ** 2).mean() + (w ** 3).sum() * 0.01
        loss.backward()
        opt.step()
        if sch:
            sch.step()
            lrs.append(sch.get_last_lr())
        if roundtrip and i == 7:  # a fresh optimizer from the state dict continues identically
            sd = opt.state_dict()
            opt = getattr(m.optim, opt_name)(params, **kw)
            opt.load_state_dict(sd)
    return w.detach().clone(), b.detach().clone(), lrs


OPTS = [
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)), ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, weight_decay=0.1, momentum=0.5)), ("SGD", dict(lr=0.1, maximize=True, momentum=0.9)),
    ("Adam", dict(lr=0.01, amsgrad=True)), ("Adam", dict(lr=0.01, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, maximize=True, amsgrad=True, weight_decay=0.05)),
    ("AdamW", dict(lr=0.01, weight_decay=0.3, amsgrad=True)), ("AdamW", dict(lr=0.01, maximize=True, betas=(0.8, 0.99))),
    ("RMSprop", dict(lr=0.01, weight_decay=0.1, alpha=0.9, centered=True, momentum=0.5)),
    ("RMSprop", dict(lr=0.01, maximize=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.5)),
    ("Adagrad", dict(lr=0.1, maximize=True, eps=1e-5)),
]


@pytest.mark.parametrize("mode", ["plain", "groups", "roundtrip"])
@pytest.mark.parametrize("name,kw", OPTS, ids=[f"{n}-{kw}" for n, kw in OPTS])
def test_optimizers_20_steps(name, kw, mode):
    same(lambda m: _train(m, name, kw, groups=mode == "groups", roundtrip=mode == "roundtrip"))


SCHEDS = [("StepLR", dict(step_size=3)), ("StepLR", dict(step_size=2, gamma=0.5)),
          ("MultiStepLR", dict(milestones=[2, 5, 11], gamma=0.3)), ("ExponentialLR", dict(gamma=0.9)),
          ("CosineAnnealingLR", dict(T_max=7)), ("CosineAnnealingLR", dict(T_max=5, eta_min=0.01)),
          ("LambdaLR", dict(lr_lambda=lambda e: 1 / (e + 1))), ("MultiplicativeLR", dict(lr_lambda=lambda e: 0.9)),
          ("LinearLR", dict()), ("LinearLR", dict(start_factor=0.5, end_factor=0.1, total_iters=7)),
          ("ConstantLR", dict()), ("ConstantLR", dict(factor=0.5, total_iters=3))]


@pytest.mark.parametrize("sched", SCHEDS, ids=[s[0] + str(i) for i, s in enumerate(SCHEDS)])
def test_schedulers_with_groups(sched):
    same(lambda m: _train(m, "SGD", dict(lr=0.1, momentum=0.9), sched=sched, groups=True))


def _p(m):
    return [m.nn.Parameter(m.ones(2))]


@pytest.mark.parametrize("make", [
    lambda m: m.optim.SGD([], lr=0.1), lambda m: m.optim.Adam([]),
    lambda m: m.optim.SGD(_p(m), lr=-1), lambda m: m.optim.Adam(_p(m), lr=-1), lambda m: m.optim.AdamW(_p(m), lr=-1),
    lambda m: m.optim.SGD(_p(m), lr=0.1, momentum=-1), lambda m: m.optim.SGD(_p(m), lr=0.1, nesterov=True),
    lambda m: m.optim.Adam(_p(m), betas=(1.0, 0.9)), lambda m: m.optim.Adam(_p(m), eps=-1),
    lambda m: m.optim.SGD(m.ones(2, requires_grad=True), lr=0.1),
    lambda m: m.optim.SGD([m.ones(2, requires_grad=True) * 2], lr=0.1),
    lambda m: m.optim.lr_scheduler.StepLR(m.optim.SGD(_p(m), lr=0.1), 2, last_epoch=3),
    lambda m: m.optim.SGD(_p(m), lr=0.1).load_state_dict(m.optim.SGD(_p(m) + _p(m), lr=0.1).state_dict()),
])
def test_optimizer_errors(make):
    """Same type and message (Adam printed a negative int lr as a float; resuming a scheduler without
    'initial_lr' lacked torch's explanation)."""
    raises_same(make)


def test_optimizer_groups_state_and_zero_grad():
    def f(m):
        p = _p(m)[0]
        opt = m.optim.Adam([p])
        (p ** 2).sum().backward()
        opt.step()
        state = sorted(opt.state[p].keys()), opt.state[p]["step"], opt.state_dict()["state"][0]["exp_avg"]
        opt.add_param_group({"params": _p(m), "lr": 0.5})
        opt.zero_grad(set_to_none=False)
        g = p.grad
        opt.zero_grad()
        return state, [grp["lr"] for grp in opt.param_groups], g, p.grad, repr(opt)

    same(f)


# ---- activations and kl_div that were missing -------------------------------------------------------------
XE = X.copy()
XE[0, 0], XE[0, 1], XE[1, 1], XE[1, 2] = 3.0, -3.0, 25.0, -30.0  # hardsigmoid's corners, softplus's threshold


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("call", [
    lambda m, x: F(m).logsigmoid(x), lambda m, x: F(m).hardsigmoid(x), lambda m, x: F(m).hardswish(x),
    lambda m, x: F(m).mish(x), lambda m, x: F(m).selu(x), lambda m, x: F(m).celu(x),
    lambda m, x: F(m).celu(x, alpha=0.5), lambda m, x: F(m).softsign(x), lambda m, x: F(m).tanhshrink(x),
    lambda m, x: F(m).glu(x), lambda m, x: F(m).glu(x, 0), lambda m, x: F(m).threshold(x, 0.1, 20.0),
], ids=["logsigmoid", "hardsigmoid", "hardswish", "mish", "selu", "celu", "celu_alpha", "softsign", "tanhshrink",
        "glu", "glu0", "threshold"])
def test_more_activations(call, dtype):
    same(lambda m: grads(m, lambda x: call(m, x), XE.astype(dtype)))


def test_more_activations_edges_and_modules():
    for fn in ["logsigmoid", "hardsigmoid", "hardswish", "mish", "selu", "celu", "glu"]:
        raises_same(lambda m: getattr(F(m), fn)(m.tensor([1, 2])))
    for fn in ["softsign", "tanhshrink"]:
        same(lambda m: getattr(F(m), fn)(m.tensor([1, 2])))
    same(lambda m: F(m).threshold(m.tensor([1, 5, 3]), 2, 7))
    same(lambda m: F(m).threshold(m.tensor([float("nan"), 5.0]), 2, 7))
    raises_same(lambda m: F(m).celu(m.ones(2), alpha=0))
    raises_same(lambda m: F(m).glu(m.ones(3, 3)))
    same(lambda m: [(lambda x: (getattr(F(m), fn)(x, inplace=True) is x, x))(m.tensor(XE))
                    for fn in ["hardsigmoid", "hardswish", "mish", "selu", "celu"]])
    same(lambda m: (lambda x: (F(m).threshold(x, 0.0, -1.0, True) is x, x))(m.tensor(XE)))
    nn = lambda m: [m.nn.LogSigmoid(), m.nn.Hardsigmoid(), m.nn.Hardswish(True), m.nn.Mish(), m.nn.Mish(True),
                    m.nn.SELU(True), m.nn.CELU(0.5, True), m.nn.Softsign(), m.nn.Tanhshrink(),
                    m.nn.Threshold(0.5, 2.0), m.nn.Threshold(1, 2, True), m.nn.GLU(1)]
    same(lambda m: [repr(c) for c in nn(m)])
    same(lambda m: [c(m.tensor(X4)) for c in nn(m) if not getattr(c, "inplace", False)])


@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "batchmean"])
def test_kl_div(reduction, log_target):
    p = P.copy()
    p[0, 0] = 0.0  # xlogy: a zero target contributes 0 (and a NaN gradient w.r.t. the target, as torch's)
    target = np.log(p + 0.1) if log_target else p
    if reduction == "mean":
        with pytest.warns(UserWarning, match="batchmean"):
            F(tracegrad).kl_div(tracegrad.tensor(X), tracegrad.tensor(target))
    same(lambda m: grads(m, lambda x, t: F(m).kl_div(F(m).log_softmax(x, 1), t, reduction=reduction,
                                                     log_target=log_target), X, target, grad_args=(0, 1)))
    same(lambda m: m.nn.KLDivLoss(reduction=reduction, log_target=log_target)(m.tensor(X), m.tensor(target)))


def test_kl_div_edges():
    raises_same(lambda m: F(m).kl_div(m.ones(2), m.ones(2), reduction="foo"))
    same(lambda m: F(m).kl_div(m.tensor(0.5), m.tensor(0.3), reduction="batchmean"))
    same(lambda m: F(m).kl_div(m.ones(3, 2), m.ones(2) * 0.5, reduction="sum"))
    same(lambda m: F(m).kl_div(m.ones(3, 2), m.ones(3, 2) * 0.5, size_average=False))
    same(lambda m: repr(m.nn.KLDivLoss(reduction="batchmean", log_target=True)))


@pytest.mark.parametrize("kw", [dict(), dict(mode="max", factor=0.5, patience=1, cooldown=2),
                                dict(patience=0, threshold=0.1, threshold_mode="abs", min_lr=[0.02, 0.01]),
                                dict(patience=2, eps=0.05)], ids=str)
def test_reduce_lr_on_plateau(kw):
    metrics = [1.0, 0.9, 0.95, 0.95, 0.89, 0.9, 0.91, 0.92, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 0.3, 0.3, 0.3, 0.3]

    def f(m):
        opt = m.optim.SGD([{"params": _p(m)}, {"params": _p(m), "lr": 0.05}], lr=0.1)
        sch = m.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
        out = []
        for v in metrics:
            sch.step(m.tensor(v) if len(out) % 2 else v)
            out.append((sch.get_last_lr(), sch.num_bad_epochs, sch.cooldown_counter, sch.best))
        return out

    same(f)


@pytest.mark.parametrize("make", [
    lambda m: m.optim.lr_scheduler.ReduceLROnPlateau(m.optim.SGD(_p(m), lr=0.1), factor=1.0),
    lambda m: m.optim.lr_scheduler.ReduceLROnPlateau(m.optim.SGD(_p(m), lr=0.1), mode="foo"),
    lambda m: m.optim.lr_scheduler.ReduceLROnPlateau(m.optim.SGD(_p(m), lr=0.1), threshold_mode="foo"),
    lambda m: m.optim.lr_scheduler.ReduceLROnPlateau(m.optim.SGD(_p(m), lr=0.1), min_lr=[0.1, 0.2]),
    lambda m: m.optim.lr_scheduler.LinearLR(m.optim.SGD(_p(m), lr=0.1), start_factor=0),
    lambda m: m.optim.lr_scheduler.LinearLR(m.optim.SGD(_p(m), lr=0.1), end_factor=1.5),
    lambda m: m.optim.lr_scheduler.ConstantLR(m.optim.SGD(_p(m), lr=0.1), factor=2),
    lambda m: m.optim.lr_scheduler.MultiplicativeLR(m.optim.SGD(_p(m), lr=0.1), lr_lambda=3),
])
def test_scheduler_errors(make):
    raises_same(make)


@pytest.mark.parametrize("padding_idx", [None, 1])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_embedding_scale_grad_by_freq(padding_idx, dtype):
    """The weight gradient of each occurrence is divided by its index's count in the batch (the option was
    accepted and ignored); double backward too."""
    e0 = RNG.standard_normal((6, 3))

    def f(m):
        e = m.nn.Embedding(6, 3, padding_idx=padding_idx, scale_grad_by_freq=True, dtype=getattr(m, dtype))
        with m.no_grad():
            e.weight.copy_(m.tensor(e0))
        out = e(m.tensor([[0, 2, 2], [5, 1, 0], [2, 2, 3]]))
        gw, = m.autograd.grad((out * m.arange(27.0).reshape(3, 3, 3)).sum(), e.weight, create_graph=True)
        (gw ** 2).sum().backward()
        return out, gw, e.weight.grad

    same(f)
    same(lambda m: grads(m, lambda i, w: F(m).embedding(i, w, scale_grad_by_freq=True), np.array([1, 1, 4, 1]),
                         e0, grad_args=(1,)))


def _pad_layers(m):
    nn = m.nn
    return [nn.ZeroPad2d(2), nn.ZeroPad2d((1, 1, 2, 0)), nn.ConstantPad2d(2, 3.5), nn.ConstantPad1d((1, 2), 1),
            nn.ReflectionPad2d(1), nn.ReplicationPad2d((1, 2, 3, 4)), nn.ReflectionPad1d(2), nn.ReplicationPad1d(1),
            nn.ZeroPad1d(1), nn.CircularPad2d(1), nn.CircularPad1d((1, 2)), nn.ZeroPad2d((-1, 1, 0, 1))]


@pytest.mark.parametrize("i", range(12))
def test_padding_layers(i):
    """The padding layers (missing before): repr, values and gradients on 3-d and 4-d inputs, and the errors."""
    same(lambda m: repr(_pad_layers(m)[i]))
    same(lambda m: grads(m, lambda x: _pad_layers(m)[i](x), X4))
    same(lambda m: grads(m, lambda x: _pad_layers(m)[i](x), X4[0]))


def test_padding_layer_errors():
    raises_same(lambda m: m.nn.ReflectionPad2d(7)(m.tensor(X4)))
    raises_same(lambda m: m.nn.CircularPad2d(1)(m.ones(2, 2)))


@pytest.mark.parametrize("shape", [(64, 50, 3, 4), (64, 50, 6)], ids=["4d", "3d"])
def test_dropout2d(shape):
    """Channel dropout (missing before): every channel is all zeros or all scaled by 1/(1-p), about p of
    them zeroed; identity in eval; the gradient is the mask. The random streams differ: statistics."""
    import warnings

    def f(m):
        m.manual_seed(0)
        x = m.ones(shape, requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y = F(m).dropout2d(x, 0.3)
            same_in_eval = m.nn.Dropout2d(0.3).eval()(x) is x
        y.sum().backward()
        per_channel = y.detach().numpy().reshape(shape[0], shape[1], -1)
        uniform = bool((per_channel == per_channel[..., :1]).all())
        zeroed = float((per_channel[..., 0] == 0).mean())
        return (uniform, round(zeroed, 1), sorted(np.round(np.unique(per_channel), 5).tolist()),
                bool((x.grad.numpy() == y.detach().numpy()).all()), same_in_eval, repr(m.nn.Dropout2d(0.3)))

    same(f)
    if len(shape) == 3:
        with pytest.warns(UserWarning, match="Received a 3D input to dropout2d"):
            F(tracegrad).dropout2d(tracegrad.ones(shape))
    raises_same(lambda m: F(m).dropout2d(m.ones(3), 1.5))
    with pytest.warns(UserWarning, match="Received a 1-D input"):
        raises_same(lambda m: F(m).dropout2d(m.ones(3), 0.5))

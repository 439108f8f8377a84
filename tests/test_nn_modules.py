"""tracegrad.nn.Module and the layers against torch.nn: registration, traversal, state dicts,
hooks, repr, containers, and every layer's forward/backward with identical weights."""
from __future__ import annotations

import copy
import math
from collections import OrderedDict

import numpy as np
import pytest
import torch

import tracegrad
from nn_helpers import close, copy_weights, grad_name, pair, raises_like, tg, upstream_loss


def build_net(L):
    """The same small model in either library (nested modules, a buffer, a shared layer)."""
    nn = L.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.register_buffer("scale", L.ones(4))
            self.register_buffer("tmp", L.zeros(2), persistent=False)

        def forward(self, x):
            return L.relu(self.fc(x)) * self.scale

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Linear(3, 4)
            self.blocks = nn.ModuleList([Block(), Block()])
            self.shared = self.inp  # the same module under two names
            self.head = nn.Sequential(OrderedDict([("norm", nn.LayerNorm(4)), ("out", nn.Linear(4, 2))]))
            self.w = nn.Parameter(L.ones(2))
            self.none_param = None
            self.register_parameter("missing", None)

        def forward(self, x):
            x = self.inp(x)
            for b in self.blocks:
                x = b(x)
            return self.head(x) * self.w

    return Net()


def test_traversal_matches_torch():
    ours, theirs = build_net(tracegrad), build_net(torch)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_parameters(remove_duplicate=False)] == \
        [n for n, _ in theirs.named_parameters(remove_duplicate=False)]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_modules(remove_duplicate=False)] == \
        [n for n, _ in theirs.named_modules(remove_duplicate=False)]
    assert [type(m).__name__ for m in ours.modules()] == [type(m).__name__ for m in theirs.modules()]
    assert [n for n, _ in ours.named_parameters(prefix="model", recurse=False)] == \
        [n for n, _ in theirs.named_parameters(prefix="model", recurse=False)]
    assert len(list(ours.parameters())) == len(list(theirs.parameters()))
    assert list(ours.state_dict().keys()) == list(theirs.state_dict().keys())
    assert ours.get_submodule("blocks.1.fc") is ours.blocks[1].fc
    assert ours.get_parameter("head.out.bias") is ours.head.out.bias
    assert ours.get_buffer("blocks.0.scale") is ours.blocks[0].scale
    assert "blocks" in dir(ours) and "w" in dir(ours)


def test_forward_and_backward_with_copied_weights():
    ours, theirs = build_net(tracegrad), build_net(torch)
    copy_weights(ours, theirs)
    xo, xt = pair((5, 3), "float32", 1)
    out_o, out_t = ours(xo), theirs(xt)
    close(out_o, out_t)
    upstream_loss(out_o).backward()
    upstream_loss(out_t).backward()
    for (n, po), (_, pt) in zip(ours.named_parameters(), theirs.named_parameters()):
        close(po.grad, pt.grad, msg=n)
    close(xo.grad, xt.grad)


def test_state_dict_semantics():
    m = tracegrad.nn.Linear(3, 2)
    sd = m.state_dict()
    assert isinstance(sd, OrderedDict)
    assert sd["weight"].requires_grad is False and sd["weight"].grad_fn is None
    with tracegrad.no_grad():
        m.weight.mul_(2)
    close(sd["weight"], torch.from_numpy(m.weight.detach().numpy().copy()), msg="state_dict shares storage")
    kv = m.state_dict(keep_vars=True)
    assert kv["weight"] is m.weight
    assert sd._metadata[""] == {"version": 1}
    bn = tracegrad.nn.BatchNorm1d(3)
    assert list(bn.state_dict().keys()) == list(torch.nn.BatchNorm1d(3).state_dict().keys())


def test_load_state_dict_errors_match_torch():
    ours, theirs = tracegrad.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    for bad in ({"weight": torch.zeros(2, 3)},
                {"weight": torch.zeros(2, 3), "bias": torch.zeros(2), "extra": torch.zeros(1)},
                {"weight": torch.zeros(3, 3), "bias": torch.zeros(2)},
                {"weight": torch.zeros(3, 3), "extra": torch.zeros(1)}):
        e = raises_like(lambda: ours.load_state_dict({k: tg(v) for k, v in bad.items()}),
                        lambda: theirs.load_state_dict(bad))
        assert str(e).replace("tracegrad.", "torch.") == _torch_msg(lambda: theirs.load_state_dict(bad))
    r_o = ours.load_state_dict({"weight": tracegrad.zeros(2, 3), "x": tracegrad.zeros(1)}, strict=False)
    r_t = theirs.load_state_dict({"weight": torch.zeros(2, 3), "x": torch.zeros(1)}, strict=False)
    assert (r_o.missing_keys, r_o.unexpected_keys) == (r_t.missing_keys, r_t.unexpected_keys)
    assert repr(r_o).replace("tracegrad", "torch") == repr(r_t) or repr(r_o) == repr(r_t)
    ok = ours.load_state_dict({"weight": tracegrad.ones(2, 3), "bias": tracegrad.ones(2)})
    assert repr(ok) == repr(theirs.load_state_dict({"weight": torch.ones(2, 3), "bias": torch.ones(2)})) == \
        "<All keys matched successfully>"
    assert float(ours.weight.sum()) == 6.0 and isinstance(ours.weight, tracegrad.nn.Parameter)
    raises_like(lambda: ours.load_state_dict([1]), lambda: theirs.load_state_dict([1]))


def _torch_msg(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return str(e)
    return ""


def test_load_state_dict_nested_and_assign():
    ours, theirs = build_net(tracegrad), build_net(torch)
    sd = theirs.state_dict()
    del sd["head.norm.bias"]
    sd["blocks.0.unknown"] = torch.zeros(1)
    raises_like(lambda: ours.load_state_dict({k: tg(v) for k, v in sd.items()}), lambda: theirs.load_state_dict(sd))
    new_w = tracegrad.full((2, 4), 3.0)
    ours2 = build_net(tracegrad)
    full = {k: v.clone() for k, v in ours2.state_dict().items()}
    full["head.out.weight"] = new_w
    ours2.load_state_dict(full, assign=True)
    assert isinstance(ours2.head.out.weight, tracegrad.nn.Parameter)
    assert ours2.head.out.weight.requires_grad
    assert float(ours2.head.out.weight.sum()) == 24.0


def test_batchnorm_state_dict_without_num_batches_tracked():
    theirs = torch.nn.BatchNorm2d(3)
    ours = tracegrad.nn.BatchNorm2d(3)
    sd = {k: v for k, v in theirs.state_dict().items() if k != "num_batches_tracked"}
    theirs.load_state_dict(sd)  # no metadata: torch fills the missing counter in
    ours.load_state_dict({k: tg(v) for k, v in sd.items()})


def test_registration_errors_match_torch():
    class Early(tracegrad.nn.Module):
        def __init__(self):
            self.lin = tracegrad.nn.Linear(1, 1)

    class EarlyT(torch.nn.Module):
        def __init__(self):
            self.lin = torch.nn.Linear(1, 1)

    raises_like(Early, EarlyT)

    class EarlyP(tracegrad.nn.Module):
        def __init__(self):
            self.p = tracegrad.nn.Parameter(tracegrad.ones(1))

    class EarlyPT(torch.nn.Module):
        def __init__(self):
            self.p = torch.nn.Parameter(torch.ones(1))

    raises_like(EarlyP, EarlyPT)
    mo, mt = tracegrad.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    e = raises_like(lambda: setattr(mo, "weight", tracegrad.ones(2, 2)), lambda: setattr(mt, "weight", torch.ones(2, 2)),
                    "as parameter 'weight' (torch.nn.Parameter or None expected)")
    assert isinstance(e, TypeError)
    for args in [("a.b", None), ("", None), ("weight", None), (3, None)]:
        raises_like(lambda: mo.register_buffer(*args), lambda: mt.register_buffer(*args))
        raises_like(lambda: mo.add_module(*args), lambda: mt.add_module(*args))
    raises_like(lambda: mo.register_buffer("b", 3), lambda: mt.register_buffer("b", 3))
    raises_like(lambda: mo.register_parameter("p", tracegrad.ones(1)),
                lambda: mt.register_parameter("p", torch.ones(1)), "object to parameter 'p'")
    # a Parameter made from a computed tensor is a fresh leaf, in both libraries
    x = tracegrad.ones(2, requires_grad=True) * 2
    mo.register_parameter("p", tracegrad.nn.Parameter(x))
    assert mo.p.is_leaf and mo.p.grad_fn is None
    raises_like(lambda: mo.add_module("m", 3), lambda: mt.add_module("m", 3))
    raises_like(lambda: mo.nothing, lambda: mt.nothing)
    raises_like(lambda: tracegrad.nn.Module()(1), lambda: torch.nn.Module()(1))
    raises_like(lambda: tracegrad.nn.Parameter(tracegrad.tensor([1, 2])),
                lambda: torch.nn.Parameter(torch.tensor([1, 2])))


def test_setattr_moves_between_registries():
    m = tracegrad.nn.Module()
    m.x = tracegrad.nn.Parameter(tracegrad.ones(1))
    assert "x" in m._parameters
    m.x = None
    assert m._parameters["x"] is None
    m.register_buffer("b", tracegrad.ones(1))
    m.b = tracegrad.zeros(1)
    assert float(m._buffers["b"]) == 0.0
    with pytest.raises(TypeError, match="as buffer 'b'"):
        m.b = 3
    m.sub = tracegrad.nn.ReLU()
    del m.sub
    assert "sub" not in m._modules
    m.plain = 5
    assert m.plain == 5 and "plain" not in m._parameters


def test_modes_grads_and_conversion():
    m = build_net(tracegrad)
    m.eval()
    assert not any(x.training for x in m.modules())
    assert m.train() is m and all(x.training for x in m.modules())
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        m.train("yes")
    m(tracegrad.randn(2, 3)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(float(p.grad.abs().sum()) == 0 for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    w = m.inp.weight
    m.double()
    assert m.inp.weight is w and w.dtype is tracegrad.float64 and m.blocks[0].scale.dtype is tracegrad.float64
    m.to(tracegrad.float32)
    assert w.dtype is tracegrad.float32
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    seen = []
    assert m.apply(lambda mod: seen.append(type(mod).__name__)) is m
    assert seen[-1] == "Net" and seen[0] == "Linear"
    with pytest.raises(TypeError, match="floating point"):
        m.to(tracegrad.int64)
    with pytest.raises(RuntimeError):
        m.cuda()
    assert copy.deepcopy(m).inp.weight is not m.inp.weight


def test_hooks():
    for L in (tracegrad, torch):
        m = L.nn.Linear(2, 2)
        calls = []
        h1 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 0,))
        h2 = m.register_forward_hook(lambda mod, args, out: out + 1)
        h3 = m.register_forward_hook(lambda mod, args, out: calls.append("first"), prepend=True)
        h4 = m.register_forward_pre_hook(lambda mod, args, kwargs: (args, kwargs), with_kwargs=True)
        out = m(L.ones(3, 2))
        bias = m.bias.detach()
        assert np.allclose(np.array(out.detach().tolist()), np.array((bias + 1).tolist()))
        assert calls == ["first"]
        for h in (h1, h2, h3, h4):
            h.remove()
        out = m(L.ones(3, 2))
        assert not np.allclose(np.array(out.detach().tolist()), np.array((bias + 1).tolist()))
        with m.register_forward_hook(lambda mod, args, kwargs, out: out * 0, with_kwargs=True):
            assert float(m(L.ones(1, 2)).abs().sum()) == 0
        assert float(m(L.ones(1, 2)).abs().sum()) != 0


def _repr_pair(make):
    return repr(make(tracegrad)), repr(make(torch))


REPRS = [
    lambda L: L.nn.Sequential(L.nn.Linear(3, 4), L.nn.ReLU(), L.nn.Sequential(
        L.nn.Conv2d(1, 2, 3), L.nn.MaxPool2d(2), L.nn.BatchNorm2d(3), L.nn.LayerNorm(4), L.nn.Embedding(3, 4),
        L.nn.Dropout(), L.nn.GELU(), L.nn.Softmax(dim=1), L.nn.LogSoftmax(1), L.nn.LeakyReLU(), L.nn.Flatten(),
        L.nn.AvgPool2d(2), L.nn.AdaptiveAvgPool2d((1, 1)), L.nn.Identity(), L.nn.SiLU(), L.nn.Tanh(),
        L.nn.Sigmoid(), L.nn.BatchNorm1d(3), L.nn.Softmax(), L.nn.ReLU(inplace=True), L.nn.Unflatten(1, (2, 2)),
        L.nn.ELU(), L.nn.Softplus(), L.nn.Hardtanh(), L.nn.ReLU6(), L.nn.GELU("tanh"), L.nn.LeakyReLU(0.2, True))),
    lambda L: L.nn.ModuleDict({"a": L.nn.Linear(1, 2), "b": L.nn.ModuleList([L.nn.ReLU()])}),
    lambda L: L.nn.ModuleList([L.nn.Linear(2, 2) for _ in range(3)] + [L.nn.ReLU(), L.nn.ReLU(), L.nn.Tanh()]),
    lambda L: L.nn.Sequential(),
    lambda L: L.nn.ModuleList(),
    lambda L: L.nn.Linear(3, 2, bias=False),
    lambda L: L.nn.Conv2d(1, 2, (3, 5), stride=2, padding=(1, 2), bias=False, dilation=2),
    lambda L: L.nn.Conv2d(4, 8, 3, padding="same", groups=2, padding_mode="reflect"),
    lambda L: L.nn.MaxPool2d(3, 2, 1, ceil_mode=True),
    lambda L: L.nn.Embedding(3, 4, padding_idx=0, max_norm=1.0),
    lambda L: L.nn.LayerNorm((2, 3), elementwise_affine=False),
    lambda L: L.nn.BatchNorm1d(5, affine=False, track_running_stats=False, momentum=None),
    lambda L: L.nn.MSELoss(),
    lambda L: L.nn.CrossEntropyLoss(label_smoothing=0.1),
    lambda L: L.nn.Dropout(0.2, inplace=True),
    lambda L: L.nn.Bilinear(2, 3, 4),
]


@pytest.mark.parametrize("make", REPRS)
def test_repr_matches_torch(make):
    ours, theirs = _repr_pair(make)
    assert ours == theirs


def test_parameter_repr_and_identity():
    t = torch.tensor([[0.25, -1.5], [3.0, 4.125]])
    po, pt = tracegrad.nn.Parameter(tg(t)), torch.nn.Parameter(t.clone())
    assert repr(po) == repr(pt)
    assert repr(tracegrad.nn.Parameter(tg(t), requires_grad=False)) == repr(torch.nn.Parameter(t, requires_grad=False))
    base = tracegrad.zeros(3)
    p = tracegrad.nn.Parameter(base)
    assert p.is_leaf and p.requires_grad and isinstance(p, tracegrad.Tensor)
    with tracegrad.no_grad():
        p.add_(1)
    assert float(base.sum()) == 3.0  # shares storage with the tensor it wraps
    assert type(p * 2) is tracegrad.Tensor
    assert isinstance(copy.deepcopy(p), tracegrad.nn.Parameter)
    empty = tracegrad.nn.Parameter()
    assert tuple(empty.shape) == (0,)


def test_sequential_container():
    for L in (tracegrad, torch):
        a, b, c = L.nn.Linear(2, 3), L.nn.ReLU(), L.nn.Linear(3, 1)
        s = L.nn.Sequential(a, b, c)
        assert len(s) == 3 and s[0] is a and s[-1] is c and list(s) == [a, b, c]
        sub = s[1:]
        assert isinstance(sub, L.nn.Sequential) and list(sub) == [b, c] and list(sub._modules) == ["1", "2"]
        with pytest.raises(IndexError, match="index 5 is out of range"):
            s[5]
        s.append(L.nn.Tanh())
        assert len(s) == 4 and list(s._modules) == ["0", "1", "2", "3"]
        del s[1]
        assert list(s._modules) == ["0", "1", "2"] and s[1] is c
        s[0] = b
        assert s[0] is b
        s.insert(1, a)
        assert s[1] is a and len(s) == 4
        s2 = s + L.nn.Sequential(L.nn.ReLU())
        assert len(s2) == 5
        s.extend([L.nn.ReLU()])
        assert len(s) == 5
        assert s.pop(4).__class__.__name__ == "ReLU" and len(s) == 4
        named = L.nn.Sequential(OrderedDict([("first", L.nn.Linear(1, 1)), ("act", L.nn.ReLU())]))
        assert list(named._modules) == ["first", "act"] and named.first is named[0]


def test_module_list_and_dict_containers():
    for L in (tracegrad, torch):
        ml = L.nn.ModuleList([L.nn.ReLU(), L.nn.Tanh()])
        ml.append(L.nn.Sigmoid())
        ml.extend([L.nn.ReLU()])
        ml.insert(0, L.nn.Identity())
        assert [type(m).__name__ for m in ml] == ["Identity", "ReLU", "Tanh", "Sigmoid", "ReLU"]
        assert type(ml[-1]).__name__ == "ReLU" and len(ml[1:3]) == 2
        del ml[0]
        assert list(ml._modules) == ["0", "1", "2", "3"]
        ml += [L.nn.ReLU()]
        assert len(ml) == 5
        with pytest.raises(TypeError, match="ModuleList.extend should be called with an iterable"):
            ml.extend(L.nn.ReLU())
        md = L.nn.ModuleDict({"a": L.nn.ReLU()})
        md["b"] = L.nn.Tanh()
        md.update([("c", L.nn.Sigmoid())])
        assert list(md.keys()) == ["a", "b", "c"] and "b" in md and len(md) == 3
        assert type(md.pop("a")).__name__ == "ReLU" and list(md) == ["b", "c"]
        host = L.nn.Module()
        host.layers = L.nn.ModuleList([L.nn.Linear(2, 2), L.nn.Linear(2, 2)])
        assert [n for n, _ in host.named_parameters()] == ["layers.0.weight", "layers.0.bias", "layers.1.weight",
                                                           "layers.1.bias"]
        pl = L.nn.ParameterList([L.nn.Parameter(L.ones(2)), L.nn.Parameter(L.zeros(3))])
        pd = L.nn.ParameterDict({"x": L.nn.Parameter(L.ones(1))})
        host.pl, host.pd = pl, pd
        assert [n for n, _ in host.named_parameters()][-3:] == ["pl.0", "pl.1", "pd.x"]
        assert len(pl) == 2 and tuple(pl[1].shape) == (3,) and "x" in pd


# ---- layers against torch, identical weights ------------------------------------------------------------------
LAYERS = [
    ("Linear", lambda L: L.nn.Linear(5, 3), (4, 5)),
    ("Linear3d", lambda L: L.nn.Linear(5, 3, bias=False), (2, 4, 5)),
    ("Bilinear", None, None),
    ("Conv2d", lambda L: L.nn.Conv2d(3, 4, 3, padding=1), (2, 3, 6, 6)),
    ("Conv2d_strided", lambda L: L.nn.Conv2d(4, 6, (3, 2), stride=2, groups=2, bias=False), (2, 4, 7, 6)),
    ("Conv2d_reflect", lambda L: L.nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"), (1, 2, 5, 5)),
    ("Conv2d_circular", lambda L: L.nn.Conv2d(2, 3, 3, padding="same", padding_mode="circular"), (1, 2, 5, 5)),
    ("Conv2d_replicate", lambda L: L.nn.Conv2d(2, 3, 3, padding=2, padding_mode="replicate"), (1, 2, 5, 5)),
    ("MaxPool2d", lambda L: L.nn.MaxPool2d(2), (2, 3, 6, 6)),
    ("AvgPool2d", lambda L: L.nn.AvgPool2d(3, 2, 1), (2, 3, 7, 7)),
    ("AdaptiveAvgPool2d", lambda L: L.nn.AdaptiveAvgPool2d((2, 3)), (2, 3, 7, 7)),
    ("LayerNorm", lambda L: L.nn.LayerNorm(6), (3, 6)),
    ("BatchNorm1d", lambda L: L.nn.BatchNorm1d(6), (8, 6)),
    ("BatchNorm1d_3d", lambda L: L.nn.BatchNorm1d(3, momentum=None), (4, 3, 5)),
    ("BatchNorm2d", lambda L: L.nn.BatchNorm2d(3), (4, 3, 5, 5)),
    ("Flatten", lambda L: L.nn.Flatten(), (2, 3, 4)),
    ("Unflatten", lambda L: L.nn.Unflatten(1, (2, 3)), (4, 6)),
    ("Identity", lambda L: L.nn.Identity(3, foo=1), (2, 3)),
    ("ReLU", lambda L: L.nn.ReLU(), (3, 4)),
    ("LeakyReLU", lambda L: L.nn.LeakyReLU(0.1), (3, 4)),
    ("GELU", lambda L: L.nn.GELU(), (3, 4)),
    ("SiLU", lambda L: L.nn.SiLU(), (3, 4)),
    ("Sigmoid", lambda L: L.nn.Sigmoid(), (3, 4)),
    ("Tanh", lambda L: L.nn.Tanh(), (3, 4)),
    ("Softmax", lambda L: L.nn.Softmax(dim=1), (3, 4)),
    ("LogSoftmax", lambda L: L.nn.LogSoftmax(dim=0), (3, 4)),
    ("Dropout_eval", lambda L: L.nn.Dropout(0.5).eval(), (3, 4)),
]


@pytest.mark.parametrize("name,make,shape", [x for x in LAYERS if x[1] is not None], ids=[x[0] for x in LAYERS
                                                                                          if x[1] is not None])
def test_layer_matches_torch(name, make, shape):
    ours, theirs = make(tracegrad), make(torch)
    copy_weights(ours, theirs)
    for step in range(2):  # twice: BatchNorm's running stats must move the same way
        xo, xt = pair(shape, "float32", 40 + step)
        out_o, out_t = ours(xo), theirs(xt)
        close(out_o, out_t, msg=f"{name} forward")
        assert grad_name(out_o) == grad_name(out_t), name
        upstream_loss(out_o).backward()
        upstream_loss(out_t).backward()
        close(xo.grad, xt.grad, msg=f"{name} input grad")
        for (n, po), (_, pt) in zip(ours.named_parameters(), theirs.named_parameters()):
            close(po.grad, pt.grad, msg=f"{name} {n} grad")
        for (n, bo), (_, bt) in zip(ours.named_buffers(), theirs.named_buffers()):
            close(bo, bt, msg=f"{name} buffer {n}")
    if name.startswith("BatchNorm"):
        ours.eval(), theirs.eval()
        xo, xt = pair(shape, "float32", 50)
        close(ours(xo), theirs(xt), msg="eval mode uses the running statistics")


def test_embedding_and_bilinear_layers():
    for L_ours, L_theirs in [(tracegrad.nn.Embedding(6, 3, padding_idx=2), torch.nn.Embedding(6, 3, padding_idx=2))]:
        copy_weights(L_ours, L_theirs)
        idx = torch.tensor([[1, 2, 5], [2, 2, 0]])
        out_o, out_t = L_ours(tg(idx)), L_theirs(idx)
        close(out_o, out_t)
        upstream_loss(out_o).backward()
        upstream_loss(out_t).backward()
        close(L_ours.weight.grad, L_theirs.weight.grad)
    pre = torch.randn(4, 2)
    eo = tracegrad.nn.Embedding.from_pretrained(tg(pre))
    et = torch.nn.Embedding.from_pretrained(pre)
    assert eo.weight.requires_grad is et.weight.requires_grad is False
    close(eo(tracegrad.tensor([3, 0])), et(torch.tensor([3, 0])))
    bo, bt = tracegrad.nn.Bilinear(2, 3, 4), torch.nn.Bilinear(2, 3, 4)
    copy_weights(bo, bt)
    x1, x2 = pair((5, 2), "float64", 51), pair((5, 3), "float64", 52)
    bo.double(), bt.double()
    out_o, out_t = bo(x1[0], x2[0]), bt(x1[1], x2[1])
    close(out_o, out_t)
    upstream_loss(out_o).backward()
    upstream_loss(out_t).backward()
    close(bo.weight.grad, bt.weight.grad)
    close(x2[0].grad, x2[1].grad)


def test_default_initialisation():
    tracegrad.manual_seed(0)
    lin = tracegrad.nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w = lin.weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.01 * bound
    assert np.abs(lin.bias.detach().numpy()).max() <= bound
    conv = tracegrad.nn.Conv2d(8, 16, 3)
    cb = 1 / math.sqrt(8 * 9)
    assert np.abs(conv.weight.detach().numpy()).max() <= cb and np.abs(conv.bias.detach().numpy()).max() <= cb
    emb = tracegrad.nn.Embedding(1000, 20, padding_idx=3).weight.detach().numpy()
    assert abs(emb.std() - 1) < 0.05 and (emb[3] == 0).all()
    bn = tracegrad.nn.BatchNorm2d(4)
    assert bn.weight.detach().numpy().tolist() == [1] * 4 and bn.bias.detach().numpy().tolist() == [0] * 4
    assert int(bn.num_batches_tracked) == 0 and bn.num_batches_tracked.dtype is tracegrad.int64


def _train(L, model, x, y, steps, opt_cls, **kw):
    opt = opt_cls(model.parameters(), **kw)
    loss_fn = L.nn.CrossEntropyLoss()
    losses = []
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_cnn_trains_like_torch():
    def make(L):
        return L.nn.Sequential(L.nn.Conv2d(1, 4, 3, padding=1), L.nn.BatchNorm2d(4), L.nn.ReLU(), L.nn.MaxPool2d(2),
                               L.nn.Flatten(), L.nn.Dropout(0.0), L.nn.Linear(4 * 4 * 4, 3))

    ours, theirs = make(tracegrad), make(torch)
    copy_weights(ours, theirs)
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.standard_normal((6, 1, 8, 8)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, 3, 6))
    lo = _train(tracegrad, ours, tg(x), tg(y), 5, tracegrad.optim.SGD, lr=0.1, momentum=0.9)
    lt = _train(torch, theirs, x, y, 5, torch.optim.SGD, lr=0.1, momentum=0.9)
    np.testing.assert_allclose(lo, lt, rtol=1e-4)
    for (n, po), (_, pt) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        close(po, pt, msg=n, rtol=1e-4, atol=1e-5)


LOSSES = [
    ("MSELoss", dict(), "float"), ("MSELoss", dict(reduction="sum"), "float"), ("L1Loss", dict(), "float"),
    ("SmoothL1Loss", dict(beta=0.5), "float"), ("HuberLoss", dict(delta=0.7, reduction="none"), "float"),
    ("CrossEntropyLoss", dict(), "class"), ("CrossEntropyLoss", dict(label_smoothing=0.1, ignore_index=1), "class"),
    ("CrossEntropyLoss", dict(weight=True), "class"), ("NLLLoss", dict(reduction="sum"), "class"),
    ("BCELoss", dict(), "prob"), ("BCEWithLogitsLoss", dict(pos_weight=True), "float01"),
]


@pytest.mark.parametrize("name,kw,kind", LOSSES, ids=[f"{n}{k}" for n, k, _ in LOSSES])
def test_loss_modules_match_torch(name, kw, kind):
    rng = np.random.default_rng(70)
    kw_o, kw_t = dict(kw), dict(kw)
    for key in ("weight", "pos_weight"):
        if kw.get(key):
            w = torch.tensor(rng.uniform(0.5, 2, 4), dtype=torch.float32)
            kw_o[key], kw_t[key] = tg(w), w
    mo, mt = getattr(tracegrad.nn, name)(**kw_o), getattr(torch.nn, name)(**kw_t)
    assert repr(mo) == repr(mt)
    if kind == "prob":
        xo, xt = pair((6, 4), low=0.05, high=0.95, seed=71)
    else:
        xo, xt = pair((6, 4), seed=71)
    if kind == "class":
        target = torch.tensor(rng.integers(0, 4, 6))
    elif kind == "float":
        target = torch.tensor(rng.standard_normal((6, 4)), dtype=torch.float32)
    else:
        target = torch.tensor(rng.uniform(0, 1, (6, 4)), dtype=torch.float32)
    inp_o = F_log_softmax(xo) if name == "NLLLoss" else xo
    inp_t = torch.log_softmax(xt, 1) if name == "NLLLoss" else xt
    lo, lt = mo(inp_o, tg(target)), mt(inp_t, target)
    close(lo, lt)
    assert grad_name(lo) == grad_name(lt)
    upstream_loss(lo).backward()
    upstream_loss(lt).backward()
    close(xo.grad, xt.grad)


def F_log_softmax(x):
    return tracegrad.nn.functional.log_softmax(x, 1)

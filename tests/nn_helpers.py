"""Helpers shared by the nn / optim / data tests: moving values between tracegrad and torch,
copying a torch module's weights into the tracegrad twin, and comparing with torch's tolerances.

torch is only the reference here: tracegrad never imports it."""
from __future__ import annotations

import numpy as np
import torch

import tracegrad

TOL = {"float32": dict(rtol=1.3e-6, atol=1e-5), "float64": dict(rtol=1e-7, atol=1e-7),
       "float16": dict(rtol=1e-3, atol=1e-5), "bfloat16": dict(rtol=1.6e-2, atol=1e-5)}


def tg(x, requires_grad: bool = False, dtype=None):
    """A tracegrad tensor with the values (and dtype) of a torch tensor or NumPy array."""
    if isinstance(x, torch.Tensor):
        name = str(x.dtype).split(".")[-1]
        arr = x.detach().float().numpy() if name == "bfloat16" else x.detach().numpy()
        t = tracegrad.tensor(np.array(arr, copy=True), dtype=getattr(tracegrad, name))
    else:
        t = tracegrad.tensor(np.array(x, copy=True))
    if dtype is not None:
        t = t.to(dtype)
    return t.requires_grad_(True) if requires_grad else t


def th(x, requires_grad: bool = False):
    """A torch tensor with the values and dtype of a tracegrad tensor."""
    name = x.dtype.name
    if name == "bfloat16":
        t = torch.from_numpy(np.array(x.detach().float().numpy(), copy=True)).to(torch.bfloat16)
    else:
        t = torch.from_numpy(np.array(x.detach().numpy(), copy=True))
    return t.requires_grad_(True) if requires_grad else t


def pair(shape, dtype="float32", seed=0, requires_grad=True, low=None, high=None, rng=None):
    """(tracegrad, torch) leaf tensors with the same random values."""
    rng = rng or np.random.default_rng(seed)
    if low is not None:
        arr = rng.uniform(low, high, size=shape)
    else:
        arr = rng.standard_normal(shape)
    arr = np.asarray(arr, dtype=np.float64)
    t = torch.tensor(arr, dtype=getattr(torch, dtype))
    return tg(t, requires_grad), t.clone().requires_grad_(requires_grad)


def close(ours, theirs, dtype: str | None = None, msg: str = "", rtol=None, atol=None) -> None:
    """assert_close with torch's default tolerances for the dtype (or the given ones)."""
    assert ours is not None and theirs is not None, f"{msg}: one side is None ({ours!r}, {theirs!r})"
    if isinstance(ours, tracegrad.Tensor):
        assert tuple(ours.shape) == tuple(theirs.shape), f"{msg}: shape {tuple(ours.shape)} != {tuple(theirs.shape)}"
        dtype = dtype or ours.dtype.name
        assert ours.dtype.name == str(theirs.dtype).split(".")[-1], f"{msg}: dtype {ours.dtype} != {theirs.dtype}"
        a = ours.detach().float().numpy() if ours.dtype.name == "bfloat16" else ours.detach().numpy()
    else:
        a = np.asarray(ours)
    b = theirs.detach().float().numpy() if theirs.dtype == torch.bfloat16 else theirs.detach().numpy()
    tol = dict(TOL.get(dtype or "float32", TOL["float32"]))
    if rtol is not None:
        tol["rtol"] = rtol
    if atol is not None:
        tol["atol"] = atol
    np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), equal_nan=True, err_msg=msg, **tol)


def grad_name(t) -> str:
    return type(t.grad_fn).__name__ if t.grad_fn is not None else "None"


def upstream_loss(out):
    """A scalar whose gradient w.r.t. out is not uniform (out.sum() would hide wrong rules)."""
    return ((out + 1) ** 2).mean()


def copy_weights(ours, theirs) -> None:
    """Load torch module `theirs`'s state into tracegrad module `ours` (through load_state_dict)."""
    sd = {k: tg(v) for k, v in theirs.state_dict().items()}
    ours.load_state_dict(sd)


def raises_like(fn_ours, fn_theirs, phrase: str | None = None):
    """Both raise the same exception type; ours contains torch's key phrase (default: torch's whole message)."""
    try:
        fn_theirs()
    except Exception as e:  # noqa: BLE001
        expected_type, expected_msg = type(e), str(e)
    else:
        raise AssertionError("torch did not raise")
    try:
        fn_ours()
    except Exception as e:  # noqa: BLE001
        assert type(e) is expected_type or isinstance(e, expected_type), \
            f"raised {type(e).__name__}: {e}; torch raised {expected_type.__name__}: {expected_msg}"
        key = (phrase if phrase is not None else expected_msg).replace("torch.", "tracegrad.")
        assert key in str(e).replace("torch.", "tracegrad."), f"message {str(e)!r} lacks {key!r}"
        return e
    raise AssertionError(f"tracegrad did not raise; torch raised {expected_type.__name__}: {expected_msg}")

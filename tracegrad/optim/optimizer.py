"""`Optimizer`: parameter groups, per-parameter state, zero_grad and state dicts.

Subclasses implement `step()`. For speed they update the NumPy arrays behind
parameters and state in place (no autograd graph, no temporary Tensors, a few
scratch buffers reused between steps) with torch's exact update formulas; the
parameter's version counter is bumped as an in-place op would."""
from __future__ import annotations

import functools
import warnings
from collections import defaultdict
from copy import deepcopy
from itertools import chain
from typing import Callable, Iterable, Optional

import numpy as np

from .. import dtypes as D
from ..autograd import grad_mode
from ..autograd.grads import clear_grads
from ..dispatch import TRACER
from ..tensor import Tensor

__all__ = ["Optimizer", "required"]


class _Required:
    """Marks a default that each param group must give (SGD's lr in older torch)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()


def _typename(x) -> str:
    if isinstance(x, Tensor):
        return x.type()
    return type(x).__name__


def _on_device(opt) -> bool:
    """Whether the optimizer's parameters live in device memory (CUDA tensors)."""
    for group in opt.param_groups:
        for p in group["params"]:
            if type(p._data) is np.ndarray:
                return False
            if not hasattr(opt, "_step_ops"):
                raise NotImplementedError(f"{type(opt).__name__}.step has no CUDA path yet; use SGD, Adam or AdamW")
            return True
    return False


def counts_step(step: Callable) -> Callable:
    """Decorate `step` so lr schedulers can tell whether the optimizer stepped before they did."""

    @functools.wraps(step)
    def wrapper(self, *args, **kwargs):
        if TRACER[0] is not None and not hasattr(self, "_step_ops"):  # before any state is touched
            raise NotImplementedError(
                f"tracegrad.compile: {type(self).__name__}.step cannot be traced yet (it updates NumPy arrays "
                "directly); call it outside the compiled function, or use SGD, Adam or AdamW")
        self._opt_called = True
        if _on_device(self):  # the NumPy update cannot touch device memory: the tensor-op form runs
            loss = self._closure(args[0] if args else kwargs.get("closure"))
            self._step_ops()
            return loss
        return step(self, *args, **kwargs)

    wrapper._wrapped_by_lr_sched = True
    return wrapper


class Optimizer:
    """Base class: holds `param_groups` (a list of dicts with 'params' and the options) and `state`."""

    def __init__(self, params: Iterable, defaults: dict) -> None:
        self.defaults = defaults
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list[dict] = []
        self._scratch: dict = {}
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            f"but got {params.type()}")
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def __getstate__(self) -> dict:
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_scratch", {})

    def __repr__(self) -> str:
        s = type(self).__name__ + " ("
        for i, group in enumerate(self.param_groups):
            s += f"\nParameter Group {i}\n"
            for key in sorted(group.keys()):
                if key != "params":
                    s += f"    {key}: {group[key]}\n"
        return s + ")"

    def add_param_group(self, param_group: dict) -> None:
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            param_group["params"] = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering of "
                            "tensors in sets will change between runs. Please use a list instead.")
        else:
            param_group["params"] = list(params)
        if param_group["params"] and isinstance(param_group["params"][0], tuple):  # named parameters
            names, ps = zip(*param_group["params"])
            param_group["params"], param_group["param_names"] = list(ps), list(names)
        for p in param_group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is " + _typename(p))
            if not self.defaults.get("differentiable", None) and not (p.is_leaf or p.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            param_group.setdefault(name, default)
        ps = param_group["params"]
        if len(ps) != len({id(p) for p in ps}):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in future, this will cause "
                          "an error; see github.com/pytorch/pytorch/issues/40967 for more information", stacklevel=3)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in ps):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient: `.grad = None` by default, or zero it in place."""
        clear_grads((p for group in self.param_groups for p in group["params"]), set_to_none)

    def step(self, closure: Optional[Callable] = None):
        raise NotImplementedError

    def _closure(self, closure):
        if closure is None:
            return None
        with grad_mode.enable_grad():
            return closure()

    # ---- state dicts ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """{'state': {index: {...}}, 'param_groups': [{options..., 'params': [indices]}]}.

        Parameters are replaced by their index in group order; the state tensors
        are the optimizer's own (not copies), as in torch."""
        mapping: dict = {}
        start = 0

        def pack(group):
            nonlocal start
            packed = {k: v for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                mapping.setdefault(id(p), i)
            packed["params"] = [mapping[id(p)] for p in group["params"]]
            start += len(packed["params"])
            return packed

        groups = [pack(g) for g in self.param_groups]
        state = {(mapping[id(k)] if isinstance(k, Tensor) else k): v for k, v in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        groups = self.param_groups
        saved = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the size of optimizer's "
                             "group")
        id_map = dict(zip(chain.from_iterable(s["params"] for s in saved),
                          chain.from_iterable(g["params"] for g in groups)))

        def cast(param, value, key=None):
            if isinstance(value, Tensor):
                if key == "step":
                    return value
                if param.dtype.is_floating_point and value.dtype.is_floating_point and value.dtype is not param.dtype:
                    return value.to(param.dtype)
                return value
            if isinstance(value, dict):
                return {k: cast(param, v, k) for k, v in value.items()}
            return value

        state: defaultdict = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                state[id_map[k]] = cast(id_map[k], v)
            else:
                state[k] = v
        for g, s in zip(groups, saved):
            s["params"] = g["params"]
            if "param_names" in g and "param_names" not in s:
                s["param_names"] = g["param_names"]
        self.state = state
        self.param_groups = saved

    # ---- helpers for subclasses --------------------------------------------------------------------
    def _buf(self, key, like: np.ndarray) -> np.ndarray:
        """A scratch array shaped like `like`, reused across steps (never part of the state)."""
        k = (key, like.shape, like.dtype.str)
        b = self._scratch.get(k)
        if b is None:
            b = self._scratch[k] = np.empty(like.shape, like.dtype)
        return b


class _Arr:
    """The array a step updates for one tensor, and how to write it back.

    float16/32/64 tensors are updated in place in their own storage. bfloat16 is
    stored as raw bits, so its values are widened to float32, updated, and
    rounded back (torch also computes bfloat16 optimizer math in float32)."""

    __slots__ = ("t", "a")

    def __init__(self, t: Tensor):
        self.t = t
        self.a = t._data if t.dtype is not D.bfloat16 else t._values().copy()

    def done(self) -> None:
        t = self.t
        if t.dtype is D.bfloat16:
            from ..dispatch import to_storage

            t._data[...] = to_storage(self.a, t.dtype)
        t._vc[0] += 1


def grad_values(p: Tensor, maximize: bool) -> np.ndarray:
    """The gradient as an array to compute with (negated for maximize). Callers never write into it:
    without maximize it is the .grad tensor's own storage."""
    g = p._grad
    g = g._data if g.dtype is not D.bfloat16 else g._values()
    return -g if maximize else g


def step_tensor() -> Tensor:
    """A fresh `step` counter: float32 0-d tensor, as torch keeps it."""
    from ..creation import tensor

    return tensor(0.0, dtype=D.float32)


def zeros_state(p: Tensor, fill: float = 0.0) -> Tensor:
    from ..creation import full

    return full(tuple(p.shape), fill, dtype=p.dtype, device=p.device)

"""Grad mode: whether ops record a backward graph. One global flag, like torch's."""
from __future__ import annotations

import functools

_state = {"enabled": True, "inference": False}


def is_grad_enabled() -> bool:
    return _state["enabled"]


def is_inference_mode_enabled() -> bool:
    return _state["inference"]


class _Mode:
    """Base of the context managers; instances also work as decorators, and
    `no_grad`/`enable_grad` also decorate bare (`@no_grad`)."""

    _target = True
    _inference = None

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        if cls in (no_grad, enable_grad) and len(args) == 1 and callable(args[0]):
            self.__init__()
            return self(args[0])
        return self

    def __init__(self):
        pass

    def __enter__(self):
        self._prev = (_state["enabled"], _state["inference"])
        _state["enabled"] = self._target
        if self._inference is not None:
            _state["inference"] = self._inference
        return self

    def __exit__(self, *exc):
        _state["enabled"], _state["inference"] = self._prev
        return False

    def __call__(self, fn):
        target, inference = self._target, self._inference

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            prev = (_state["enabled"], _state["inference"])
            _state["enabled"] = target
            if inference is not None:
                _state["inference"] = inference
            try:
                return fn(*args, **kwargs)
            finally:
                _state["enabled"], _state["inference"] = prev

        return wrapper


class no_grad(_Mode):
    """Run without recording a graph: results have requires_grad False."""

    _target = False


class enable_grad(_Mode):
    _target = True


class set_grad_enabled(_Mode):
    """Sets grad mode at construction (torch does the same), restores it on exit."""

    def __init__(self, mode: bool):
        self._target = bool(mode)
        self._prev = (_state["enabled"], _state["inference"])
        _state["enabled"] = self._target

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _state["enabled"], _state["inference"] = self._prev
        return False


class inference_mode(_Mode):
    """no_grad, and tensors made inside are marked as inference tensors."""

    def __init__(self, mode: bool = True):
        self._target = not mode
        self._inference = bool(mode)

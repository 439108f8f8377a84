"""Grad mode: whether ops record a backward graph. One global flag, like torch's.

    with no_grad(): ...            ops record nothing; results have requires_grad False
    @no_grad()  /  @no_grad        the same for a whole function
    set_grad_enabled(False)        a plain call switches the mode (a `with` restores it)
    inference_mode()               no_grad, for code that never needs gradients"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

_state = {"enabled": True, "inference": False}


def is_grad_enabled() -> bool:
    return _state["enabled"]


def is_inference_mode_enabled() -> bool:
    return _state["inference"]


class _Mode:
    """Base of the context managers. An instance also decorates a function
    (`@no_grad()`), and the classes without arguments also decorate bare (`@no_grad`)."""

    _target = True
    _inference = None

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        if cls in (no_grad, enable_grad, inference_mode) and len(args) == 1 and callable(args[0]) \
                and not isinstance(args[0], bool):
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
        return None

    def __exit__(self, *exc) -> bool:
        _state["enabled"], _state["inference"] = self._prev
        return False

    def clone(self):
        return self.__class__()

    def __call__(self, fn: Callable) -> Callable:
        target, inference = self._target, self._inference

        def step(call, *a):
            prev = (_state["enabled"], _state["inference"])
            _state["enabled"] = target
            if inference is not None:
                _state["inference"] = inference
            try:
                return call(*a)
            finally:
                _state["enabled"], _state["inference"] = prev

        if inspect.isgeneratorfunction(fn):
            # as torch does: the generator's body runs in the mode each time it is resumed, and the
            # caller's mode is back between the yields (a plain wrapper would only cover creating it)
            @functools.wraps(fn)
            def gen_wrapper(*args: Any, **kwargs: Any):
                gen = step(fn, *args, **kwargs)
                try:
                    response = step(gen.send, None)
                    while True:
                        try:
                            request = yield response
                        except GeneratorExit:
                            step(gen.close)
                            raise
                        except BaseException as e:
                            response = step(gen.throw, e)
                        else:
                            response = step(gen.send, request)
                except StopIteration as e:
                    return e.value

            return gen_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any):
            return step(fn, *args, **kwargs)

        return wrapper


class no_grad(_Mode):
    """Run without recording a graph: results have requires_grad False."""

    _target = False


class enable_grad(_Mode):
    """Record a graph again (inside no_grad)."""

    _target = True


class set_grad_enabled(_Mode):
    """Sets grad mode when made (so a plain call works as a switch); as a context
    manager it restores the previous mode on exit; as a decorator it leaves the
    mode alone until the function runs."""

    def __init__(self, mode: bool):
        self._target = bool(mode)
        self._prev = (_state["enabled"], _state["inference"])
        _state["enabled"] = self._target

    def __enter__(self):
        return None

    def __call__(self, fn: Callable) -> Callable:
        _state["enabled"], _state["inference"] = self._prev  # decorating is not switching
        return super().__call__(fn)

    def clone(self):
        return self.__class__(self._target)


class inference_mode(_Mode):
    """no_grad for code that will never need gradients (inference_mode(False) turns it off)."""

    def __init__(self, mode: bool = True):
        self._target = not mode if mode else _state["enabled"]
        self._inference = bool(mode)

    def __enter__(self):
        if not self._inference:
            self._target = _state["enabled"]
        return super().__enter__()

    def clone(self):
        return self.__class__(self._inference)

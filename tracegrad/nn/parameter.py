"""`Parameter`: a tensor that a Module registers as one of its weights.

Assigning a Parameter to a Module attribute (`self.w = nn.Parameter(t)`) puts it
in `module.parameters()`. It shares storage with the tensor it wraps, requires
grad by default, and prints as `Parameter containing:` followed by the tensor."""
from __future__ import annotations

from ..tensor import Tensor


class Parameter(Tensor):
    __slots__ = ()

    def __new__(cls, data: Tensor | None = None, requires_grad: bool = True):
        if data is None:
            from ..creation import empty

            data = empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter(): argument 'data' must be Tensor, not {type(data).__name__}")
        if requires_grad and not data.dtype.is_floating_point:
            raise RuntimeError("Only Tensors of floating point and complex dtype can require gradients")
        self = object.__new__(cls)
        self._init(data._data, data.dtype)  # same storage as `data`, a fresh autograd identity
        self._requires_grad = bool(requires_grad)
        return self

    def __init__(self, data: Tensor | None = None, requires_grad: bool = True):
        pass  # everything happens in __new__ (Tensor.__init__ would rebuild the data)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__

    def __reduce_ex__(self, proto):
        return (_rebuild_parameter, (Tensor.__reduce_ex__(self, proto), self._requires_grad))


def _rebuild_parameter(reduced, requires_grad):
    fn, args = reduced
    return Parameter(fn(*args).detach(), requires_grad)


def is_parameter(x) -> bool:
    return isinstance(x, Parameter)

"""Custom autograd functions: subclass `Function`, write `forward` and `backward`.

`MyFn.apply(x)` runs `forward(ctx, x)` with grad off, then (if an input requires
grad) gives the outputs one node, named `MyFnBackward`, whose vjp calls the
user's `backward(ctx, *grads)`."""
from __future__ import annotations

from . import grad_mode
from .node import node_class


class FunctionCtx:
    """The `ctx` passed to forward and backward."""

    def __init__(self):
        self._to_save = ()
        self._saved_versions = ()
        self.needs_input_grad = ()
        self._non_diff = set()
        self._dirty = set()
        self.materialize_grads = True
        self._freed = False

    def save_for_backward(self, *tensors):
        self._to_save = tensors

    @property
    def saved_tensors(self):
        from .node import FREED_MSG, _modified_msg

        node = getattr(self, "_node", None)
        if self._freed or (node is not None and node._freed):
            raise RuntimeError(FREED_MSG)
        for t, v in zip(self._to_save, self._saved_versions):
            if t is not None and t._vc[0] != v:
                raise RuntimeError(_modified_msg(t, t.grad_fn, v))
        return self._to_save

    def mark_non_differentiable(self, *tensors):
        self._non_diff.update(id(t) for t in tensors)

    def mark_dirty(self, *tensors):
        self._dirty.update(id(t) for t in tensors)

    def set_materialize_grads(self, value: bool):
        self.materialize_grads = value


class _FunctionMeta(type):
    def __init__(cls, name, bases, ns):
        super().__init__(name, bases, ns)
        cls._backward_cls = node_class(name + "Backward")


class Function(metaclass=_FunctionMeta):
    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom autograd.Function.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for your custom "
                                  "autograd.Function to use it with backward mode AD.")

    vjp = backward

    @classmethod
    def apply(cls, *args, **kwargs):
        from ..tensor import Tensor
        from .engine import _accumulator

        ctx = FunctionCtx()
        tensor_args = [a for a in args if isinstance(a, Tensor)]
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        with grad_mode.no_grad():
            out = cls.forward(ctx, *args, **kwargs)
        ctx._saved_versions = tuple(t._vc[0] if t is not None else 0 for t in ctx._to_save)
        outs = out if isinstance(out, tuple) else (out,)
        if not (grad_mode.is_grad_enabled() and any(t.requires_grad for t in tensor_args)):
            return out
        nexts = tuple(
            ((a.grad_fn, a._output_nr) if a.grad_fn is not None else (_accumulator(a), 0)) if a.requires_grad
            else (None, 0)
            for a in tensor_args)
        positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        name = cls.__name__

        def vjp(_c, _saved, *grads):
            if node._freed:
                from .node import FREED_MSG

                raise RuntimeError(FREED_MSG)
            res = cls.backward(ctx, *grads)
            res = res if isinstance(res, tuple) else (res,)
            if len(res) != len(args):
                if len(res) > len(args) and all(r is None for r in res[len(args):]):
                    res = res[: len(args)]
                else:
                    raise RuntimeError(
                        f"function {name}Backward returned an incorrect number of gradients (expected "
                        f"{len(args)}, got {len(res)})")
            return tuple(res[i] for i in positions)

        # the node holds ctx's saved tensors, so it version-checks and frees them like any other
        node = cls._backward_cls(vjp, nexts, tuple(ctx._to_save), None, nout=len(outs),
                                 out_meta=[(o.shape, o.dtype) if isinstance(o, Tensor) else None for o in outs])
        ctx._node = node
        wrapped = []
        for i, o in enumerate(outs):
            if isinstance(o, Tensor):
                if any(o is a for a in tensor_args) and id(o) not in ctx._dirty:
                    o = _alias(o)
                if id(o) not in ctx._non_diff and o.dtype.is_floating_point:
                    o.grad_fn = node
                    o._output_nr = i
                    o._requires_grad = True
            wrapped.append(o)
        return tuple(wrapped) if isinstance(out, tuple) else wrapped[0]


def _alias(t):
    from ..tensor import Tensor

    r = Tensor._make(t._data, t.dtype)
    r._vc = t._vc
    r._base = t._base if t._base is not None else t
    return r


class once_differentiable:
    def __new__(cls, fn):
        return fn

"""Custom autograd functions: subclass `Function`, write `forward` and `backward`.

    class Exp(Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, grad):
            (y,) = ctx.saved_tensors
            return grad * y

`Exp.apply(x)` runs `forward(ctx, x)` with grad mode off, then (if an input
requires grad) the outputs get one node of class `ExpBackward`. As in torch,
that node *is* the `ctx` forward saw: `y.grad_fn.saved_tensors` works, and the
engine calls the user's `backward(ctx, *grads)` when it reaches the node."""
from __future__ import annotations

from typing import Any

from . import grad_mode
from .node import Node, FREED_MSG, modified_msg


class FunctionCtx:
    """The methods `ctx` offers in forward and backward (mixed into each node class)."""

    def save_for_backward(self, *tensors) -> None:
        """Keep tensors (inputs, outputs or None) for backward; they are version-checked."""
        self._to_save = tensors

    def save_for_forward(self, *tensors) -> None:
        self._to_save_fwd = tensors

    @property
    def saved_tensors(self) -> tuple:
        if self._freed:
            raise RuntimeError(FREED_MSG)
        saved = self._saved
        for i, v in enumerate(self._versions):
            t = saved[i]
            if t is not None and t._vc[0] != v:
                src = (self, self._saved_out_nr[i]) if self._saved_out_nr[i] is not None else None
                raise RuntimeError(modified_msg(t, src, v))
        return saved

    def mark_dirty(self, *tensors) -> None:
        """Say that forward modified these inputs in place (they are returned as outputs)."""
        self._dirty = tensors

    def mark_non_differentiable(self, *tensors) -> None:
        """These outputs get requires_grad=False; backward still receives a (zero) grad for them."""
        self._non_diff = tensors

    def set_materialize_grads(self, value: bool) -> None:
        """With False, backward gets None (not zeros) for outputs that got no gradient."""
        self.materialize_grads = value


class BackwardCFunction(Node, FunctionCtx):
    """Base of the `<Name>Backward` node classes made for each Function subclass.
    No __slots__ here: a ctx takes any attribute (`ctx.k = 2`)."""

    _forward_cls: Any = None
    _engine_materializes = False  # apply() below does it, unless set_materialize_grads(False)
    _plain = False  # apply() calls the user's backward

    def __repr__(self) -> str:
        return f"<tracegrad.autograd.function.{type(self).__name__} object at {hex(id(self))}>"

    def apply(self, grads):
        """Call the user's backward, then check what it returned, as torch does."""
        if self.materialize_grads:
            grads = [g if g is not None else _zeros_like_meta(m) for g, m in zip(grads, self._out_meta)]
        cls = self._forward_cls
        # a subclass may define `vjp` instead of `backward`
        backward = cls.vjp if cls.backward is Function.backward else cls.backward
        res = backward(self, *grads)
        if not isinstance(res, tuple):
            res = (res,)
        n_args = self._n_args
        name = type(self).__name__
        if len(res) != n_args:
            if len(res) > n_args and all(r is None for r in res[n_args:]):
                res = res[:n_args]
            else:
                raise RuntimeError(f"function {name} returned an incorrect number of gradients "
                                   f"(expected {n_args}, got {len(res)})")
        out = []
        for pos, r in enumerate(res):
            meta = self._arg_meta[pos]
            if meta is None:  # not a tensor input
                if r is not None:
                    raise RuntimeError(
                        f"function {name} returned a gradient different than None at position {pos + 1}, but the "
                        "corresponding forward input was not a Variable")
                continue
            if r is not None:
                shape = meta
                if tuple(r.shape) != tuple(shape):
                    r = _fit_shape(r, shape, name, len(out))
            out.append(r)
        return tuple(out)


def _zeros_like_meta(meta):
    from ..creation import zeros

    shape, dtype = meta
    return zeros(shape, dtype=dtype)


def _fit_shape(g, shape, name, index):
    """A gradient whose shape broadcasts to the input's is summed down to it; any other is an error."""
    from ..ops.shape_util import sum_to

    gs, s = tuple(g.shape), tuple(shape)
    ok = len(gs) >= len(s) and all(a == b or b == 1 for a, b in zip(gs[len(gs) - len(s):], s))
    if not ok:
        raise RuntimeError(
            f"Function {name} returned an invalid gradient at index {index} - got [{', '.join(map(str, gs))}] but "
            f"expected shape compatible with [{', '.join(map(str, s))}]")
    return sum_to(g, s)


class _FunctionMeta(type):
    """Gives each Function subclass its node class, `<Name>Backward`."""

    def __init__(cls, name, bases, ns):
        super().__init__(name, bases, ns)
        # (a built-in op written as a Function names its node as torch's generated ones: `_node_name`)
        node = ns.get("_node_name") or name + "Backward"
        cls._backward_cls = type(node, (BackwardCFunction,), {"_forward_cls": cls})


class Function(metaclass=_FunctionMeta):
    """Base class for custom differentiable operations (use the static methods, call `.apply`)."""

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom autograd.Function.")

    @staticmethod
    def setup_context(ctx, inputs, output):
        raise NotImplementedError("setup_context is not implemented.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for your custom "
                                  "autograd.Function to use it with backward mode AD.")

    vjp = backward

    def __call__(self, *args, **kwargs):
        raise RuntimeError(
            "Legacy autograd function with non-static forward method is deprecated. Please use new-style "
            "autograd function with static forward method. (Example: "
            "https://pytorch.org/docs/stable/autograd.html#torch.autograd.Function)")

    @classmethod
    def apply(cls, *args, **kwargs):
        from ..tensor import Tensor
        from .record import edge_of, NO_EDGE

        grad_on = grad_mode._state["enabled"]
        ctx = cls._backward_cls.__new__(cls._backward_cls)
        Node.__init__(ctx, None, ())
        ctx._to_save = ()
        ctx._dirty = ()
        ctx._non_diff = ()
        ctx.materialize_grads = True
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a._requires_grad and grad_on for a in args)

        prev = grad_mode._state["enabled"]
        grad_mode._state["enabled"] = False
        try:
            if cls.setup_context is not Function.setup_context:  # the newer two-step style
                out = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, out)
            else:
                out = cls.forward(ctx, *args, **kwargs)
        finally:
            grad_mode._state["enabled"] = prev

        outs = out if isinstance(out, tuple) else (out,)
        tensor_args = [a for a in args if isinstance(a, Tensor)]
        differentiable = grad_on and any(a._requires_grad for a in tensor_args)

        dirty = ctx._dirty
        if not differentiable:
            for t in dirty:
                t._vc[0] += 1
            return out

        edges = tuple(edge_of(a) for a in tensor_args)
        ctx._edges = ctx.next_functions = edges
        ctx._in_dtypes = tuple(a.dtype for a in tensor_args)
        ctx._n_args = len(args)
        ctx._arg_meta = [tuple(a.shape) if isinstance(a, Tensor) else None for a in args]
        ctx._nout = len(outs)
        ctx._out_meta = [(tuple(o.shape), o.dtype) if isinstance(o, Tensor) else ((), None) for o in outs]
        ctx._vjp = None

        non_diff = ctx._non_diff
        wrapped = []
        for i, o in enumerate(outs):
            if isinstance(o, Tensor):
                is_input = any(o is a for a in tensor_args)
                is_dirty = any(o is d for d in dirty)
                if is_dirty:
                    if o._requires_grad and o.grad_fn is None:
                        raise RuntimeError("a leaf Variable that requires grad has been used in an in-place operation.")
                    o._vc[0] += 1
                elif is_input:
                    o = _alias(o)  # an input returned unchanged comes back as a view of it
                if not any(o is n for n in non_diff) and o.dtype.is_floating_point:
                    o.grad_fn = ctx
                    o._output_nr = i
                    o._requires_grad = True
                elif is_dirty:
                    o.grad_fn = None
                    o._requires_grad = False
            wrapped.append(o)

        # saved tensors are version-checked from here on; saving an output names this node in errors
        to_save = tuple(ctx._to_save)
        ctx._saved = to_save
        ctx._had_saved = bool(to_save)
        ctx._versions = tuple(t._vc[0] if t is not None else 0 for t in to_save)
        ctx._saved_out_nr = tuple(next((i for i, o in enumerate(wrapped) if o is t), None) if t is not None
                                  else None for t in to_save)
        return tuple(wrapped) if isinstance(out, tuple) else wrapped[0]


def _alias(t):
    from ..tensor import Tensor

    r = Tensor._make(t._data, t.dtype)
    r._vc = t._vc
    r._base = t._base if t._base is not None else t
    return r


def once_differentiable(fn):
    """Decorator for a backward that is not itself differentiable: it runs with grad mode off."""
    import functools

    @functools.wraps(fn)
    def wrapper(ctx, *args):
        with grad_mode.no_grad():
            return fn(ctx, *args)

    return wrapper


class InplaceFunction(Function):
    def __init__(self, inplace: bool = False):
        self.inplace = inplace


class NestedIOFunction(Function):
    pass

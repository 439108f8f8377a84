"""Backward graph nodes: what `tensor.grad_fn` holds.

A node is made when an op runs on inputs that require grad. It keeps the op's
vjp rule, the tensors that rule reads (with their versions, so an in-place
change to them is caught), and `next_functions`: for each input, the node that
made it (or an `AccumulateGrad` for a leaf), which is how the engine walks back.

Each node kind is its own class, named as torch names it (`MulBackward0`), so
that `repr(y.grad_fn)`, `y.grad_fn.name()` and `type(y.grad_fn).__name__` read
like torch's."""
from __future__ import annotations

from typing import Callable

FREED_MSG = (
    "Trying to backward through the graph a second time (or directly access saved tensors after "
    "they have already been freed). Saved intermediate values of the graph are freed when you call "
    ".backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the "
    "graph a second time or if you need to access saved tensors after calling backward."
)


class Node:
    """A step of the backward graph. Subclasses only differ by name.

    `_edges` has one entry per tensor input of the op (what the engine follows
    and what the vjp's results line up with); `next_functions` is the same
    graph as torch lists it (usually the very same tuple)."""

    __slots__ = ("next_functions", "_edges", "_saved", "_versions", "_saved_src", "_vjp", "ctx", "_freed",
                 "_pre_hooks", "_hooks", "_tensor_pre_hooks", "_retained", "_metadata", "_nout",
                 "_out_meta", "_in_dtypes", "__weakref__")

    # the engine fills a missing output gradient with zeros before calling a multi-output rule;
    # custom Functions do that themselves (ctx.set_materialize_grads)
    _engine_materializes = True
    _plain = True  # apply() and release() are Node's own (the engine inlines them); False if overridden

    def __init__(self, vjp, edges, saved=(), ctx=None, nout=1):
        self._vjp = vjp
        self.next_functions = edges
        self._edges = edges
        self._saved = saved
        self._versions = tuple([t._vc[0] if t is not None else 0 for t in saved]) if saved else ()
        self._saved_src = ()  # per saved tensor: (node, output_nr) that made it, for error messages
        self.ctx = ctx
        self._freed = False
        self._pre_hooks = None
        self._hooks = None
        self._tensor_pre_hooks = None  # {output_nr: [fn]} from register_hook on non-leaf tensors
        self._retained = None  # {output_nr: weak tensor} from retain_grad()
        self._metadata = None
        self._nout = nout
        self._out_meta = None  # [(shape, dtype)] per output, to make zeros for a missing gradient
        self._in_dtypes = None  # dtype of each input: a gradient is cast to it before it moves on

    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{type(self).__name__} object at {hex(id(self))}>"

    @property
    def metadata(self) -> dict:
        if self._metadata is None:
            self._metadata = {}
        return self._metadata

    def _unpack_saved(self):
        """The tensors the vjp reads; raises torch's errors if freed or modified in place."""
        if self._freed:
            raise RuntimeError(FREED_MSG)
        saved = self._saved
        for i, v in enumerate(self._versions):
            t = saved[i]
            if t is not None and t._vc[0] != v:
                src = self._saved_src[i] if i < len(self._saved_src) else None
                raise RuntimeError(modified_msg(t, src, v))
        return saved

    def apply(self, grads):
        """grads: one gradient (or None) per output. Returns one per input edge."""
        saved = self._unpack_saved() if (self._saved or self._freed) else ()
        return self._vjp(self.ctx, saved, *grads)

    def release(self):
        """Free what the backward pass needed (after backward without retain_graph)."""
        if self._saved:
            self._freed = True
            self._saved = ()

    def register_hook(self, fn: Callable):
        """fn(grad_inputs, grad_outputs) runs after this node; it may return new grad_inputs."""
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(fn)
        return RemovableHandle(self._hooks, fn)

    def register_prehook(self, fn: Callable):
        """fn(grad_outputs) runs before this node; it may return new grad_outputs."""
        if self._pre_hooks is None:
            self._pre_hooks = []
        self._pre_hooks.append(fn)
        return RemovableHandle(self._pre_hooks, fn)

    def __call__(self, *grads):
        return self.apply(grads)


class AccumulateGrad(Node):
    """The end of a path: adds the incoming gradient into a leaf's `.grad`."""

    __slots__ = ("variable", "_post_hooks")

    def __init__(self, variable):
        Node.__init__(self, None, ())
        self.variable = variable
        self._post_hooks = None

    def name(self) -> str:
        return "tracegrad::autograd::AccumulateGrad"


class CopySlices(Node):
    """In-place write into a view of a tensor that has history: the base's new grad_fn."""

    __slots__ = ()
    _plain = False

    def name(self) -> str:
        return "tracegrad::autograd::CopySlices"

    def release(self):
        self.ctx[0].release()  # the in-place op's own node lives inside this one


class RemovableHandle:
    """What register_hook returns: `.remove()` takes the hook away again."""

    def __init__(self, lst, fn):
        self._lst, self._fn = lst, fn

    def remove(self) -> None:
        for i, h in enumerate(self._lst):
            if h is self._fn:
                del self._lst[i]
                return

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


_Handle = RemovableHandle  # older name, still imported by tensor.py
_classes: dict[str, type] = {}


def node_class(name: str) -> type:
    """The Node subclass called `name` (made once, then reused)."""
    cls = _classes.get(name)
    if cls is None:
        cls = type(name, (Node,), {"__slots__": ()})
        _classes[name] = cls
    return cls


def modified_msg(t, src, expected) -> str:
    """torch's text: names the forward op that made the tensor ("Exp"), if it was not a leaf."""
    shape = ", ".join(str(s) for s in t.shape)
    made_by = ""
    if src is None and t.grad_fn is not None:  # a saved input: torch names what made it last
        src = (t.grad_fn, t._output_nr)
    if src is not None:
        fn, nr = src
        fwd = fn.name()
        fwd = fwd[: fwd.index("Backward")] if "Backward" in fwd else fwd
        made_by = f", which is output {nr} of {fwd},"
    return (
        "one of the variables needed for gradient computation has been modified by an inplace "
        f"operation: [tracegrad.{t.dtype.short}Tensor [{shape}]]{made_by} is at version {t._vc[0]}; "
        f"expected version {expected} instead. Hint: enable anomaly detection to find the operation "
        "that failed to compute its gradient, with tracegrad.autograd.set_detect_anomaly(True, check_nan=False)."
    )


_modified_msg = modified_msg  # older name

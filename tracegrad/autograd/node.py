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

from .grad_mode import _state as _grad_state

FREED_MSG = (
    "Trying to backward through the graph a second time (or directly access saved tensors after "
    "they have already been freed). Saved intermediate values of the graph are freed when you call "
    ".backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the "
    "graph a second time or if you need to access saved tensors after calling backward."
)


class _Extra:
    """What few nodes have: hooks, retained grads, metadata, per-output meta, an explicit
    next_functions. Kept out of the node itself so that recording a node sets fewer fields and
    the engine tells a plain node by one test (`node._x is None`)."""

    __slots__ = ("pre_hooks", "hooks", "tensor_pre_hooks", "retained", "metadata", "out_meta", "nf")

    def __init__(self):
        self.pre_hooks = self.hooks = self.tensor_pre_hooks = self.retained = None
        self.metadata = self.out_meta = self.nf = None


def _extra_field(field: str, doc: str):
    def get(self):
        x = self._x
        return None if x is None else getattr(x, field)

    def set_(self, value):
        x = self._x
        if x is None:
            if value is None:
                return
            x = self._x = _Extra()
        setattr(x, field, value)

    return property(get, set_, doc=doc)


class Node:
    """A step of the backward graph. Subclasses only differ by name.

    `_edges` has one entry per tensor input of the op (what the engine follows
    and what the vjp's results line up with); `next_functions` is the same
    graph as torch lists it (usually the very same tuple).

    `_saved` is () when nothing is saved and None once backward has freed it.
    `_x` is None for a plain node (Node's own apply/release, one output, no hooks): the
    engine runs those inline; anything else is in the `_Extra` it holds."""

    __slots__ = ("_edges", "_saved", "_versions", "_saved_out", "_vjp", "ctx", "_nout", "_in_dtypes",
                 "_nf", "_x", "__weakref__")

    # the engine fills a missing output gradient with zeros before calling a multi-output rule;
    # custom Functions do that themselves (ctx.set_materialize_grads)
    _engine_materializes = True
    _plain = True  # apply() and release() are Node's own (the engine inlines them); False if overridden

    def __init__(self, vjp, edges, saved=(), ctx=None, nout=1):
        self._vjp = vjp
        self._edges = edges
        self._nf = None
        self._saved = saved
        self._versions = tuple([t._vc[0] if t is not None else 0 for t in saved]) if saved else ()
        self._saved_out = None
        self.ctx = ctx
        self._nout = nout
        self._in_dtypes = None  # dtype of each input: a gradient is cast to it before it moves on
        self._x = None if nout == 1 and type(self)._plain else _Extra()

    _pre_hooks = _extra_field("pre_hooks", "Node pre-hooks: fn(grad_outputs), before the node runs.")
    _hooks = _extra_field("hooks", "Node hooks: fn(grad_inputs, grad_outputs), after the node runs.")
    _tensor_pre_hooks = _extra_field("tensor_pre_hooks",
                                     "{output_nr: [fn]} from register_hook on non-leaf tensors.")
    _retained = _extra_field("retained", "{output_nr: weak tensor} from retain_grad().")
    _metadata = _extra_field("metadata", "The dict behind `metadata`, made on first use.")
    _out_meta = _extra_field("out_meta", "[(shape, dtype)] per output, to make zeros for a missing gradient.")

    @property
    def next_functions(self) -> tuple:
        x = self._x
        if x is not None and x.nf is not None:
            return x.nf
        nf = self._nf
        if nf is None:
            return self._edges
        return nf.view(self)  # torch's listing, worked out when asked (see record.TorchEdges)

    @next_functions.setter
    def next_functions(self, value) -> None:
        self._nf = None
        if value is self._edges:
            if self._x is not None:
                self._x.nf = None
            return
        if self._x is None:
            self._x = _Extra()
        self._x.nf = value

    @property
    def _saved_src(self) -> tuple:
        """Per saved tensor: (node, output_nr) if it is an output of this node, else None (for
        error messages). Kept as output numbers: the node holding itself would be a cycle."""
        out = self._saved_out
        if not out:
            return ()
        return tuple((self, k) if k is not None else None for k in out)

    @_saved_src.setter
    def _saved_src(self, value) -> None:
        self._saved_out = tuple(s[1] if s is not None else None for s in value) if value else None

    @property
    def _freed(self) -> bool:
        return self._saved is None

    @_freed.setter
    def _freed(self, value: bool) -> None:
        if value:
            self._saved = None
        elif self._saved is None:
            self._saved = ()

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
        saved = self._saved
        if saved is None:
            raise RuntimeError(FREED_MSG)
        for i, v in enumerate(self._versions):
            t = saved[i]
            if t is not None and t._vc[0] != v:
                out = self._saved_out
                src = (self, out[i]) if out and i < len(out) and out[i] is not None else None
                raise RuntimeError(modified_msg(t, src, v))
        return saved

    def apply(self, grads):
        """grads: one gradient (or None) per output. Returns one per input edge."""
        saved = self._saved
        if saved or saved is None:
            saved = self._unpack_saved()
            if _grad_state["enabled"]:  # create_graph: saved outputs need their grad_fn back
                from .record import live_saved

                saved = live_saved(self, saved)
        return self._vjp(self.ctx, saved, *grads)

    def release(self):
        """Free what the backward pass needed (after backward without retain_graph)."""
        if self._saved:
            self._saved = None

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

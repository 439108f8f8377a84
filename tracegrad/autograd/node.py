"""Backward graph nodes: what `tensor.grad_fn` holds.

A node is made when an op runs on inputs that require grad. It keeps the op's
vjp rule, the tensors that rule reads (with their versions, so an in-place
change to them is caught), and `next_functions`: for each input, the node that
made it (or an `AccumulateGrad` for a leaf), which is how the engine walks back.

Each node kind is its own class, named as torch names it (`MulBackward0`), so
that `repr(y.grad_fn)` and `type(y.grad_fn).__name__` read like torch's."""
from __future__ import annotations

FREED_MSG = (
    "Trying to backward through the graph a second time (or directly access saved tensors after "
    "they have already been freed). Saved intermediate values of the graph are freed when you call "
    ".backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the "
    "graph a second time or if you need to access saved tensors after calling backward."
)


class Node:
    """A step of the backward graph. Subclasses only differ by name."""

    __slots__ = ("next_functions", "_saved", "_versions", "_saved_src", "_vjp", "ctx", "_freed",
                 "_pre_hooks", "_hooks", "_tensor_pre_hooks", "_retained", "metadata", "_nout",
                 "_out_meta", "__weakref__")

    def __init__(self, vjp, next_functions, saved=(), ctx=None, nout=1, out_meta=None, saved_src=()):
        self._vjp = vjp
        self.next_functions = next_functions
        self._saved = saved
        self._versions = tuple(t._vc[0] if t is not None else 0 for t in saved) if saved else ()
        self._saved_src = saved_src  # the node that made each saved tensor (for error messages)
        self.ctx = ctx
        self._freed = False
        self._pre_hooks = None
        self._hooks = None
        self._tensor_pre_hooks = None  # {output_nr: [fn]} from register_hook on non-leaf tensors
        self._retained = None  # {output_nr: weak tensor} from retain_grad()
        self.metadata = {}
        self._nout = nout
        self._out_meta = out_meta  # [(shape, dtype)] per output, to materialise missing grads

    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{type(self).__name__} object at {hex(id(self))}>"

    def saved_tensors(self):
        if self._freed:
            raise RuntimeError(FREED_MSG)
        for i, (t, v) in enumerate(zip(self._saved, self._versions)):
            if t is not None and t._vc[0] != v:
                src = self._saved_src[i] if i < len(self._saved_src) else None
                raise RuntimeError(_modified_msg(t, src, v))
        return self._saved

    def apply(self, grads):
        """grads: one gradient (or None) per output. Returns one per next_function."""
        saved = self.saved_tensors() if self._saved else ()
        return self._vjp(self.ctx, saved, *grads)

    def release(self):
        if self._saved:
            self._freed = True
            self._saved = ()

    def register_hook(self, fn):
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(fn)
        return _Handle(self._hooks, fn)

    def register_prehook(self, fn):
        if self._pre_hooks is None:
            self._pre_hooks = []
        self._pre_hooks.append(fn)
        return _Handle(self._pre_hooks, fn)

    def __call__(self, *grads):
        return self.apply(grads)


class AccumulateGrad(Node):
    """The end of a path: adds the incoming gradient into a leaf's `.grad`."""

    __slots__ = ("variable",)

    def __init__(self, variable):
        super().__init__(None, ())
        self.variable = variable

    def name(self) -> str:
        return "tracegrad::autograd::AccumulateGrad"


class _Handle:
    """What register_hook returns: `.remove()` takes the hook away again."""

    def __init__(self, lst, fn):
        self._lst, self._fn = lst, fn

    def remove(self):
        if self._fn in self._lst:
            self._lst.remove(self._fn)


_classes: dict[str, type] = {}


def node_class(name: str) -> type:
    cls = _classes.get(name)
    if cls is None:
        cls = type(name, (Node,), {"__slots__": ()})
        _classes[name] = cls
    return cls


def _modified_msg(t, src, expected) -> str:
    """torch's text: names the forward op that made the tensor ("Exp"), if any."""
    shape = ", ".join(str(s) for s in t.shape)
    made_by = ""
    if src is not None and not isinstance(src, AccumulateGrad):
        fwd = src.name()
        fwd = fwd[: fwd.index("Backward")] if "Backward" in fwd else fwd
        made_by = f", which is output 0 of {fwd},"
    return (
        "one of the variables needed for gradient computation has been modified by an inplace "
        f"operation: [tracegrad.{t.dtype.short}Tensor [{shape}]]{made_by} is at version {t._vc[0]}; "
        f"expected version {expected} instead. Hint: enable anomaly detection to find the operation "
        "that failed to compute its gradient, with tracegrad.autograd.set_detect_anomaly(True, check_nan=False)."
    )

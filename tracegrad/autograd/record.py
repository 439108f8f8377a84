"""Recording one op into the backward graph (called by the dispatcher).

When an op runs on inputs of which at least one requires grad, its outputs get
a node (`out.grad_fn`). The node holds:
  - `_edges`: for each tensor input, where its gradient goes next: the input's
    own grad_fn (and which of that node's outputs it was), an `AccumulateGrad`
    for a leaf, or `(None, 0)` when the input does not require grad. The vjp
    rule returns one gradient per tensor input, in the same order.
  - `next_functions`: the same edges as torch shows them. torch leaves out
    inputs that are never differentiable (indices, masks, a `where` condition)
    and shows a Python number it wrapped into a tensor (`x + 2`) as `(None, 0)`.
    An op says which arguments torch lists with `Op.edges`.
  - the tensors the vjp reads (`Op.save`), with their version counters, so that
    an in-place change to one of them is caught at backward time.
  - a `Ctx` with what else the rule reads: attrs, input shapes and dtypes,
    which inputs need a gradient."""
from __future__ import annotations

from .node import node_class, AccumulateGrad, _classes

NO_EDGE = (None, 0)


class Ctx:
    """What a vjp rule may read besides saved tensors: non-tensor arguments,
    each tensor input's shape and dtype, and which inputs need a gradient.
    `ctx.args` keeps the op's arguments for the Python numbers among them; a
    rule must read tensor values only from `saved` (which is version-checked)."""

    __slots__ = ("attrs", "shapes", "dtypes", "needs", "args", "out_shape", "out_dtype")

    def __getattr__(self, name):  # attrs read as ctx.dim, ctx.keepdim, ...
        try:
            return object.__getattribute__(self, "attrs")[name]
        except KeyError:
            raise AttributeError(name) from None


def name_by_args(fn):
    """Mark an Op.grad_name callable that wants (attrs, args), for names that depend on
    whether an operand is a tensor or a Python number (RemainderBackward0 vs ...1)."""
    fn.uses_args = True
    return fn


class save_if:
    """An Op.save that keeps an input only when the rule's formulas will read it, as torch does
    (mul saves `other` only if `self` needs a gradient). Each rule is (i, (j, ...)): input i is
    saved when any input j requires grad; otherwise its slot holds None. A Python number
    operand is never saved (the rule reads it from ctx.args)."""

    __slots__ = ("rules",)

    def __init__(self, *rules):
        self.rules = rules

    def positions(self, args, T):
        out = []
        for i, js in self.rules:
            keep = None
            for j in js:
                a = args[j]
                if isinstance(a, T) and a._requires_grad:
                    keep = i
                    break
            out.append(keep)
        return out


def accumulator(t):
    """The AccumulateGrad node of leaf `t` (one per leaf, made on first use)."""
    acc = t._accum
    if acc is None:
        acc = t._accum = AccumulateGrad(t)
    return acc


def edge_of(t):
    """Where the gradient of tensor `t` is sent: (node, output number)."""
    if not t._requires_grad:
        return NO_EDGE
    fn = t.grad_fn
    if fn is not None:
        return (fn, t._output_nr)
    acc = t._accum
    if acc is None:
        acc = t._accum = AccumulateGrad(t)
    return (acc, 0)


_T: list = [None]  # tracegrad.Tensor, looked up on first use (tensor.py imports this package)


def _tensor_cls():
    from ..tensor import Tensor

    _T[0] = Tensor
    return Tensor


def record(op, args, attrs, outs):
    """Give `outs` (the op's results) a grad_fn node, if any tensor input requires grad.
    This runs for every op on the autograd path, so it is written for speed."""
    T = _T[0] or _tensor_cls()
    edges = []
    shapes = []
    dtypes = []
    needs = []
    need = False
    torch_view = op.edges is not None
    arg_edge = [] if torch_view else None  # per argument: its index among the edges, or -1
    for a in args:
        if isinstance(a, T):
            if torch_view:
                arg_edge.append(len(edges))
            shapes.append(a._data.shape)
            dtypes.append(a.dtype)
            if a._requires_grad:
                need = True
                needs.append(True)
                fn = a.grad_fn
                if fn is not None:
                    edges.append((fn, a._output_nr))
                else:
                    acc = a._accum
                    edges.append((acc if acc is not None else accumulator(a), 0))
            else:
                needs.append(False)
                edges.append(NO_EDGE)
        elif type(a) is list or type(a) is tuple:  # cat/stack take a list of tensors
            if torch_view:
                arg_edge.append(-1)
            for x in a:
                if isinstance(x, T):
                    e = edge_of(x)
                    shapes.append(x._data.shape)
                    dtypes.append(x.dtype)
                    needs.append(e[0] is not None)
                    need = need or e[0] is not None
                    edges.append(e)
        elif torch_view:
            arg_edge.append(-1)
    if not need:
        return
    ctx = Ctx()
    ctx.attrs = attrs
    ctx.shapes = tuple(shapes)
    dtypes = ctx.dtypes = tuple(dtypes)
    ctx.needs = tuple(needs)
    ctx.args = args
    out0 = outs[0]
    ctx.out_shape = out0._data.shape
    ctx.out_dtype = out0.dtype

    saved = ()
    src = None
    save = op.save
    if save:
        fixed_slots = type(save) is save_if
        if fixed_slots:
            save = save.positions(args, T)
        elif type(save) is not tuple:
            save = save(attrs)
        # only tensors are saved (and version-checked); a Python number operand lives in ctx.args
        saved = []
        for s in save:
            if type(s) is str:  # "out", "out1": one of the op's own outputs, made by this node
                k = int(s[3:] or 0)
                saved.append(outs[k])
                if src is None:
                    src = [None] * len(saved)
                    src[-1] = k
                else:
                    src.append(k)
            elif s is None:  # a slot save_if left empty
                saved.append(None)
                if src is not None:
                    src.append(None)
            else:
                t = args[s]
                if isinstance(t, T):
                    saved.append(t)
                    if src is not None:
                        src.append(None)  # an input: an error message names its grad_fn at that time
                elif fixed_slots:  # a Python number where save_if keeps a slot
                    saved.append(None)
                    if src is not None:
                        src.append(None)
        saved = tuple(saved)

    name = op.grad_name
    if type(name) is not str:
        name = name(attrs, args) if getattr(name, "uses_args", False) else name(attrs)
    cls = _classes.get(name) or node_class(name)
    edges = tuple(edges)
    node = cls(op.vjp, edges, saved, ctx, len(outs))
    node._in_dtypes = dtypes
    if torch_view:
        positions = op.edges if type(op.edges) is tuple else op.edges(args, attrs)
        nf = []
        for p in positions:
            k = arg_edge[p]
            nf.append(edges[k] if k >= 0 else NO_EDGE)
        nf = tuple(nf)
        if nf != edges:
            node.next_functions = nf
    if src is not None:
        node._saved_src = tuple((node, x) if x is not None else None for x in src)
    if len(outs) > 1:
        node._out_meta = [(o._data.shape, o.dtype) for o in outs]
        for i, o in enumerate(outs):
            if o.dtype.is_floating_point:
                o.grad_fn = node
                o._output_nr = i
                o._requires_grad = True
    else:
        if out0.dtype.is_floating_point:
            out0.grad_fn = node
            out0._requires_grad = True

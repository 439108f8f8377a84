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

from .node import node_class, AccumulateGrad

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


def record(op, args, attrs, outs):
    """Give `outs` (the op's results) a grad_fn node, if any tensor input requires grad."""
    from ..tensor import Tensor

    edges = []
    tensors = []
    need = False
    for a in args:
        if isinstance(a, Tensor):
            tensors.append(a)
            if a._requires_grad:
                need = True
                fn = a.grad_fn
                if fn is not None:
                    edges.append((fn, a._output_nr))
                else:
                    acc = a._accum
                    edges.append((acc if acc is not None else accumulator(a), 0))
            else:
                edges.append(NO_EDGE)
        elif type(a) is list or type(a) is tuple:  # cat/stack take a list of tensors
            for x in a:
                if isinstance(x, Tensor):
                    tensors.append(x)
                    e = edge_of(x)
                    need = need or e[0] is not None
                    edges.append(e)
    if not need:
        return
    ctx = Ctx()
    ctx.attrs = attrs
    ctx.shapes = tuple(t._data.shape for t in tensors)
    dtypes = ctx.dtypes = tuple(t.dtype for t in tensors)
    ctx.needs = tuple(e[0] is not None for e in edges)
    ctx.args = args
    out0 = outs[0]
    ctx.out_shape = out0._data.shape
    ctx.out_dtype = out0.dtype

    saved = ()
    src = ()
    save = op.save(attrs) if callable(op.save) else op.save
    if save:
        # only tensors are saved (and version-checked); a Python number operand lives in ctx.args.
        # src names what made each saved tensor, for the "modified by an inplace operation" message.
        saved = []
        src = []
        for s in save:
            if type(s) is str:  # "out", "out1": one of the op's own outputs, made by the node below
                k = int(s[3:] or 0)
                saved.append(outs[k])
                src.append(k)
            else:
                t = args[s]
                if isinstance(t, Tensor):
                    saved.append(t)
                    src.append(None)  # an input: the message names its grad_fn at that time

    name = op.grad_name
    if type(name) is not str:
        name = name(attrs, args) if getattr(name, "uses_args", False) else name(attrs)
    edges = tuple(edges)
    node = node_class(name)(op.vjp, edges, tuple(saved), ctx, len(outs))
    node._in_dtypes = dtypes
    if op.edges is not None:
        node.next_functions = _torch_edges(op, args, attrs, edges)
    if src and any(type(x) is int for x in src):
        node._saved_src = tuple((node, x) if type(x) is int else x for x in src)
    if len(outs) > 1:
        node._out_meta = [(o._data.shape, o.dtype) for o in outs]
    for i, o in enumerate(outs):
        if o.dtype.is_floating_point:
            o.grad_fn = node
            o._output_nr = i
            o._requires_grad = True


def _torch_edges(op, args, attrs, edges):
    """next_functions as torch lists them: the arguments `op.edges` names, numbers as (None, 0)."""
    from ..tensor import Tensor

    positions = op.edges(args, attrs) if callable(op.edges) else op.edges
    # index of each tensor argument among the tensor inputs
    tensor_index = {}
    k = 0
    for p, a in enumerate(args):
        if isinstance(a, Tensor):
            tensor_index[p] = k
            k += 1
        elif type(a) is list or type(a) is tuple:
            k += sum(1 for x in a if isinstance(x, Tensor))
    return tuple(edges[tensor_index[p]] if p in tensor_index else NO_EDGE for p in positions)

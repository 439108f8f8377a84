"""The backward engine: walk the graph from the outputs, in dependency order.

1. Count, for every node reachable from the roots, how many edges point at it.
2. Start with the roots; run a node once every edge into it has delivered its
   gradient (its count reaches zero). Its vjp gives one gradient per input edge,
   which is added into that input node's buffer.
3. AccumulateGrad nodes add into the leaf's `.grad` (or, for `autograd.grad`,
   hand the gradient back instead).
Everything is a loop over an explicit list, so a graph 100k ops deep works.

Hooks run where torch runs them: tensor hooks (register_hook) and retain_grad
see the gradient of their tensor before its node runs; node pre-hooks just
before the node, node hooks just after it."""
from __future__ import annotations

import numpy as np

from . import grad_mode
from .node import AccumulateGrad
from .record import accumulator as _accumulator  # noqa: F401  (re-exported for older callers)

_state = grad_mode._state


def _zeros(meta):
    from .. import creation

    shape, dtype = meta
    return creation.zeros(shape, dtype=dtype)


def _graph(start, capture):
    """Dependency counts of every node reachable from `start`. With `capture`
    (autograd.grad), also the set of nodes that lead to a captured one: only
    those need to run."""
    deps: dict = {}
    seen = set(start)
    stack = list(start)
    while stack:
        node = stack.pop()
        for nxt, _ in node._edges:
            if nxt is None:
                continue
            if nxt in deps:
                deps[nxt] += 1
            else:
                deps[nxt] = 1
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    if capture is None:
        return deps, None
    # a topological order (Kahn's algorithm), then one pass from its far end: a node is
    # needed if it is captured or leads to a needed node
    left = dict(deps)
    queue = [n for n in start if n not in left]
    topo = []
    while queue:
        node = queue.pop()
        topo.append(node)
        for nxt, _ in node._edges:
            if nxt is not None:
                k = left[nxt] - 1
                left[nxt] = k
                if k == 0:
                    queue.append(nxt)
    # `leads`: nodes with a path to a captured node; only they need to run (a captured node
    # that leads nowhere further just hands its gradient over)
    leads = set()
    for node in reversed(topo):
        for nxt, _ in node._edges:
            if nxt is not None and (nxt in capture or nxt in leads):
                leads.add(node)
                break
    return deps, leads


def run_backward(roots, root_grads, *, retain_graph: bool, create_graph: bool,
                 inputs=None, allow_unused: bool = False, accumulate: bool = True):
    """roots: tensors; root_grads: a gradient for each. With `inputs` (autograd.grad)
    returns their gradients instead of accumulating into leaves.

    This loop runs once per node of every backward pass, so the common case (a node that
    is not a custom Function or CopySlices, no hooks) is written out inline."""
    buffers: dict = {}  # node -> [gradient per output]
    start = []
    for t, g in zip(roots, root_grads):
        node = t.grad_fn
        nr = t._output_nr
        if node is None:
            node = _accumulator(t)
            nr = 0
        buf = buffers.get(node)
        if buf is None:
            buf = buffers[node] = [None] * node._nout
            start.append(node)
        buf[nr] = g if buf[nr] is None else buf[nr] + g

    # where autograd.grad captures: {node: [(output_nr, index into inputs)]}
    capture = None
    results = None
    if inputs is not None:
        capture = {}
        results = [None] * len(inputs)
        for i, t in enumerate(inputs):
            node = t.grad_fn
            nr = t._output_nr
            if node is None:
                node = _accumulator(t)
                nr = 0
            capture.setdefault(node, []).append((nr, i))

    deps, needed = _graph(start, capture)
    ready = [n for n in start if n not in deps]
    state = _state
    prev = state["enabled"]
    state["enabled"] = create_graph
    quiet = _quiet_flag()
    prev_quiet = quiet[0]
    # one errstate for the whole pass (torch never warns about inf/nan in gradients); the ops
    # inside see QUIET and skip entering their own
    errstate = np.errstate(all="ignore")
    errstate.__enter__()
    quiet[0] = True
    pop = ready.pop
    push = ready.append
    take = buffers.pop
    try:
        while ready:
            node = pop()
            grads = take(node, None)
            if grads is None:
                grads = [None] * node._nout
            if node._tensor_pre_hooks is not None or node._retained is not None:
                _tensor_hooks(node, grads)
            if capture is not None:
                cap = capture.get(node)
                if cap is not None:
                    for nr, i in cap:
                        results[i] = grads[nr]
                if node not in needed:  # leads to no input of autograd.grad
                    _skip(node, deps, ready)
                    continue
            if type(node) is AccumulateGrad:
                if accumulate:
                    _accumulate_node(node, grads[0], create_graph)
                continue
            if node._pre_hooks is not None:
                for h in node._pre_hooks:
                    r = h(tuple(grads))
                    if r is not None:
                        grads = list(r)
            if node._nout == 1:
                live = grads[0] is not None
            else:
                live = False
                missing = False
                for g in grads:
                    if g is None:
                        missing = True
                    else:
                        live = True
                if live and missing and node._engine_materializes:
                    grads = [g if g is not None else _zeros(m) for g, m in zip(grads, node._out_meta)]
            plain = node._plain
            if live:
                if plain:  # Node.apply, inlined
                    saved = node._saved
                    if saved or node._freed:
                        saved = node._unpack_saved()
                    outs = node._vjp(node.ctx, saved, *grads)
                else:
                    outs = node.apply(grads)
                if node._hooks is not None:
                    for h in node._hooks:
                        r = h(tuple(outs), tuple(grads))
                        if r is not None:
                            outs = tuple(r)
            else:
                outs = None
            if not retain_graph:
                if plain:  # Node.release, inlined
                    if node._saved:
                        node._freed = True
                        node._saved = ()
                else:
                    node.release()
            in_dtypes = node._in_dtypes
            k = 0
            for nxt, nr in node._edges:
                if nxt is not None:
                    g = outs[k] if outs is not None else None
                    if g is not None:
                        if in_dtypes is not None and g.dtype is not in_dtypes[k]:
                            g = g.to(in_dtypes[k])  # mixed-dtype op: an input's grad has its dtype
                        buf = buffers.get(nxt)
                        if buf is None:
                            if nxt._nout == 1:
                                buffers[nxt] = [g]
                            else:
                                buf = buffers[nxt] = [None] * nxt._nout
                                buf[nr] = g
                        else:
                            old = buf[nr]
                            buf[nr] = g if old is None else old + g
                    d = deps[nxt] - 1
                    if d:
                        deps[nxt] = d
                    else:
                        push(nxt)
                k += 1
    finally:
        state["enabled"] = prev
        quiet[0] = prev_quiet
        errstate.__exit__(None, None, None)

    if inputs is not None:
        if not allow_unused:
            for i, r in enumerate(results):
                if r is None:
                    raise RuntimeError(
                        f"The differentiated Tensor at index {i} appears to not have been used in the graph. "
                        "Set allow_unused=True if this is the desired behavior.")
        return results
    return None


def _quiet_flag() -> list:
    """dispatch.QUIET (looked up on first use: dispatch imports this package)."""
    global _quiet_flag
    from .. import dispatch

    flag = dispatch.QUIET
    _quiet_flag = lambda: flag  # noqa: E731
    return flag


def _skip(node, deps, ready):
    """A node autograd.grad does not need: count its edges as delivered without running it."""
    for nxt, _ in node._edges:
        if nxt is None:
            continue
        d = deps[nxt] - 1
        deps[nxt] = d
        if d == 0:
            ready.append(nxt)


def _tensor_hooks(node, grads):
    """Hooks registered on non-leaf tensors, then retain_grad, see the tensor's gradient first."""
    if node._tensor_pre_hooks:
        for nr, hooks in node._tensor_pre_hooks.items():
            for h in list(hooks):
                if grads[nr] is not None:
                    r = h(grads[nr])
                    if r is not None:
                        grads[nr] = r
    if node._retained:
        for nr, ref in node._retained.items():
            t = ref()
            g = grads[nr]
            if t is not None and g is not None and t.grad_fn is node:
                if not _state["enabled"]:
                    g = g.detach()
                t._grad = _copy_of(g) if t._grad is None else t._grad + g


def _copy_of(g):
    """A fresh tensor with g's values (a gradient may be a view of another one)."""
    if g.requires_grad:
        return g.clone()
    return _make(g._data.copy(), g.dtype)


def _make(arr, dtype):
    from ..tensor import Tensor

    global _make
    _make = Tensor._make  # looked up once: tensor.py imports this package, so not at load time
    return _make(arr, dtype)


def _accumulate_node(acc, g, create_graph):
    var = acc.variable
    hooks = var._hooks
    if hooks and g is not None:
        for h in list(hooks):
            r = h(g)
            if r is not None:
                g = r
    _accumulate(var, g, create_graph)
    if acc._post_hooks:
        for h in list(acc._post_hooks):
            h(var)


_TRACER_BOX: list = []


def _tracer_box() -> list:
    """dispatch.TRACER, looked up once (dispatch imports this package, so not at load time)."""
    if not _TRACER_BOX:
        from ..dispatch import TRACER

        _TRACER_BOX.append(TRACER)
    return _TRACER_BOX[0]


def _accumulate(var, g, create_graph):
    """Add gradient `g` into leaf `var`'s `.grad`, as torch's AccumulateGrad does."""
    if g is None:
        return
    TRACER = _tracer_box()
    if TRACER[0] is not None:  # traced: .grad becomes a value of the graph
        TRACER[0].accumulate(var, g, create_graph)
        return
    old = var._grad
    if old is None:
        if create_graph:
            var._grad = g
            return
        # a fresh buffer laid out like the leaf (the gradient may be a broadcast view)
        arr = g._data
        vd = var._data
        if arr.dtype != vd.dtype:
            g = g.to(var.dtype)
            arr = g._data
        if vd.flags.c_contiguous:
            out = arr.copy()  # row-major, like the leaf
        else:
            out = np.empty_like(vd)
            out[...] = arr
        var._grad = _make(out, var.dtype)
    elif create_graph or old._requires_grad:
        var._grad = old + g
    else:  # in place, as torch does (the version counter of .grad moves)
        if g.dtype is not old.dtype:
            g = g.to(old.dtype)
        if old._data.dtype.kind == "f":
            if _quiet_flag()[0]:  # inside a backward pass: errstate is already held
                np.add(old._data, g._data, out=old._data)
            else:
                with np.errstate(all="ignore"):
                    np.add(old._data, g._data, out=old._data)
        else:  # bfloat16 is stored as uint16 bits: add through tracegrad
            old._data[...] = (old + g)._data
        old._vc[0] += 1

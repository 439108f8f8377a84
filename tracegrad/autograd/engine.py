"""The backward engine: walk the graph from the outputs, in dependency order.

1. Count, for every node reachable from the roots, how many edges point at it.
2. Start with the roots; run a node once every edge into it has delivered its
   gradient (its count reaches zero). Its vjp gives one gradient per input edge,
   which is added into that input node's buffer.
3. AccumulateGrad nodes add into the leaf's `.grad` (or, for `autograd.grad`,
   hand the gradient back instead).
Everything is a loop over an explicit list, so a graph 100k ops deep works.

`loss.backward()` on one root starts with `backward_from`, which walks the chain at
the top of the graph without step 1 (see there), then hands over to the same loop.

Hooks run where torch runs them: tensor hooks (register_hook) and retain_grad
see the gradient of their tensor before its node runs; node pre-hooks just
before the node, node hooks just after it."""
from __future__ import annotations

import sys

import numpy as np

from . import grad_mode
from .node import AccumulateGrad, FREED_MSG
from .record import accumulator as _accumulator  # noqa: F401  (re-exported for older callers)
from .record import live_saved

_state = grad_mode._state
_getrefcount = sys.getrefcount

# dispatch's QUIET flag, NumPy's error-state variable and the tracer slot, bound on first use (dispatch imports
# this package, so they cannot be imported at load time)
_QUIET = None
_ERRSTATE = None
_IGNORE_ALL = None
_TRACER = None


def _bind() -> None:
    global _QUIET, _ERRSTATE, _IGNORE_ALL, _TRACER
    from .. import dispatch

    _QUIET, _ERRSTATE, _IGNORE_ALL, _TRACER = dispatch.QUIET, dispatch._ERRSTATE, dispatch._IGNORE_ALL, dispatch.TRACER


# anomaly mode (autograd.set_detect_anomaly / detect_anomaly): with check_nan, a node whose input
# gradient has a NaN stops backward with torch's error naming it
ANOMALY = {"enabled": False, "check_nan": True}


def _check_nan(node, outs) -> None:
    if outs is None:
        return
    for i, g in enumerate(outs):
        if g is not None and g.dtype.is_floating_point and bool(np.isnan(g._values()).any()):
            raise RuntimeError(f"Function '{node.name()}' returned nan values in its {i}th output.")


def _zeros(meta):
    from .. import creation

    shape, dtype = meta
    return creation.zeros(shape, dtype=dtype)


def _graph(start, capture):
    """Dependency counts of every node reachable from `start`. With `capture`
    (autograd.grad), also the set of nodes that lead to a captured one: only
    those need to run."""
    deps: dict = {}
    stack = list(start)
    # a start node below another start node (autograd.grad([y, f(y)], ...)) is walked once: from
    # the start list, not again when reached, or its edges would be counted twice and what lies
    # below it would never become ready
    walked = set(start)
    while stack:
        node = stack.pop()
        for nxt, _ in node._edges:
            if nxt is None:
                continue
            if nxt in deps:
                deps[nxt] += 1
            else:  # first time seen (a start node has no count unless something points at it)
                deps[nxt] = 1
                if nxt not in walked:
                    walked.add(nxt)
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
    returns their gradients instead of accumulating into leaves."""
    if inputs is None and len(roots) == 1 and accumulate:
        t = roots[0]
        node = t.grad_fn
        if node is None:
            backward_from(_accumulator(t), 0, root_grads[0], retain_graph, create_graph)
        else:
            backward_from(node, t._output_nr, root_grads[0], retain_graph, create_graph)
        return None
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
    if _QUIET is None:
        _bind()
    state = _state
    prev = state["enabled"]
    state["enabled"] = create_graph
    quiet = _QUIET
    prev_quiet = quiet[0]
    # the whole pass ignores NumPy's float warnings (torch never warns about inf/nan in
    # gradients); the ops inside see QUIET and leave the error state alone
    quiet[0] = True
    tok = _ERRSTATE.set(_IGNORE_ALL)
    try:
        _run(ready, buffers, deps, retain_graph, create_graph, capture, needed, results, accumulate)
    finally:
        state["enabled"] = prev
        quiet[0] = prev_quiet
        _ERRSTATE.reset(tok)

    if inputs is not None:
        if not allow_unused:
            for i, r in enumerate(results):
                if r is None:
                    raise RuntimeError(
                        f"The differentiated Tensor at index {i} appears to not have been used in the graph. "
                        "Set allow_unused=True if this is the desired behavior.")
        return results
    return None


def backward_from(node, nr, g, retain_graph: bool, create_graph: bool) -> None:
    """Backpropagate gradient `g` of output `nr` of `node` into the leaves (`loss.backward()`).

    A graph's top is usually a chain (each node feeds one other), and a chain needs no
    dependency counts: a node can run as soon as the one above it has. So this walks the
    chain with the one gradient in hand, and only at a node with two or more inputs that
    have history does it count dependencies, for the part of the graph below that node, and
    hand over to the general loop. Nothing above that node is reachable from below it, so
    those counts are the whole story."""
    if _QUIET is None:
        _bind()
    state = _state
    prev = state["enabled"]
    state["enabled"] = create_graph
    quiet = _QUIET
    prev_quiet = quiet[0]
    quiet[0] = True
    tok = _ERRSTATE.set(_IGNORE_ALL)
    try:
        while True:
            vjp = node._vjp
            if vjp is not None and node._x is None:  # plain: Node's own apply/release, one output, no hooks
                outs = _apply_plain(node, vjp, g, create_graph, retain_graph)
            elif type(node) is AccumulateGrad:
                # only `g` holds the gradient here, so one that no one else can see may become
                # .grad as it is
                _accumulate_leaf(node, g, create_graph, _STEAL_REFS)
                return
            else:
                if node._nout == 1:
                    grads = [g]
                else:
                    grads = [None] * node._nout
                    grads[nr] = g
                g = None
                if node._tensor_pre_hooks is not None or node._retained is not None:
                    _tensor_hooks(node, grads)
                outs = _apply_special(node, grads, retain_graph)
            edges = node._edges
            if len(edges) == 1:
                nxt, nr = edges[0]
                if nxt is None:
                    return
                if outs is None:
                    g = None
                else:
                    g = outs[0]
                    outs = None
                    if g is not None:
                        in_dtypes = node._in_dtypes
                        if in_dtypes is not None and g.dtype is not in_dtypes[0]:
                            g = g.to(in_dtypes[0])  # mixed-dtype op: an input's grad has its dtype
                node = nxt
                continue
            k = -1
            for i, e in enumerate(edges):
                if e[0] is not None:
                    if k >= 0:  # a second input with history: count dependencies from here on
                        deps, _ = _graph((node,), None)
                        buffers: dict = {}
                        ready: list = []
                        _deliver(node, outs, buffers, deps, ready)
                        outs = None  # the buffers alone hold the gradients (see _accumulate)
                        _run(ready, buffers, deps, retain_graph, create_graph, None, None, None, True)
                        return
                    k = i
            if k < 0:
                return
            nxt, nr = edges[k]
            g = outs[k] if outs is not None else None
            outs = None
            if g is not None:
                in_dtypes = node._in_dtypes
                if in_dtypes is not None and g.dtype is not in_dtypes[k]:
                    g = g.to(in_dtypes[k])
            node = nxt
    finally:
        state["enabled"] = prev
        quiet[0] = prev_quiet
        _ERRSTATE.reset(tok)


def _deliver(node, outs, buffers, deps, ready):
    """Add `node`'s input gradients into the buffers of the nodes they go to; a node whose
    last awaited gradient arrives is ready."""
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
                ready.append(nxt)
        k += 1


def _run(ready, buffers, deps, retain_graph, create_graph, capture, needed, results, accumulate):
    """The general loop: run ready nodes until none is left.

    It runs once per node of every backward pass, so the common case (a plain node, see
    Node._x) is written out inline."""
    pop = ready.pop
    take = buffers.pop
    steal = _STEAL_REFS if capture is None else 0
    while ready:
        node = pop()
        grads = take(node, None)
        if grads is None:
            grads = [None] * node._nout
        x = node._x
        if x is not None and (x.tensor_pre_hooks is not None or x.retained is not None):
            _tensor_hooks(node, grads)
        if capture is not None:
            cap = capture.get(node)
            if cap is not None:
                for nr, i in cap:
                    results[i] = grads[nr]
            if node not in needed:  # leads to no input of autograd.grad
                _skip(node, deps, ready)
                continue
        vjp = node._vjp
        if vjp is not None and x is None:  # plain: Node.apply and Node.release, in one step
            outs = _apply_plain(node, vjp, grads[0], create_graph, retain_graph)
        elif type(node) is AccumulateGrad:
            if accumulate:
                g = grads[0]
                grads = outs = None  # g alone holds the gradient now (see _accumulate)
                _accumulate_leaf(node, g, create_graph, steal)
            continue
        else:
            outs = _apply_special(node, grads, retain_graph)
        _deliver(node, outs, buffers, deps, ready)


def _apply_plain(node, vjp, g, create_graph, retain_graph):
    """Node.apply and Node.release of a plain node (one output, no hooks), in one step: the
    engine's hot path. Checks the saved tensors' versions, runs the vjp on gradient `g` (None: no
    gradient reached the node, nothing to run), and frees what it saved unless retain_graph."""
    saved = node._saved
    if g is None:
        outs = None
    else:
        if saved:
            versions = node._versions
            for i in range(len(versions)):
                t = saved[i]
                if t is not None and t._vc[0] != versions[i]:
                    node._unpack_saved()  # raises torch's error
        elif saved is None:
            raise RuntimeError(FREED_MSG)
        outs = vjp(node.ctx, live_saved(node, saved) if create_graph else saved, g)
        if ANOMALY["enabled"] and ANOMALY["check_nan"]:
            _check_nan(node, outs)
    if saved and not retain_graph:
        node._saved = None
    return outs


def _apply_special(node, grads, retain_graph):
    """A node that is not plain (hooks, several outputs, a custom Function, CopySlices), after its
    tensor hooks: pre-hooks, the node itself, its hooks, and the release of what it saved.
    Returns one gradient per input edge, or None if no gradient reached it."""
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
    if live:
        outs = node.apply(grads)
        if ANOMALY["enabled"] and ANOMALY["check_nan"]:
            _check_nan(node, outs)
        if node._hooks is not None:
            for h in node._hooks:
                r = h(tuple(outs), tuple(grads))
                if r is not None:
                    outs = tuple(r)
    else:
        outs = None
    if not retain_graph:
        node.release()
    return outs


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


def _accumulate_leaf(acc, g, create_graph, steal):
    var = acc.variable
    hooks = var._hooks
    if hooks and g is not None:
        for h in list(hooks):
            r = h(g)
            if r is not None:
                g = r
        steal = 0  # a hook may have kept what it saw
    _accumulate(var, g, create_graph, steal)
    if acc._post_hooks:
        for h in list(acc._post_hooks):
            h(var)


# How many references to the gradient `_accumulate` sees when the engine's own local is the only
# one besides the call chain (engine loop -> _accumulate_leaf -> _accumulate -> getrefcount).
_STEAL_REFS = 4

def _accumulate(var, g, create_graph, steal=0):
    """Add gradient `g` into leaf `var`'s `.grad`, as torch's AccumulateGrad does.

    steal: the reference count `g` has if the caller's is the only reference to it. Then a
    gradient that owns its memory, laid out like the leaf, becomes `.grad` without a copy (as
    torch does): no tensor the user can reach shares that memory."""
    if g is None:
        return
    if _TRACER is None:
        _bind()
    tracer = _TRACER[0]
    if tracer is not None:  # traced: .grad becomes a value of the graph
        tracer.accumulate(var, g, create_graph)
        return
    old = var._grad
    if old is None:
        if create_graph:
            var._grad = g
            return
        arr = g._data
        vd = var._data
        if steal and _getrefcount(g) <= steal and type(arr) is np.ndarray and arr.base is None \
                and _getrefcount(arr) <= 3 and g.dtype is var.dtype and arr.strides == vd.strides:
            var._grad = _make(arr, g.dtype)  # a new tensor: g's autograd fields stay behind
            return
        # a fresh buffer laid out like the leaf (the gradient may be a broadcast view)
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
            if _QUIET is not None and _QUIET[0]:  # inside a backward pass: the error state is set
                np.add(old._data, g._data, out=old._data)
            else:
                with np.errstate(all="ignore"):
                    np.add(old._data, g._data, out=old._data)
        else:  # bfloat16 is stored as uint16 bits: add through tracegrad
            old._data[...] = (old + g)._data
        old._vc[0] += 1

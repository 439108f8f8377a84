"""The backward engine: walk the graph from the outputs, in dependency order.

1. Count, for every node reachable from the roots, how many edges point at it.
2. Start with the roots; run a node once every edge into it has delivered its
   gradient (its count reaches zero). Its vjp gives one gradient per input edge,
   which is added into that input node's buffer.
3. AccumulateGrad nodes add into the leaf's `.grad` (or, for `autograd.grad`,
   hand the gradient back instead).
Everything is a loop over an explicit list, so a graph 100k ops deep works."""
from __future__ import annotations

from . import grad_mode
from .node import AccumulateGrad


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _zeros(meta):
    from .. import creation

    shape, dtype = meta
    return creation.zeros(shape, dtype=dtype)


def run_backward(roots, root_grads, *, retain_graph: bool, create_graph: bool,
                 inputs=None, allow_unused: bool = False, accumulate: bool = True):
    """roots: tensors; root_grads: a gradient for each. With `inputs` (autograd.grad)
    returns their gradients instead of accumulating into leaves."""
    # Buffers are keyed by node; each holds a list with one slot per node output.
    buffers: dict = {}
    start = []
    for t, g in zip(roots, root_grads):
        node = t.grad_fn if t.grad_fn is not None else _accumulator(t)
        if node is None:
            continue
        buf = buffers.get(node)
        if buf is None:
            buf = buffers[node] = [None] * node._nout
            start.append(node)
        nr = t._output_nr if t.grad_fn is not None else 0
        buf[nr] = _add(buf[nr], g)

    # Where autograd.grad should capture: {node: {output_nr: index into inputs}}
    capture = None
    results = None
    if inputs is not None:
        capture = {}
        results = [None] * len(inputs)
        for i, t in enumerate(inputs):
            node = t.grad_fn if t.grad_fn is not None else _accumulator(t)
            nr = t._output_nr if t.grad_fn is not None else 0
            capture.setdefault(node, {}).setdefault(nr, []).append(i)

    # 1. dependency counts
    deps: dict = {}
    seen = set(start)
    stack = list(start)
    while stack:
        node = stack.pop()
        for nxt, _ in node.next_functions:
            if nxt is None:
                continue
            deps[nxt] = deps.get(nxt, 0) + 1
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)

    # 2. run nodes whose inputs are complete
    ready = [n for n in start if deps.get(n, 0) == 0]
    prev = grad_mode._state["enabled"]
    grad_mode._state["enabled"] = create_graph
    try:
        while ready:
            node = ready.pop()
            grads = buffers.pop(node, None) or [None] * node._nout
            grads = _run_tensor_hooks(node, grads)
            if capture is not None and node in capture:
                for nr, idxs in capture[node].items():
                    for i in idxs:
                        results[i] = grads[nr]
            if isinstance(node, AccumulateGrad):
                if inputs is None and accumulate:
                    _accumulate(node.variable, grads[0], create_graph)
                continue
            if node._pre_hooks:
                for h in node._pre_hooks:
                    r = h(tuple(grads))
                    if r is not None:
                        grads = list(r)
            if all(g is None for g in grads):
                outs = (None,) * len(node.next_functions)
            else:
                if node._nout > 1 and any(g is None for g in grads):
                    grads = [g if g is not None else _zeros(m) for g, m in zip(grads, node._out_meta)]
                outs = node.apply(grads)
            if node._hooks:
                for h in node._hooks:
                    h(outs, tuple(grads))
            if not retain_graph:
                node.release()
            for (nxt, nr), g in zip(node.next_functions, outs):
                if nxt is None:
                    continue
                if g is not None:
                    buf = buffers.get(nxt)
                    if buf is None:
                        buf = buffers[nxt] = [None] * nxt._nout
                    buf[nr] = _add(buf[nr], g)
                d = deps[nxt] - 1
                deps[nxt] = d
                if d == 0:
                    ready.append(nxt)
    finally:
        grad_mode._state["enabled"] = prev

    if inputs is not None:
        for i, r in enumerate(results):
            if r is None and not allow_unused:
                raise RuntimeError(
                    "One of the differentiated Tensors appears to not have been used in the graph. "
                    "Set allow_unused=True if this is the desired behavior."
                )
        return results
    return None


def _accumulator(t):
    if not t.requires_grad:
        return None
    acc = t._accum
    if acc is None:
        acc = t._accum = AccumulateGrad(t)
    return acc


def _run_tensor_hooks(node, grads):
    """Hooks registered on tensors (and retain_grad) see the tensor's gradient first."""
    if isinstance(node, AccumulateGrad):
        hooks = node.variable._hooks
        if hooks and grads[0] is not None:
            for h in hooks:
                r = h(grads[0])
                if r is not None:
                    grads[0] = r
        return grads
    if node._tensor_pre_hooks:
        for nr, hooks in node._tensor_pre_hooks.items():
            for h in hooks:
                if grads[nr] is not None:
                    r = h(grads[nr])
                    if r is not None:
                        grads[nr] = r
    if node._retained:
        for nr, ref in node._retained.items():
            t = ref()
            if t is not None and grads[nr] is not None:
                g = grads[nr] if grad_mode._state["enabled"] else grads[nr].detach()
                t._grad = g.clone() if t._grad is None else t._grad + g
    return grads


def _accumulate(var, g, create_graph):
    if g is None:
        return
    if not create_graph:
        g = g.detach()
    if var._grad is None:
        # Keep our own copy: a vjp may pass the caller's gradient through unchanged.
        var._grad = g if create_graph else g.clone()
    elif create_graph:
        var._grad = var._grad + g
    else:
        var._grad._data += g._data.astype(var._grad._data.dtype, copy=False)

"""The backward engine, grad_fn objects, hooks and grad mode, against torch.

Each test writes its scenario once as `fn(m)` and runs it with `m = torch` and
`m = tracegrad`; what the scenario returns (values, names, printed text, error
type and message) must agree. Messages are compared with `tracegrad.` written
as `torch.`. torch is only the reference; tracegrad never imports it."""
from __future__ import annotations

import gc
import re
import sys
import warnings

import numpy as np
import pytest

import torch  # the reference; part of the test extra

import tracegrad  # noqa: E402

from side_by_side import LIBS, _norm, _plain, _match, both, same, raises_same  # noqa: E402,F401


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def names(t, depth=3):
    """The graph below t as nested (name, [children]) down to `depth`."""
    def walk(fn, d):
        if fn is None:
            return None
        if d == 0:
            return type(fn).__name__
        return (type(fn).__name__, [walk(n, d - 1) for n, _ in fn.next_functions])
    return walk(t.grad_fn, depth)


def leaf(m, values, dtype=None):
    return m.tensor(values, dtype=dtype or m.float32, requires_grad=True)


# ---------------------------------------------------------------------------
# grad_fn objects: names, next_functions, printing
# ---------------------------------------------------------------------------
def test_printing_requires_grad_and_grad_fn():
    def fn(m):
        x = m.ones(2, 2, requires_grad=True)
        y = x + 2
        z = y * y * 3
        out = z.mean()
        return [str(x), str(y), str(z), str(out), repr(y.grad_fn).split(" object")[0],
                str(m.ones(2) * 2), str(x.detach()), str((x * 2).sum(0))]
    same(fn)


@pytest.mark.parametrize("expr", [
    "x + 2", "x * y", "(x * y).sum()", "(x * y).sum(0)", "x.mean()", "x.mean(1)", "x ** 2", "x ** y",
    "2 ** x", "x.exp()", "x @ y.t()", "x.view(6)", "x.t()", "x[0]", "x[:, 1:]", "x[[0, 1]]",
    "x.reshape(3, 2)", "x.t().reshape(6)", "x.unsqueeze(0).expand(2, 2, 3) @ y.t()", "x.relu()",
    "x.sigmoid() * y.tanh()", "(x - y) / (y + 3)", "x.max(1)[0]", "x.permute(1, 0).contiguous()",
])
def test_graph_names_match_torch(expr):
    """grad_fn names and the graph shape (three levels of next_functions), torch's names."""
    def fn(m):
        x = leaf(m, [[1., 2., 3.], [4., 5., 6.]])
        y = leaf(m, [[0.5, -1., 2.], [1.5, 0.25, -2.]])
        r = eval(expr, {"x": x, "y": y})
        return names(r)
    same(fn)


def test_accumulate_grad_node():
    def fn(m):
        x = leaf(m, [1., 2.])
        y = x * 2
        acc, nr = y.grad_fn.next_functions[0]
        return [type(acc).__name__, nr, acc.variable is x, acc.next_functions, acc.name(),
                y.grad_fn.name(), x.grad_fn, x.is_leaf, y.is_leaf,
                y.grad_fn.next_functions[0][0] is (x * 3).grad_fn.next_functions[0][0]]
    same(fn)


def test_output_nr_in_next_functions():
    def fn(m):
        x = leaf(m, [[1., 2.], [3., 4.]])
        a, b = x.unbind(0)
        z = b * 2
        return [[nr for _, nr in z.grad_fn.next_functions], type(z.grad_fn.next_functions[0][0]).__name__]
    same(fn)


# ---------------------------------------------------------------------------
# backward: gradients, accumulation, roots
# ---------------------------------------------------------------------------
def test_tutorial_mean_backward():
    def fn(m):
        x = m.ones(2, 2, requires_grad=True)
        out = ((x + 2) * (x + 2) * 3).mean()
        out.backward()
        return x.grad
    same(fn)


def test_backward_with_gradient_vector():
    def fn(m):
        x = leaf(m, [0.5, -1.0, 2.0])
        y = x * 2
        for _ in range(3):
            y = y * 2
        y.backward(m.tensor([0.1, 1.0, 0.0001]))
        return x.grad
    same(fn)


def test_gradients_accumulate_and_zero():
    def fn(m):
        w = leaf(m, [1.])
        x = leaf(m, [2.])
        y = m.mul(m.add(w, x), m.add(w, 1))
        y.backward()
        first = w.grad.clone()
        w.sum().backward()
        second = w.grad.clone()
        w.grad.data.zero_()
        w.sum().backward()
        return [first, second, w.grad, x.grad]
    same(fn)


def test_diamond_and_reuse():
    """A tensor used on several paths gets the sum of their gradients."""
    def fn(m):
        x = leaf(m, [[1., -2.], [3., 0.5]])
        y = x * 2
        z = y * y + y.exp() - (y @ y).sum(1, keepdim=True) + y[0]
        ((z + 1) ** 2).mean().backward()
        return x.grad
    same(fn)


def test_multiple_roots_and_grad_tensors():
    def fn(m):
        x = leaf(m, [1., 2., 3.])
        a = x * 2
        b = (x ** 2).sum()
        m.autograd.backward([a, b], [m.tensor([1., 0.5, 0.25]), m.tensor(2.)])
        return x.grad
    same(fn)


def test_backward_on_leaf_and_inputs_argument():
    def fn(m):
        x = leaf(m, [1., 2.])
        y = leaf(m, [3., 4.])
        x.backward(m.tensor([5., 6.]))  # a leaf as the root
        z = (x * y).sum()
        z.backward(inputs=[y])  # only y accumulates
        return [x.grad, y.grad]
    same(fn)


def test_mixed_dtype_gradients_have_input_dtypes():
    def fn(m):
        a = leaf(m, [1., 2.], m.float32)
        b = leaf(m, [3., 4.], m.float64)
        c = leaf(m, [0.5, 0.25], m.float16)
        ((a * b + c) ** 2).sum().backward()
        return [a.grad, b.grad, c.grad]
    same(fn)


def test_integer_outputs_do_not_require_grad():
    def fn(m):
        x = leaf(m, [3., 1., 2.])
        v, i = x.max(0)
        return [v.requires_grad, i.requires_grad, i.grad_fn, x.argmax().requires_grad, (x > 1).requires_grad,
                x.long().requires_grad]
    same(fn)


def test_multi_output_node_with_unused_outputs():
    def fn(m):
        x = leaf(m, [[1., 2., 3.], [4., 5., 6.]])
        a, b, c = x.unbind(1)
        (b * 3).sum().backward()
        p, q = x.split([1, 2], 1)
        (q ** 2).sum().backward()
        return x.grad
    same(fn)


def test_chain_with_hooks_functions_casts_and_branches():
    """A graph that starts as a chain (each node feeding one other) and branches further down,
    with the less common nodes inside the chain: a tensor hook, retain_grad, a node pre-hook,
    a custom Function, a multi-output node, a dtype change, an integer side input."""
    def fn(m):
        class Double(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2

            @staticmethod
            def backward(ctx, g):
                return g * 2

        seen = []
        x = leaf(m, [[1., -2., 3.], [0.5, 4., -1.]])
        w = leaf(m, [0.25, 0.5, 2.], m.float64)
        a = (x * 3).tanh()
        a.register_hook(lambda g: g * 10)
        b = Double.apply(a)
        b.retain_grad()
        c, d = b.split([1, 2], 1)
        e = d.exp() * w  # float64 from here on
        e.grad_fn.register_prehook(lambda gs: seen.append(gs[0].sum().item()))
        f = (e.sum(1) + e.abs().sum(1)) * m.arange(2)
        f.sum().backward()
        return [x.grad, w.grad, b.grad, seen]
    same(fn)


@pytest.mark.parametrize("needs", [(True, True), (True, False), (False, True)])
def test_two_tensor_ops_save_what_the_rule_reads(needs):
    """x * y saves y only if x needs a gradient and x only if y does (as torch does): changing
    the other operand in place afterwards is no error."""
    def fn(m, change_read):
        x = m.tensor([1., 2., 3.], requires_grad=needs[0])
        y = m.tensor([4., 5., 6.], requires_grad=needs[1])
        z = x * y
        with m.no_grad():
            (y if needs[0] == change_read else x).mul_(2)
        z.sum().backward()
        return [x.grad, y.grad, names(z, 1), [e[0] is None for e in ((x + y) / y).grad_fn.next_functions]]
    same(lambda m: fn(m, False))
    raises_same(lambda m: fn(m, True))


def test_fresh_gradient_becomes_grad_without_copy():
    """A gradient no one else holds becomes the leaf's .grad as it is, as in torch."""
    def fn(m):
        made = []

        class Twice(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2

            @staticmethod
            def backward(ctx, g):
                r = g * 2
                made.append(r.data_ptr())
                return r

        x = leaf(m, [[1., 2., 3.], [4., 5., 6.]])
        Twice.apply(x).sum().backward()
        return [x.grad, x.grad.data_ptr() == made[0]]
    same(fn)


def test_grad_never_shares_memory_with_a_visible_tensor():
    """.grad gets its own memory whenever the gradient is held elsewhere too: by a hook, by two
    leaves, by a retained grad, by the caller; and backward's own ones are fresh each time."""
    def fn(m):
        out = []
        x = leaf(m, [1., 2., 3.])
        kept = []
        x.register_hook(lambda g: kept.append(g))
        (x * 3).sum().backward()
        x.grad.mul_(0)
        out += [kept[0], x.grad.data_ptr() == kept[0].data_ptr()]
        a, b = leaf(m, [1., 2.]), leaf(m, [3., 4.])
        (a + b).exp().sum().backward()
        a.grad.add_(1)
        out += [a.grad, b.grad]
        y = a * 2
        y.retain_grad()
        (y * 3).sum().backward()
        out += [y.grad.data_ptr() == a.grad.data_ptr()]
        v, given = leaf(m, [1., 1.]), m.tensor([0.5, 2.])
        v.backward(given)
        v.grad.mul_(4)
        out += [given, v.grad]
        s = m.tensor(2.0, requires_grad=True)
        s.backward()
        s.grad.mul_(5)
        s.grad = None
        s.backward()
        out += [s.grad]
        return out
    same(fn)


# ---------------------------------------------------------------------------
# backward errors
# ---------------------------------------------------------------------------
def test_implicit_gradient_needs_scalar():
    raises_same(lambda m: (leaf(m, [1., 2.]) ** 2).backward())


def test_shape_mismatch_message():
    raises_same(lambda m: (leaf(m, [1., 2., 3.]) * 2).backward(m.ones(2)))


def test_no_grad_fn_message():
    raises_same(lambda m: m.ones(3).sum().backward())


def test_one_element_non_scalar_is_fine():
    same(lambda m: [(lambda x: ((x * 3).backward(), x.grad)[1])(leaf(m, [2.]))])


def test_backward_twice_through_saved_tensors_raises():
    def fn(m):
        x = leaf(m, [1., 2.])
        z = (x * x).sum()
        z.backward()
        z.backward()
    raises_same(fn)


def test_backward_twice_without_saved_tensors_is_fine():
    def fn(m):
        x = leaf(m, [1., 2.])
        z = (x + 1).sum()
        z.backward()
        z.backward()
        return x.grad
    same(fn)


def test_retain_graph_allows_second_backward():
    def fn(m):
        x = leaf(m, [1., 2.])
        z = (x * x).exp().sum()
        z.backward(retain_graph=True)
        z.backward()
        return x.grad
    same(fn)


def test_grad_twice_raises_and_retain_graph_allows():
    def fn(m):
        x = leaf(m, [1., 2.])
        z = (x.sin() * x).sum()
        g1 = m.autograd.grad(z, x, retain_graph=True)
        g2 = m.autograd.grad(z, x)
        return [g1, g2]
    same(fn)

    def fn2(m):
        x = leaf(m, [1., 2.])
        z = (x.sin() * x).sum()
        m.autograd.grad(z, x)
        m.autograd.grad(z, x)
    raises_same(fn2)


# ---------------------------------------------------------------------------
# retain_grad and .grad of non-leaves
# ---------------------------------------------------------------------------
def test_non_leaf_grad_is_none_with_warning():
    def fn(m):
        x = leaf(m, [1., 2.])
        y = x * 2
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            g = y.grad
        return [g, [str(i.message) for i in w], [i.category.__name__ for i in w]]
    ref, ours = both(fn)
    assert ours[1][1][0] is None and ref[1][1][0] is None
    assert ours[1][1][2] == ref[1][1][2] == ("list", ["UserWarning"])
    assert ours[1][1][1][1][0].startswith("The .grad attribute of a Tensor that is not a leaf Tensor is being accessed.")
    assert ours[1][1][1][1][0] == ref[1][1][1][1][0]


def test_retain_grad():
    def fn(m):
        x = leaf(m, [1., 2., 3.])
        y = x * 2
        y.retain_grad()
        z = y * y
        z.retain_grad()
        w = z.sum()
        w.backward(retain_graph=True)
        first = y.grad.clone()
        w.backward()  # accumulates into the retained grad too
        return [first, y.grad, z.grad, y.retains_grad, x.retains_grad, z.grad.requires_grad]
    same(fn)


def test_retain_grad_errors():
    raises_same(lambda m: m.ones(2).retain_grad())


def test_retain_grad_on_leaf_is_noop():
    def fn(m):
        x = leaf(m, [1.])
        x.retain_grad()
        (x * 2).sum().backward()
        return [x.grad, x.retains_grad]
    same(fn)


# ---------------------------------------------------------------------------
# autograd.grad
# ---------------------------------------------------------------------------
def test_grad_basic_and_non_leaf_inputs():
    def fn(m):
        x = leaf(m, [1., 2., 3.])
        y = x * x
        z = (y.sin() * 3).sum()
        gy, gx = m.autograd.grad(z, [y, x], retain_graph=True)
        (gx2,) = m.autograd.grad([z], (x,), grad_outputs=[m.tensor(2.)])
        return [gy, gx, gx2, x.grad]
    same(fn)


def test_grad_allow_unused_and_materialize():
    def fn(m):
        x = leaf(m, [1., 2.])
        u = leaf(m, [5.])
        z = (x * 2).sum()
        a = m.autograd.grad(z, [x, u], allow_unused=True, retain_graph=True)
        b = m.autograd.grad(z, [x, u], materialize_grads=True)
        return [a, b]
    same(fn)


def test_grad_unused_raises():
    def fn(m):
        x = leaf(m, [1., 2.])
        u = leaf(m, [5.])
        m.autograd.grad((x * 2).sum(), [x, u])
    raises_same(fn)


def test_grad_input_not_requiring_grad_raises():
    raises_same(lambda m: m.autograd.grad((leaf(m, [1.]) * 2).sum(), [m.ones(1)]))


def test_grad_does_not_touch_dot_grad_or_other_branches():
    def fn(m):
        x = leaf(m, [1., 2.])
        w = leaf(m, [3., 4.])
        z = (x * w).sum() + (w * w).sum()
        (gx,) = m.autograd.grad(z, x)
        return [gx, x.grad, w.grad]
    same(fn)


# ---------------------------------------------------------------------------
# higher-order gradients
# ---------------------------------------------------------------------------
def test_create_graph_second_derivative():
    def fn(m):
        x = leaf(m, [0.5, -1.5, 2.0])
        y = (x ** 3 + x.sin() * x).sum()
        (g,) = m.autograd.grad(y, x, create_graph=True)
        (gg,) = m.autograd.grad(g.sum(), x)
        return [g, gg, g.requires_grad]
    same(fn)


def test_create_graph_backward_sets_grad_with_history():
    def fn(m):
        x = leaf(m, [1., 2.])
        y = (x.exp() * x).sum()
        y.backward(create_graph=True)
        g = x.grad
        has_fn = g.grad_fn is not None
        x.grad = None
        g.sum().backward()
        return [has_fn, x.grad]
    same(fn)


def test_third_derivative_through_ops():
    def fn(m):
        x = leaf(m, [[0.3, -0.7], [1.1, 0.2]])
        y = (x.tanh() @ x).sigmoid().sum() + (x * x).logsumexp(1).sum()
        (g1,) = m.autograd.grad(y, x, create_graph=True)
        (g2,) = m.autograd.grad(g1.pow(2).sum(), x, create_graph=True)
        (g3,) = m.autograd.grad(g2.sum(), x)
        return [g1, g2, g3]
    same(fn)


@pytest.mark.parametrize("op", [
    lambda x: (x ** 3).sum(), lambda x: x.exp().mean(), lambda x: (x.sigmoid() * x.tanh()).sum(),
    lambda x: x.norm(), lambda x: (x @ x.t()).logsumexp(1).sum(), lambda x: x.std(1).sum(),
    lambda x: x.softmax(1)[:, 0].sum() if hasattr(x, "softmax") else x.sum(),
    lambda x: x.prod(1).sum(), lambda x: x.cumprod(1).sum(), lambda x: x.max(1)[0].sum(),
    lambda x: (x.abs() + 1).log().var(), lambda x: x.reshape(-1)[[0, 2, 2]].pow(2).sum(),
    # composites shown as one node (LerpBackward0, AddBackward0 with alpha): their backward re-runs
    # the decomposition, recorded against the real inputs under create_graph
    lambda x: (x.lerp(x.exp(), 0.3) ** 2).sum(), lambda x: (x.add(x * x, alpha=2.5) ** 2).sum(),
])
def test_gradgradcheck_ops(op):
    x = tracegrad.tensor([[0.3, -0.7, 1.2], [1.1, 0.2, -0.4]], dtype=tracegrad.float64, requires_grad=True)
    assert tracegrad.autograd.gradgradcheck(op, (x,))


# ---------------------------------------------------------------------------
# hooks
# ---------------------------------------------------------------------------
def test_tensor_hooks_on_leaf_and_non_leaf():
    def fn(m):
        seen = []
        x = leaf(m, [1., 2.])
        h1 = x.register_hook(lambda g: seen.append(("x", g.tolist())) or g * 10)
        y = x * 3
        y.register_hook(lambda g: seen.append(("y", g.tolist())))
        y.register_hook(lambda g: g + 1)
        (y * y).sum().backward()
        first = x.grad.clone()
        h1.remove()
        x.grad = None
        (x * 3).sum().backward()
        return [first, x.grad, seen]
    same(fn)


def test_hook_on_tensor_without_grad_raises():
    raises_same(lambda m: m.ones(2).register_hook(lambda g: g))


def test_node_hooks_and_prehooks():
    def fn(m):
        seen = []
        x = leaf(m, [1., 2.])
        y = x.exp()
        y.grad_fn.register_prehook(lambda go: seen.append(("pre", go[0].tolist())))
        y.grad_fn.register_hook(lambda gi, go: seen.append(("post", gi[0].tolist(), go[0].tolist())))
        z = (y * 2).sum()
        z.grad_fn.register_hook(lambda gi, go: (gi[0] * 0.5,))
        z.backward()
        return [x.grad, seen]
    same(fn)


def test_post_accumulate_grad_hook():
    def fn(m):
        seen = []
        x = leaf(m, [1., 2.])
        x.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.tolist()))
        (x * 2).sum().backward()
        (x * 3).sum().backward()
        return seen
    same(fn)


# ---------------------------------------------------------------------------
# grad mode
# ---------------------------------------------------------------------------
def test_no_grad_context_and_decorators():
    def fn(m):
        x = leaf(m, [1., 2.])
        res = [x.requires_grad, (x ** 2).requires_grad]
        with m.no_grad():
            y = x ** 2
            res += [y.requires_grad, y.grad_fn, y.is_leaf, m.is_grad_enabled()]
            with m.enable_grad():
                res.append((x * 2).requires_grad)

        @m.no_grad()
        def f(t):
            return t * 2

        @m.no_grad
        def g(t):
            return t * 2

        @m.enable_grad()
        def h(t):
            return t * 2

        res += [f(x).requires_grad, g(x).requires_grad, m.is_grad_enabled()]
        with m.no_grad():
            res.append(h(x).requires_grad)
        return res
    same(fn)


def test_set_grad_enabled_forms():
    def fn(m):
        x = leaf(m, [1.])
        res = []
        with m.set_grad_enabled(False):
            res.append((x * 2).requires_grad)
        res.append(m.is_grad_enabled())
        m.set_grad_enabled(False)  # a plain call switches
        res.append((x * 2).requires_grad)
        m.set_grad_enabled(True)

        @m.set_grad_enabled(False)
        def f(t):
            return t * 2

        res += [m.is_grad_enabled(), f(x).requires_grad, m.is_grad_enabled()]
        return res
    same(fn)


def test_inference_mode():
    def fn(m):
        x = leaf(m, [1., 2.])
        with m.inference_mode():
            y = x * 2
            res = [y.requires_grad, m.is_grad_enabled(), m.is_inference_mode_enabled()]
        with m.inference_mode(False):
            res.append((x * 2).requires_grad)

        @m.inference_mode()
        def f(t):
            return t * 2

        return res + [f(x).requires_grad, m.is_inference_mode_enabled(), m.is_grad_enabled()]
    same(fn)


def test_no_grad_is_restored_after_exception():
    def fn(m):
        try:
            with m.no_grad():
                raise ValueError("boom")
        except ValueError:
            pass
        return m.is_grad_enabled()
    same(fn)


# ---------------------------------------------------------------------------
# requires_grad, detach, .data
# ---------------------------------------------------------------------------
def test_requires_grad_messages_for_integer_tensors():
    raises_same(lambda m: m.tensor([1, 2], requires_grad=True))
    raises_same(lambda m: m.ones(2, dtype=m.long).requires_grad_())
    raises_same(lambda m: setattr(m.ones(2, dtype=m.int32), "requires_grad", True))
    raises_same(lambda m: m.zeros(2, dtype=m.int64, requires_grad=True))


def test_requires_grad_false_on_non_leaf_raises():
    raises_same(lambda m: (leaf(m, [1.]) * 2).requires_grad_(False))


def test_requires_grad_flag_roundtrip():
    def fn(m):
        a = m.ones(2)
        r = [a.requires_grad, a.requires_grad_().requires_grad, a.is_leaf]
        a.requires_grad = False
        r.append(a.requires_grad)
        b = (leaf(m, [1.]) * 2)
        return r + [b.requires_grad_(True).requires_grad]  # requires_grad_(True) is fine on a non-leaf
    same(fn)
    raises_same(lambda m: setattr(leaf(m, [1.]) * 2, "requires_grad", True))  # the attribute is not


def test_detach_and_data():
    def fn(m):
        x = leaf(m, [1., 2.])
        y = x * 2
        d = y.detach()
        dd = y.data
        r = [d.requires_grad, d.is_leaf, d.grad_fn, d._base is None, dd.requires_grad,
             d.data_ptr() == y.data_ptr(), dd.data_ptr() == y.data_ptr()]
        d.add_(1)  # shares the version counter with y
        r += [y._version, d._version, dd._version, y.tolist()]
        dd.mul_(2)  # .data has its own counter
        r += [y._version, dd._version, y.tolist()]
        y.detach_()
        r += [y.requires_grad, y.grad_fn, y.is_leaf]
        return r
    same(fn)


def test_detach_of_view_in_place_raises():
    raises_same(lambda m: leaf(m, [1., 2.])[:1].detach_(), "Can't detach views in-place. Use detach() instead.")


def test_numpy_of_tensor_requiring_grad_raises():
    raises_same(lambda m: leaf(m, [1.]).numpy())


def test_modifying_dot_data_is_not_tracked():
    def fn(m):
        x = leaf(m, [1., 2.])
        z = (x * x).sum()
        x.data.mul_(3)  # no version change seen by autograd: uses the new values silently
        z.backward()
        return [x.grad, x._version]
    same(fn)


# ---------------------------------------------------------------------------
# deep graphs
# ---------------------------------------------------------------------------
def test_deep_chain_backward_and_free():
    """100k chained ops: backward needs no recursion, and dropping the graph (its saved
    tensors still held, thanks to retain_graph) frees all of it without recursing either."""
    import weakref

    limit = sys.getrecursionlimit()
    x = tracegrad.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    first = weakref.ref(y.grad_fn)
    last = weakref.ref(y.grad_fn.next_functions[0][0])
    y.sum().backward(retain_graph=True)
    assert x.grad.tolist() == [1.0]
    assert sys.getrecursionlimit() == limit
    del y
    gc.collect()
    assert first() is None and last() is None


def test_backward_leaves_no_cyclic_garbage():
    """After backward (without retain_graph) the graph is freed by reference counting alone:
    a node that saved its own output, or names it in error messages, holds no cycle."""
    x = tracegrad.tensor([[0.5, -1.0], [2.0, 0.25]], requires_grad=True)
    for _ in range(2):  # the first pass makes the caches a graph uses
        y = x
        for _ in range(5):
            y = (y.exp() * 0.5).tanh().sigmoid() - y
        y.sum().backward()
    gc.collect()
    gc.disable()
    try:
        y = x
        for _ in range(5):
            y = (y.exp() * 0.5).tanh().sigmoid() - y
        y.sum().backward()
        del y
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_a_graph_dropped_without_backward_leaves_no_cyclic_garbage():
    """An evaluation outside no_grad builds a graph and drops it: nodes that save their own output
    (exp, tanh, sigmoid, relu, pow) save a stand-in for it, so reference counting frees it all."""
    x = tracegrad.tensor([[0.5, -1.0], [2.0, 0.25]], requires_grad=True)
    w = tracegrad.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            y = ((x @ w).relu().exp() * 0.5).tanh().sigmoid() ** w
            y.sum().item()
            del y
        assert gc.collect() == 0
    finally:
        gc.enable()


@pytest.mark.parametrize("fn", ["exp", "tanh", "sigmoid", "relu", "pow"])
def test_double_backward_through_saved_outputs(fn):
    """Under create_graph a rule that reads the node's own output differentiates through it."""
    def f(L, x):
        return x ** x if fn == "pow" else getattr(x, fn)()

    got = []
    for L in (tracegrad, torch):
        x = L.tensor([0.3, 1.2, 2.0], requires_grad=True)
        (g,) = L.autograd.grad(f(L, x).sum(), x, create_graph=True)
        (gg,) = L.autograd.grad(g.sum(), x)
        got.append((g.detach().numpy(), gg.numpy()))
    np.testing.assert_allclose(got[0][0], got[1][0], rtol=1e-5)
    np.testing.assert_allclose(got[0][1], got[1][1], rtol=1e-5)

"""Custom autograd functions (autograd.Function) and the old Variable wrapper, against torch.

The same Function subclass is defined for both libraries by `make(m)` (m = torch or
tracegrad), then used the same way; results, printed text, grad_fn names and error
messages must agree (messages with `tracegrad.` written as `torch.`)."""
from __future__ import annotations

import re

import numpy as np
import pytest

import torch  # the reference; part of the test extra

import tracegrad  # noqa: E402

from side_by_side import LIBS, _norm, _plain, _match, both, same, raises_same  # noqa: E402,F401


# ---------------------------------------------------------------------------
# Function classes, written once against the torch API
# ---------------------------------------------------------------------------
def make_exp(m):
    class Exp(m.autograd.Function):
        @staticmethod
        def forward(ctx, i):
            result = i.exp()
            ctx.save_for_backward(result)
            return result

        @staticmethod
        def backward(ctx, grad_output):
            (result,) = ctx.saved_tensors
            return grad_output * result

    return Exp


def make_scale_add(m):
    class ScaleAdd(m.autograd.Function):
        """f(x, k, y) = x * k + y * y, with a Python number in the middle."""

        @staticmethod
        def forward(ctx, x, k, y):
            ctx.k = k
            ctx.save_for_backward(y)
            ctx.flags = ctx.needs_input_grad
            return x * k + y * y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            gx = g * ctx.k if ctx.needs_input_grad[0] else None
            gy = 2 * g * y if ctx.needs_input_grad[2] else None
            return gx, None, gy

    return ScaleAdd


def make_cube(m):
    class Cube(m.autograd.Function):
        """x ** 3 with a backward written in differentiable ops (double backward works)."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * g * x * x

    return Cube


def make_sort_like(m):
    class TwoOut(m.autograd.Function):
        """Two outputs, the second non-differentiable (an integer index)."""

        @staticmethod
        def forward(ctx, x):
            idx = x.argmax()
            ctx.mark_non_differentiable(idx)
            ctx.save_for_backward(x)
            return x * 2, idx

        @staticmethod
        def backward(ctx, g, g_idx):
            return g * 2

    return TwoOut


# ---------------------------------------------------------------------------
# the tutorial's Exp
# ---------------------------------------------------------------------------
def test_tutorial_exp():
    def fn(m):
        Exp = make_exp(m)
        x = m.tensor([1.], requires_grad=True)
        ret = Exp.apply(x)
        text = str(ret)
        ret.backward()
        return [text, x.grad, type(ret.grad_fn).__name__, ret.grad_fn.name(), ret.is_leaf, ret.requires_grad]
    same(fn)


def test_grad_fn_is_the_ctx_and_next_functions():
    def fn(m):
        ScaleAdd = make_scale_add(m)
        x = m.tensor([1., 2.], requires_grad=True)
        y = m.tensor([3., 4.])
        r = ScaleAdd.apply(x, 2.5, y)
        fn_ = r.grad_fn
        return [fn_.k, [None if n is None else type(n).__name__ for n, _ in fn_.next_functions],
                fn_.flags, list(fn_.saved_tensors)]
    same(fn)


def test_gradients_and_needs_input_grad():
    def fn(m):
        ScaleAdd = make_scale_add(m)
        x = m.tensor([1., 2.], requires_grad=True)
        y = m.tensor([3., -4.], requires_grad=True)
        r = ScaleAdd.apply(x, 0.5, y)
        ((r + 1) ** 2).sum().backward()
        return [r, x.grad, y.grad, r.grad_fn.needs_input_grad]
    same(fn)


def test_no_graph_when_no_input_requires_grad():
    def fn(m):
        Exp = make_exp(m)
        r = Exp.apply(m.tensor([1., 2.]))
        with m.no_grad():
            q = Exp.apply(m.tensor([1.], requires_grad=True))
        return [r.requires_grad, r.grad_fn, q.requires_grad, q.grad_fn]
    same(fn)


def test_forward_runs_without_grad_mode():
    def fn(m):
        seen = []

        class Probe(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                seen.append(m.is_grad_enabled())
                y = x * 2
                seen.append(y.requires_grad)
                return y

            @staticmethod
            def backward(ctx, g):
                seen.append(m.is_grad_enabled())
                return g * 2

        x = m.tensor([1.], requires_grad=True)
        Probe.apply(x).sum().backward()
        return seen
    same(fn)


def test_double_backward_through_function():
    def fn(m):
        Cube = make_cube(m)
        x = m.tensor([0.5, -2.], requires_grad=True)
        (g,) = m.autograd.grad(Cube.apply(x).sum(), x, create_graph=True)
        (gg,) = m.autograd.grad(g.sum(), x)
        return [g, gg]
    same(fn)


def test_non_differentiable_output_and_zero_grad_for_it():
    def fn(m):
        TwoOut = make_sort_like(m)
        x = m.tensor([1., 3., 2.], requires_grad=True)
        a, i = TwoOut.apply(x)
        res = [a.requires_grad, i.requires_grad, i.dtype == m.int64]
        a.sum().backward()
        return res + [x.grad]
    same(fn)


def test_unused_output_gets_zeros():
    def fn(m):
        seen = []

        class Split(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2, x * 3

            @staticmethod
            def backward(ctx, g1, g2):
                seen.append(g2.tolist())
                return g1 * 2 + g2 * 3

        x = m.tensor([1., 2.], requires_grad=True)
        a, b = Split.apply(x)
        a.sum().backward()
        return [seen, x.grad]
    same(fn)


def test_set_materialize_grads_false_gives_none():
    def fn(m):
        seen = []

        class Split(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.set_materialize_grads(False)
                return x * 2, x * 3

            @staticmethod
            def backward(ctx, g1, g2):
                seen.append(g2 is None)
                return g1 * 2

        x = m.tensor([1., 2.], requires_grad=True)
        a, b = Split.apply(x)
        a.sum().backward()
        return [seen, x.grad]
    same(fn)


def test_mark_dirty_in_place_function():
    def fn(m):
        class MulTwo_(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                x.mul_(2)
                ctx.mark_dirty(x)
                return x

            @staticmethod
            def backward(ctx, g):
                return g * 2

        x = m.tensor([1., 2.], requires_grad=True)
        y = x * 1
        r = MulTwo_.apply(y)
        res = [r is y, type(y.grad_fn).__name__, y._version]
        (r * r).sum().backward()
        return res + [x.grad]
    same(fn)


def test_returning_an_input_gives_a_view_with_history():
    def fn(m):
        class Identity(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x

            @staticmethod
            def backward(ctx, g):
                return g * 5

        x = m.tensor([1., 2.], requires_grad=True)
        r = Identity.apply(x)
        res = [r is x, type(r.grad_fn).__name__, r._base is x]
        r.sum().backward()
        return res + [x.grad]
    same(fn)


def test_function_used_twice_in_one_graph():
    def fn(m):
        Exp = make_exp(m)
        x = m.tensor([0.5, 1.5], requires_grad=True)
        y = Exp.apply(Exp.apply(x) * 0.5) + Exp.apply(x)
        ((y + 1) ** 2).mean().backward()
        return x.grad
    same(fn)


def test_once_differentiable_backward_runs_without_grad():
    def fn(m):
        seen = []

        class F(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x * x

            @staticmethod
            @m.autograd.function.once_differentiable
            def backward(ctx, g):
                (x,) = ctx.saved_tensors
                r = 2 * x * g
                seen.append(r.requires_grad)
                return r

        x = m.tensor([3.], requires_grad=True)
        F.apply(x).sum().backward(create_graph=True)
        return [seen, x.grad.detach()]
    same(fn)


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------
def test_wrong_number_of_gradients():
    def fn(m):
        class Bad(m.autograd.Function):
            @staticmethod
            def forward(ctx, x, y):
                return x * y

            @staticmethod
            def backward(ctx, g):
                return g

        x = m.tensor([1.], requires_grad=True)
        Bad.apply(x, x).sum().backward()
    raises_same(fn)


def test_gradient_for_a_number_input():
    def fn(m):
        class Bad(m.autograd.Function):
            @staticmethod
            def forward(ctx, x, k):
                return x * k

            @staticmethod
            def backward(ctx, g):
                return g * 2, g

        Bad.apply(m.tensor([1.], requires_grad=True), 2.0).sum().backward()
    raises_same(fn)


def test_gradient_of_the_wrong_shape():
    def fn(m):
        class Bad(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2

            @staticmethod
            def backward(ctx, g):
                return g[:2]

        Bad.apply(m.tensor([1., 2., 3.], requires_grad=True)).sum().backward()
    raises_same(fn)


def test_extra_none_gradients_are_allowed():
    def fn(m):
        class Extra(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2

            @staticmethod
            def backward(ctx, g):
                return g * 2, None, None

        x = m.tensor([1.], requires_grad=True)
        Extra.apply(x).sum().backward()
        return x.grad
    same(fn)


def test_saved_tensor_modified_in_place():
    def fn(m):
        Exp = make_exp(m)
        x = m.tensor([1., 2.], requires_grad=True)
        y = Exp.apply(x)
        y.add_(1)
        y.sum().backward()
    raises_same(fn)


def test_saved_tensors_after_backward_are_freed():
    def fn(m):
        Exp = make_exp(m)
        x = m.tensor([1., 2.], requires_grad=True)
        y = Exp.apply(x).sum()
        y.backward()
        y.backward()
    raises_same(fn)


def test_backward_twice_without_saved_tensors_is_fine():
    def fn(m):
        class Double(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2

            @staticmethod
            def backward(ctx, g):
                return g * 2

        x = m.tensor([1.], requires_grad=True)
        y = Double.apply(x).sum()
        y.backward()
        y.backward()
        return x.grad
    same(fn)


def test_unimplemented_backward():
    def fn(m):
        class NoBackward(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2

        NoBackward.apply(m.tensor([1.], requires_grad=True)).sum().backward()
    ref, ours = both(fn)
    assert ref[0] == ours[0] == "raised" and ref[1] == ours[1] == "NotImplementedError"
    assert "You must implement either the backward or vjp method" in ours[2]


# ---------------------------------------------------------------------------
# Variable, the pre-0.4 wrapper
# ---------------------------------------------------------------------------
def test_variable_tutorial_cells():
    def fn(m):
        Variable = m.autograd.Variable
        x = Variable(m.ones(2, 3))
        texts = [str(x), str(x.requires_grad_())]
        y = x ** 2
        try:
            y.backward()
        except RuntimeError as e:
            texts.append(str(e))
        y.backward(m.ones_like(x))
        texts.append(str(x.grad))
        return texts
    same(fn)


def test_variable_semantics():
    def fn(m):
        Variable = m.autograd.Variable
        base = m.ones(2)
        v = Variable(base, requires_grad=True)
        r = [v is base, v.requires_grad, v.is_leaf, base.requires_grad, isinstance(base, Variable),
             v.data_ptr() == base.data_ptr()]
        w = Variable(v * 2)
        r += [w.requires_grad, w.grad_fn]
        return r
    same(fn)


def test_variable_errors():
    raises_same(lambda m: m.autograd.Variable([1., 2.]))
    raises_same(lambda m: m.autograd.Variable(m.ones(2, dtype=m.long), requires_grad=True))

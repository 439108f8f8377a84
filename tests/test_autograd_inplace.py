"""In-place operations and autograd, against torch: version counters, the saved-tensor check,
the leaf rules, rebasing a non-leaf's history, and CopySlices for writes through views.

Each scenario is written once as `fn(m)` and run with `m = torch` and `m = tracegrad`; the
results (values, grad_fn names, versions, error type and message) must agree. Messages are
compared with `tracegrad.` written as `torch.`. torch is only the reference here."""
from __future__ import annotations

import re

import numpy as np
import pytest

import torch  # the reference; part of the test extra

import tracegrad  # noqa: E402

from hypothesis import given, settings, strategies as st  # noqa: E402

from side_by_side import LIBS, _norm, _plain, _match, both, same, raises_same  # noqa: E402,F401


def leaf(m, values, dtype=None):
    return m.tensor(values, dtype=dtype or m.float32, requires_grad=True)


def name(t):
    return None if t.grad_fn is None else type(t.grad_fn).__name__


def next_names(t):
    return [None if n is None else type(n).__name__ for n, _ in t.grad_fn.next_functions]


# ---------------------------------------------------------------------------
# version counters
# ---------------------------------------------------------------------------
def test_version_counter_shared_by_views_and_detach():
    def fn(m):
        x = m.ones(4)
        v = x[:2]
        d = x.detach()
        r = [x._version]
        x.add_(1)
        r += [x._version, v._version, d._version]
        v.mul_(2)
        r += [x._version, v._version, d._version]
        x[0] = 5
        x += 1
        x.zero_()
        x.fill_(2.0)
        x.copy_(m.arange(4.))
        r += [x._version, v._version, x.data._version, x.clone()._version]
        return r
    same(fn)


# ---------------------------------------------------------------------------
# a saved tensor changed in place: torch's error, naming what made it
# ---------------------------------------------------------------------------
def test_saved_output_modified():
    def fn(m):
        x = leaf(m, [1., 2., 3.])
        y = x.exp()
        y.add_(1)
        y.sum().backward()
    raises_same(fn)


def test_saved_input_modified_names_its_current_maker():
    def fn(m):
        x = leaf(m, [1., 2., 3.])
        y = x.exp()
        z = y.sin()
        y.add_(1)
        y.add_(1)
        z.sum().backward()
    raises_same(fn)


def test_saved_operand_of_mul_modified():
    def fn(m):
        x = leaf(m, [1., 2., 3.])
        y = x * 1
        z = y * y
        y.mul_(2)
        z.sum().backward()
    raises_same(fn)


def test_saved_leaf_modified_under_no_grad():
    def fn(m):
        w = leaf(m, [1., 2., 3.])
        z = w.sin()
        with m.no_grad():
            w.mul_(2)
        z.sum().backward()
    raises_same(fn)


def test_saved_tensor_modified_through_setitem():
    def fn(m):
        x = leaf(m, [1., 2., 3.])
        y = x.exp()
        z = y * y
        y[0] = 1
        z.sum().backward()
    raises_same(fn)


def test_modifying_an_unsaved_tensor_is_fine():
    def fn(m):
        x = leaf(m, [1., 2., 3.])
        y = x + 1  # add saves nothing
        z = y + 2
        y.mul_(3)
        z.sum().backward()
        return x.grad
    same(fn)


# ---------------------------------------------------------------------------
# leaves that require grad
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("op", [
    lambda x: x.add_(1), lambda x: x.mul_(2), lambda x: x.zero_(), lambda x: x.exp_(),
    lambda x: x.__iadd__(1), lambda x: x.copy_(x.detach() * 2),
])
def test_in_place_on_leaf_raises(op):
    raises_same(lambda m: op(leaf(m, [1., 2.])))


VIEW_OF_LEAF = {
    "select_add_": lambda m, x: x[0].add_(1), "slice_mul_": lambda m, x: x[:1].mul_(2),
    "view_zero_": lambda m, x: x.view(2).zero_(), "t_": lambda m, x: x.t_(), "unsqueeze_": lambda m, x: x.unsqueeze_(0),
    "setitem_int": lambda m, x: x.__setitem__(0, 1.0), "setitem_slice": lambda m, x: x.__setitem__(slice(0, 1), 1.0),
    "setitem_full_slice": lambda m, x: x.__setitem__(slice(None), 1.0),
    "setitem_ellipsis": lambda m, x: x.__setitem__(Ellipsis, 1.0),
    "setitem_index": lambda m, x: x.__setitem__(m.tensor([0]), 1.0),
    "setitem_mask": lambda m, x: x.__setitem__(x > 0, 1.0),
}


@pytest.mark.parametrize("op", sorted(VIEW_OF_LEAF))
def test_in_place_through_leaf_or_its_view_raises(op):
    """torch's two messages: a write into the leaf itself vs into a view of it."""
    raises_same(lambda m: VIEW_OF_LEAF[op](m, leaf(m, [1., 2.])))


def test_in_place_on_leaf_allowed_under_no_grad():
    def fn(m):
        x = leaf(m, [1., 2.])
        with m.no_grad():
            x.add_(1)
            x[0] = 7
            x.mul_(2)
        return [x, x._version, x.requires_grad, x.is_leaf, x.grad_fn]
    same(fn)


def test_setitem_advanced_on_leaf_raises():
    raises_same(lambda m: leaf(m, [1., 2., 3.]).__setitem__(m.tensor([0, 2]), 0.0))


# ---------------------------------------------------------------------------
# in place on non-leaves: history is rebased
# ---------------------------------------------------------------------------
INPLACE = {
    "add_": lambda y, w: y.add_(w), "add_scalar": lambda y, w: y.add_(2), "sub_": lambda y, w: y.sub_(w * 0.5),
    "mul_": lambda y, w: y.mul_(w), "mul_scalar": lambda y, w: y.mul_(3), "div_": lambda y, w: y.div_(w + 3),
    "pow_": lambda y, w: y.pow_(2), "exp_": lambda y, w: y.exp_(), "sigmoid_": lambda y, w: y.sigmoid_(),
    "tanh_": lambda y, w: y.tanh_(), "relu_": lambda y, w: y.relu_(), "clamp_": lambda y, w: y.clamp_(-0.5, 0.5),
    "neg_": lambda y, w: y.neg_(), "abs_": lambda y, w: y.abs_(), "sin_": lambda y, w: y.sin_(),
    "masked_fill_": lambda y, w: y.masked_fill_(y > 0, 0.25), "copy_": lambda y, w: y.copy_(w * 2),
    "zero_": lambda y, w: y.zero_(), "fill_": lambda y, w: y.fill_(1.5), "iadd": lambda y, w: y.__iadd__(w),
    "imul": lambda y, w: y.__imul__(w), "isub": lambda y, w: y.__isub__(1.0), "itruediv": lambda y, w: y.__itruediv__(4.0),
}


@pytest.mark.parametrize("op", sorted(INPLACE))
def test_in_place_on_non_leaf(op):
    """The written tensor's grad_fn becomes the op's node (torch's names); gradients reach x and w."""
    def fn(m):
        x = leaf(m, [[0.5, -1.5, 2.0], [-0.25, 0.75, -2.5]])
        w = leaf(m, [[1.0, 2.0, -1.0], [0.5, -0.5, 3.0]])
        y = x * 1.5
        r = INPLACE[op](y, w)
        res = [r is y, name(y), next_names(y), y._version, y.is_leaf]
        ((y + 1) ** 2).mean().backward()
        return res + [x.grad, w.grad]
    same(fn)


def test_in_place_keeps_retain_grad():
    def fn(m):
        x = leaf(m, [1., 2.])
        y = x * 2
        y.retain_grad()
        y.mul_(3)
        (y * y).sum().backward()
        return [y.grad, x.grad]
    same(fn)


def test_in_place_on_tensor_not_requiring_grad_with_grad_operand():
    def fn(m):
        w = leaf(m, [1., 2.])
        d = m.zeros(2)
        d.add_(w * 2)
        res = [d.requires_grad, name(d), next_names(d), d.is_leaf]
        d.sum().backward()
        return res + [w.grad]
    same(fn)


# ---------------------------------------------------------------------------
# in place through views: CopySlices on the base
# ---------------------------------------------------------------------------
VIEW_WRITES = {
    "select_mul_": lambda y, w: y[0].mul_(2),
    "slice_add_tensor": lambda y, w: y[:, 1:].add_(w[:, :2]),
    "column_iadd": lambda y, w: y[:, 1].__iadd__(w[0]),
    "transpose_add_": lambda y, w: y.t().add_(w.t()),
    "view_zero_": lambda y, w: y.view(-1)[2:4].zero_(),
    "setitem_int": lambda y, w: y.__setitem__(1, w[0] * 3),
    "setitem_slice_scalar": lambda y, w: y.__setitem__((slice(None), 0), 0.0),
    "setitem_step": lambda y, w: y.__setitem__((0, slice(None, None, 2)), w[1, :2]),
    "setitem_advanced": lambda y, w: y.__setitem__(tracegrad.tensor([1, 0]) if isinstance(y, tracegrad.Tensor)
                                                   else torch.tensor([1, 0]), w),
    "setitem_mask": lambda y, w: y.__setitem__(y > 0, 0.0),
    "setitem_mask_tensor": lambda y, w: y.__setitem__(y > 0, w[y > 0] * 2),
    "view_of_view_sigmoid_": lambda y, w: y[1][1:].sigmoid_(),
    "diagonal_mul_": lambda y, w: y.diagonal().mul_(w[0, :2]),
    "unsqueeze_copy_": lambda y, w: y.unsqueeze(0)[0, 1].copy_(w[1] * w[0]),
}


@pytest.mark.parametrize("op", sorted(VIEW_WRITES))
def test_write_through_view_of_non_leaf(op):
    def fn(m):
        x = leaf(m, [[0.5, -1.5, 2.0], [-0.25, 0.75, -2.5]])
        w = leaf(m, [[1.0, 2.0, -1.0], [0.5, -0.5, 3.0]])
        y = x * 1.0
        VIEW_WRITES[op](y, w)
        res = [name(y), y._version, y.requires_grad]
        ((y + 1) ** 2).mean().backward()
        return res + [y, x.grad, w.grad]
    same(fn)


def test_copy_slices_graph_names():
    def fn(m):
        x = leaf(m, [1., 2., 3.])
        w = leaf(m, [4., 5.])
        y = x * 1
        v = y[:2]
        v.mul_(w)
        return [name(y), next_names(y), name(v), next_names(v), y.grad_fn.name(), str(y)]
    same(fn)


def test_setitem_into_plain_tensor_with_grad_value():
    def fn(m):
        w = leaf(m, [1., 2.])
        b = m.zeros(4)
        b[1:3] = w * 2
        b[0] = w[1]
        res = [name(b), next_names(b), b.requires_grad, b.is_leaf]
        (b * m.arange(4.)).sum().backward()
        return res + [w.grad]
    same(fn)


def test_backward_twice_through_copy_slices():
    def fn(m):
        x = leaf(m, [1., 2., 3.])
        y = x * 1
        y[:2].mul_(y[1:].detach() + x[1:])  # mul_ saves both operands
        s = y.sum()
        s.backward()
        s.backward()
    raises_same(fn)


def test_expanded_tensor_write_raises():
    raises_same(lambda m: m.zeros(3).expand(2, 3).add_(1))


def test_out_argument_with_grad_raises():
    raises_same(lambda m: m.add(leaf(m, [1.]), 1, out=m.zeros(1)))


def test_in_place_then_backward_twice_with_retain_graph():
    def fn(m):
        x = leaf(m, [0.3, 0.6])
        y = x.sigmoid()
        y.mul_(x)
        y[0] = y[1] * 2
        s = (y ** 2).sum()
        s.backward(retain_graph=True)
        s.backward()
        return x.grad
    same(fn)


# ---------------------------------------------------------------------------
# hypothesis: a random sequence of in-place writes into views of a non-leaf
# ---------------------------------------------------------------------------
_VIEWS = {
    "row": lambda y: y[1], "col": lambda y: y[:, 2], "block": lambda y: y[1:, :2], "t": lambda y: y.t(),
    "flat": lambda y: y.view(-1)[3:7], "whole": lambda y: y,
}
_WRITES = {
    "mul_w": lambda v, w: v.mul_(w.reshape(-1)[:v.numel()].reshape(v.shape)),
    "add_1": lambda v, w: v.add_(1.0), "exp_": lambda v, w: v.exp_(), "tanh_": lambda v, w: v.tanh_(),
    "copy_w": lambda v, w: v.copy_(w.reshape(-1)[:v.numel()].reshape(v.shape) * 0.5),
}


@settings(deadline=None)  # number of examples: the conftest profile (25 in CI)
@given(steps=st.lists(st.tuples(st.sampled_from(sorted(_VIEWS)), st.sampled_from(sorted(_WRITES))),
                      min_size=1, max_size=4))
def test_hypothesis_in_place_through_views(steps):
    def fn(m):
        x = leaf(m, [[0.1, -0.2, 0.3, 0.4], [0.5, -0.6, 0.7, -0.8], [0.9, 0.15, -0.25, 0.35]])
        w = leaf(m, [[0.2, 0.4, -0.6, 0.8], [1.0, -1.2, 0.3, 0.5], [0.7, 0.9, -0.1, 0.6]])
        y = x * 1.0
        for view, write in steps:
            _WRITES[write](_VIEWS[view](y), w)
        ((y + 1) ** 2).mean().backward()
        return [y, x.grad, w.grad, name(y)]
    same(fn)

"""Errors against torch: the same exception type, and torch's key phrase in the message.

Each case runs in both libraries; torch must raise (so a case that stops raising in a new torch shows up
here), and we must raise the same builtin exception type whose message contains the key phrase. By default
the key phrase is torch's whole message (with `torch.` written `tracegrad.`); a case may name a shorter
phrase where torch's message carries C++ details. A hypothesis test then throws random bad arguments at many
ops and requires that no NumPy exception ever escapes.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

import tracegrad
from util import LAYOUTS, check_op, make_pair, run_both

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

# name -> (fn(L), key phrase or None for torch's whole message)
CASES = {
    # broadcasting and shapes
    "broadcast_add": (lambda L: L.ones(3) + L.ones(4), None),
    "broadcast_mul_2d": (lambda L: L.ones(2, 4) * L.ones(5), None),
    "broadcast_where": (lambda L: L.where(L.ones(3, dtype=L.bool), L.ones(2), 0.0), None),
    "broadcast_inplace": (lambda L: L.ones(3).add_(L.ones(2, 3)), None),
    "broadcast_tensors": (lambda L: L.broadcast_tensors(L.ones(2), L.ones(3)), None),
    "view_incompatible": (lambda L: L.ones(4, 6)[:, :3].view(12), None),
    "view_transposed": (lambda L: L.ones(2, 3).t().view(6), None),
    "view_bad_size": (lambda L: L.ones(6).view(2, 4), None),
    "reshape_bad_size": (lambda L: L.ones(6).reshape(4, -1), None),
    "view_two_infer": (lambda L: L.ones(6).view(-1, -1), None),
    "view_negative": (lambda L: L.ones(6).view(-2, 3), None),
    "t_3d": (lambda L: L.ones(2, 3, 4).t(), None),
    "expand_mismatch": (lambda L: L.ones(3).expand(2, 4), None),
    "expand_fewer_dims": (lambda L: L.ones(2, 3).expand(3), "the number of sizes provided (1) must be greater or equal"),
    "permute_wrong_len": (lambda L: L.ones(2, 3).permute(0), "number of dimensions in the tensor input does not match"),
    "permute_dup": (lambda L: L.ones(2, 3).permute(0, 0), "duplicate dims are not allowed"),
    "cat_mismatch": (lambda L: L.cat([L.ones(2, 3), L.ones(2, 4)]), None),
    "cat_ndim": (lambda L: L.cat([L.ones(2, 3), L.ones(3)]), None),
    "cat_empty_list": (lambda L: L.cat([]), "expected a non-empty list of Tensors"),
    "stack_mismatch": (lambda L: L.stack([L.ones(2), L.ones(3)]), None),
    "split_sizes": (lambda L: L.ones(5).split([2, 2]), None),
    "chunk_zero": (lambda L: L.ones(5).chunk(0), None),
    "narrow_out": (lambda L: L.ones(5).narrow(0, 3, 4), None),
    "unflatten_bad": (lambda L: L.ones(6).unflatten(0, (4, 2)), None),
    "flatten_order": (lambda L: L.ones(2, 3, 4).flatten(2, 1), None),
    "repeat_fewer": (lambda L: L.ones(2, 3).repeat(2), None),
    "squeeze_out_of_range": (lambda L: L.ones(2).squeeze(3), None),
    # dims and indices out of range
    "dim_sum": (lambda L: L.ones(2, 3).sum(2), None),
    "dim_neg": (lambda L: L.ones(2, 3).softmax(-3) if hasattr(L.ones(1), "softmax") else L.ones(2, 3).sum(-3), None),
    "dim_transpose": (lambda L: L.ones(2, 3).transpose(0, 5), None),
    "dim_unsqueeze": (lambda L: L.ones(2, 3).unsqueeze(4), None),
    "dim_cat": (lambda L: L.cat([L.ones(2), L.ones(2)], 1), None),
    "dim_size": (lambda L: L.ones(2).size(1), None),
    "dim_0d": (lambda L: L.tensor(1.0).sum(1), None),
    "dim_max": (lambda L: L.ones(3).max(1), None),
    "dim_argmax": (lambda L: L.ones(3).argmax(2), None),
    "dim_duplicate": (lambda L: L.ones(2, 3).sum((0, 0)), None),
    "index_int": (lambda L: L.ones(3)[3], None),
    "index_neg": (lambda L: L.ones(3, 2)[:, -3], None),
    "index_too_many": (lambda L: L.ones(3)[0, 0], None),
    "index_0d": (lambda L: L.tensor(1.0)[0], None),
    "index_tensor_oob": (lambda L: L.ones(3)[L.tensor([0, 5])], "index 5 is out of bounds for dimension 0 with size 3"),
    "index_list_oob": (lambda L: L.ones(3)[[1, -4]], "index -4 is out of bounds for dimension 0 with size 3"),
    "index_float_tensor": (lambda L: L.ones(3)[L.tensor([0.0])], None),
    "index_mask_shape": (lambda L: L.ones(3, 2)[L.tensor([True, False])], None),
    "index_broadcast": (lambda L: L.ones(3, 3)[L.tensor([0, 1]), L.tensor([0, 1, 2])], None),
    "index_select_oob": (lambda L: L.ones(3).index_select(0, L.tensor([3])), None),
    "index_select_dtype": (lambda L: L.ones(3).index_select(0, L.tensor([0.0])), None),
    "gather_dtype": (lambda L: L.ones(3).gather(0, L.tensor([0], dtype=L.int16)), None),
    "gather_oob": (lambda L: L.ones(3).gather(0, L.tensor([4])), "out of bounds"),
    "scatter_dtype": (lambda L: L.ones(3).scatter(0, L.tensor([0]), L.ones(1, dtype=L.float64)), None),
    "setitem_shape": (lambda L: L.ones(3, 2).__setitem__(L.tensor([0, 1]), L.ones(3)), None),
    "select_oob": (lambda L: L.ones(3).select(0, 3), None),
    # dtype misuse
    "mean_int": (lambda L: L.ones(3, dtype=L.int64).mean(), None),
    "mean_bool": (lambda L: L.ones(3, dtype=L.bool).mean(), None),
    "std_int": (lambda L: L.ones(3, dtype=L.int32).std(), None),
    "norm_int": (lambda L: L.ones(3, dtype=L.int64).norm(), None),
    "inplace_lower_category": (lambda L: L.ones(3, dtype=L.int64).add_(1.5), None),
    "inplace_float_to_bool": (lambda L: L.ones(3, dtype=L.bool).mul_(L.ones(3)), None),
    "out_lower_category": (lambda L: L.add(L.ones(2), L.ones(2), out=L.zeros(2, dtype=L.int64)), None),
    "requires_grad_int": (lambda L: L.ones(3, dtype=L.int64).requires_grad_(), None),
    "requires_grad_factory": (lambda L: L.ones(3, dtype=L.int64, requires_grad=True), None),
    "neg_bool": (lambda L: -L.ones(3, dtype=L.bool), None),
    "sub_bool": (lambda L: L.ones(3, dtype=L.bool) - L.ones(3, dtype=L.bool), None),
    "bitwise_float": (lambda L: L.ones(3) & L.ones(3), None),
    "invert_float": (lambda L: ~L.ones(3), None),
    "int_neg_pow": (lambda L: L.ones(3, dtype=L.int64) ** -1, None),
    "int_div_zero": (lambda L: L.ones(3, dtype=L.int64) // 0, None),
    "int_mod_zero": (lambda L: L.ones(3, dtype=L.int64) % 0, None),
    "where_cond_dtype": (lambda L: L.where(L.ones(2), L.ones(2), L.ones(2)), None),
    "masked_fill_mask_dtype": (lambda L: L.ones(2).masked_fill(L.ones(2), 0.0), None),
    "default_dtype_int": (lambda L: L.set_default_dtype(L.int32), None),
    "set_default_dtype_back": (lambda L: L.ones(1).new_zeros(2).to(L.float32).requires_grad_().numpy(), None),
    "numpy_bf16": (lambda L: L.ones(2, dtype=L.bfloat16).numpy(), None),
    "from_numpy_type": (lambda L: L.from_numpy(np.array(["a"])), "can't convert np.ndarray of type"),
    "from_numpy_list": (lambda L: L.from_numpy([1, 2]), None),
    "lerp_int": (lambda L: L.lerp(L.ones(2, dtype=L.int64), L.ones(2, dtype=L.int64), 0.5), None),
    # matrix shapes
    "mm_shapes": (lambda L: L.ones(2, 3).mm(L.ones(4, 5)), None),
    "matmul_shapes": (lambda L: L.ones(2, 3) @ L.ones(4, 5), None),
    "matmul_batch": (lambda L: L.ones(2, 2, 3) @ L.ones(3, 4, 5), None),
    "matmul_vec": (lambda L: L.ones(2, 3) @ L.ones(4), None),
    "matmul_0d": (lambda L: L.tensor(1.0) @ L.ones(2), None),
    "mm_dtype": (lambda L: L.ones(2, 3).mm(L.ones(3, 2, dtype=L.float64)), None),
    "mm_not_matrix": (lambda L: L.ones(3).mm(L.ones(3, 2)), None),
    "bmm_shapes": (lambda L: L.bmm(L.ones(2, 3, 4), L.ones(3, 4, 5)), None),
    "bmm_not_3d": (lambda L: L.bmm(L.ones(3, 4), L.ones(4, 5)), None),
    "dot_sizes": (lambda L: L.dot(L.ones(3), L.ones(4)), None),
    "dot_2d": (lambda L: L.dot(L.ones(3, 1), L.ones(3)), None),
    "mv_sizes": (lambda L: L.mv(L.ones(3, 4), L.ones(5)), None),
    "addmm_bias": (lambda L: L.addmm(L.ones(4), L.ones(2, 3), L.ones(3, 5)), None),
    # conversions
    "item_many": (lambda L: L.ones(2).item(), None),
    "item_empty": (lambda L: L.ones(0).item(), None),
    "bool_many": (lambda L: bool(L.ones(2)), None),
    "float_many": (lambda L: float(L.ones(2)), None),
    "int_many": (lambda L: int(L.ones(3)), None),
    "index_float": (lambda L: [1, 2][L.tensor(1.0)], None),
    "len_0d": (lambda L: len(L.tensor(1.0)), None),
    "iter_0d": (lambda L: iter(L.tensor(1.0)), None),
    "numpy_requires_grad": (lambda L: L.ones(2, requires_grad=True).numpy(), None),
    "leaf_inplace": (lambda L: L.ones(2, requires_grad=True).add_(1), None),
    "expanded_write": (lambda L: L.ones(3, 1).expand(3, 4).add_(1), None),
    "backward_non_scalar": (lambda L: (L.ones(2, requires_grad=True) * 2).backward(), None),
    "invalid_device": (lambda L: L.ones(2, device="tpu"), "Expected one of cpu, cuda"),
    "rounding_mode": (lambda L: L.div(L.ones(2), 2, rounding_mode="round"), None),
    "clamp_nothing": (lambda L: L.clamp(L.ones(2)), None),
    "fill_non_0d": (lambda L: L.ones(2).fill_(L.ones(2)), None),
    "randint_bounds": (lambda L: L.randint(3, 3, (2,)), None),
    "arange_step_zero": (lambda L: L.arange(0, 3, 0), None),
    "arange_sign": (lambda L: L.arange(3, 0), None),
    "negative_dim_factory": (lambda L: L.zeros(2, -1), None),
    "full_overflow": (lambda L: L.full((2,), 256, dtype=L.uint8), None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_error(name):
    fn, phrase = CASES[name]
    try:
        fn(torch)
    except Exception as e:
        texc = e
    else:
        pytest.fail(f"torch no longer raises for {name}: update the case")
    want = phrase if phrase is not None else str(texc).replace("torch.", "tracegrad.").split("\n")[0]
    # torch appends C++ source locations to some messages; those are not part of the phrase
    want = re.sub(r" \(Triggered internally at .*\)$", "", want).strip()
    base = next(c for c in type(texc).__mro__ if c.__module__ == "builtins")
    with pytest.raises(base) as got:
        fn(tracegrad)
    assert type(got.value).__module__ == "builtins", f"a {type(got.value)} escaped"
    assert want in str(got.value).replace("torch.", "tracegrad."), \
        f"\n  case: {name}\n  torch: {type(texc).__name__}: {texc}\n  ours:  {type(got.value).__name__}: {got.value}"


# ---- no NumPy exception ever escapes ------------------------------------------------------------
FUZZ_OPS = {
    "add": lambda L, a, b, d: a + b, "mul": lambda L, a, b, d: L.mul(a, b), "div": lambda L, a, b, d: a / b,
    "floordiv": lambda L, a, b, d: a // b, "pow": lambda L, a, b, d: a ** b, "eq": lambda L, a, b, d: a == b,
    "bitand": lambda L, a, b, d: a & b, "maximum": lambda L, a, b, d: L.maximum(a, b),
    # (matmul-family cases use one dtype: torch skips its dtype check on empty operands, a quirk we do not copy)
    "where": lambda L, a, b, d: L.where(a > 0, a, b), "matmul": lambda L, a, b, d: a @ b.to(a.dtype),
    "cat": lambda L, a, b, d: L.cat([a, b], d), "stack": lambda L, a, b, d: L.stack([a, b], d),
    "sum": lambda L, a, b, d: a.sum(d), "mean": lambda L, a, b, d: a.mean(d), "max": lambda L, a, b, d: a.max(d),
    "argmax": lambda L, a, b, d: a.argmax(d), "softmax_like": lambda L, a, b, d: a.logsumexp(d),
    "cumsum": lambda L, a, b, d: a.cumsum(d), "std": lambda L, a, b, d: a.std(d),
    "transpose": lambda L, a, b, d: a.transpose(d, 0), "unsqueeze": lambda L, a, b, d: a.unsqueeze(d),
    "squeeze": lambda L, a, b, d: a.squeeze(d), "select": lambda L, a, b, d: a.select(d, 1),
    "narrow": lambda L, a, b, d: a.narrow(d, 1, 2), "flip": lambda L, a, b, d: a.flip(d),
    "view": lambda L, a, b, d: a.view(d, -1), "reshape": lambda L, a, b, d: a.reshape(-1, d),
    # (sizes below -1: torch builds tensors of negative size or overflows; not something to copy)
    "expand": lambda L, a, b, d: a.expand(max(d, -1), *a.shape), "index_int": lambda L, a, b, d: a[d],
    "index_tensor": lambda L, a, b, d: a[L.tensor([d, 0])], "gather": lambda L, a, b, d: a.gather(0, b.long()),
    "index_select": lambda L, a, b, d: a.index_select(0, L.tensor([d])), "masked_fill": lambda L, a, b, d: a.masked_fill(b > 0, d),
    "setitem": lambda L, a, b, d: a.clone().__setitem__(d, b), "copy_": lambda L, a, b, d: a.clone().copy_(b),
    "add_": lambda L, a, b, d: a.clone().add_(b), "chunk": lambda L, a, b, d: a.chunk(d),
    "split": lambda L, a, b, d: a.split(d), "repeat": lambda L, a, b, d: a.repeat(d),
    "item": lambda L, a, b, d: a.item(), "dot": lambda L, a, b, d: L.dot(a, b.to(a.dtype)), "mm": lambda L, a, b, d: L.mm(a, b.to(a.dtype)),
    "clamp": lambda L, a, b, d: a.clamp(min=d), "remainder": lambda L, a, b, d: a % b, "norm": lambda L, a, b, d: a.norm(dim=d),
}


@given(op=st.sampled_from(sorted(FUZZ_OPS)), sa=st.lists(st.integers(0, 3), max_size=3).map(tuple),
       sb=st.lists(st.integers(0, 3), max_size=3).map(tuple),
       da=st.sampled_from(["float32", "int64", "bool", "float16", "bfloat16", "uint8"]),
       db=st.sampled_from(["float32", "int64", "bool", "float64", "int8"]), d=st.integers(-4, 4),
       la=st.sampled_from(sorted(LAYOUTS)), seed=st.integers(0, 2 ** 31))
def test_no_numpy_errors_escape(op, sa, sb, da, db, d, la, seed):
    """Random (often invalid) arguments: we fail exactly when torch fails, with its builtin exception type,
    and otherwise agree with torch's result."""
    rng = np.random.default_rng(seed)
    a = make_pair(sa, da, la, rng)
    b = make_pair(sb, db, "contig", rng)
    check_op(op, FUZZ_OPS[op], [a, b, d], seed=seed, strides="contiguous", la=la)

"""The adapter that runs generated kernels under Triton's interpreter on NumPy memory."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import triton
from triton import knobs
from tracegrad import dtypes as D
from tracegrad.kernels.triton import KernelSpec, Load, Step, Store, render
from tracegrad.kernels.triton.interpret import LIBDEVICE, NumpyBuffer, _round_tf32, run, storage_of
from tracegrad.kernels.triton.launch import interpret_mode, load


def test_buffer_is_tensor_like_for_triton():
    a = np.arange(12, dtype=np.float32)
    b = NumpyBuffer(a)
    assert b.data_ptr() == a.ctypes.data
    assert str(b.dtype).rsplit(".", 1)[-1] == "float32"  # how Triton reads a pointer's element type
    assert b.untyped_storage().data_ptr() == a.ctypes.data and b.cpu() is b
    view = b.new_empty(0).set_(b.untyped_storage(), 3, (9,), (1,))
    assert view.data_ptr() == a.ctypes.data + 3 * 4


def test_buffer_rejects_views_and_mismatched_dtypes():
    with pytest.raises(ValueError, match="1-D"):
        NumpyBuffer(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="1-D"):
        NumpyBuffer(np.zeros(8, np.float32)[::2])
    with pytest.raises(TypeError, match="bfloat16"):
        NumpyBuffer(np.zeros(4, np.float32), D.bfloat16)


def test_storage_of_describes_a_view_inside_its_storage():
    base = np.arange(60, dtype=np.float64).reshape(6, 10)
    view = base[1:5, ::3].T
    flat, shape, strides, offset = storage_of(view)
    assert flat.shape == (60,) and flat.ctypes.data == base.ctypes.data
    rebuilt = np.lib.stride_tricks.as_strided(flat[offset:], shape, [s * 8 for s in strides])
    assert np.array_equal(rebuilt, view)


def test_kernel_writes_a_view_in_place_and_nothing_else(rng):
    """exp(x) into the transposed interior of a bigger storage: the rest stays as it was."""
    x = rng.standard_normal((5, 4)).astype(np.float32)
    storage = np.full(40, -1.0, np.float32)
    target = storage.reshape(8, 5)[2:6, :].T  # (5, 4) view, strides (1, 5), offset 10
    _, shape, strides, offset = storage_of(target)
    spec = KernelSpec("into_view", (5, 4), [Load("x", "float32")], [Step("y", "exp", ("x",))],
                      [Store("out", "y", shape=shape, strides=strides, offset=offset)])
    run(spec, {"x": x.reshape(-1), "out": storage})
    torch.testing.assert_close(torch.from_numpy(target.copy()), torch.exp(torch.from_numpy(x)))
    untouched = np.ones(40, bool)
    untouched[10:30] = False
    assert (storage[untouched] == -1.0).all()


def test_interpreter_is_switched_on_only_where_asked():
    """One process both interprets and compiles: the knob is scoped to each use."""
    spec = KernelSpec("modes", (16,), [Load("x", "float32")], [Step("y", "neg", ("x",))], [Store("o", "y")])
    src = render(spec)
    before = knobs.runtime.interpret
    assert type(load(src, interpret=True)).__name__ == "InterpretedFunction"
    assert isinstance(load(src, interpret=False), triton.runtime.jit.JITFunction)
    with interpret_mode(True):
        assert knobs.runtime.interpret
    assert knobs.runtime.interpret == before


def test_libdevice_stand_in_names_what_it_lacks():
    with pytest.raises(AttributeError, match="no NumPy stand-in"):
        LIBDEVICE.j0


def test_tf32_rounding_keeps_ten_mantissa_bits(rng):
    x = rng.standard_normal(1000).astype(np.float32) * 100
    r = _round_tf32(x)
    assert (r.view(np.uint32) & 0x1FFF == 0).all()
    assert (np.abs(r - x) <= np.abs(x) * 2.0 ** -11).all()
    assert np.isnan(_round_tf32(np.array([np.nan], np.float32)))[0]

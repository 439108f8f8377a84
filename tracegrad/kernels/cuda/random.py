"""Random numbers drawn on the device, with Philox 4x32-10 as torch's CUDA generator draws them.

The host draws from NumPy's generator; the device has its own stream of numbers,
as torch's CUDA generator is separate from its CPU one (the same seed gives other
numbers on the two devices, in torch too). Its state is two integers:

    seed     set by tracegrad.manual_seed / tracegrad.cuda.manual_seed
    stream   how many draws were made since: each draw takes the next stream

A draw is one pointwise kernel: element e of the draw gets Philox of the counter
(e, stream) under the seed (see render.py), so no state lives on the device and
a draw is the same numbers whatever the launch grid. The (seed, stream) pair
reaches the kernel as a 16-byte buffer copied over per draw.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ... import dtypes as D
from ..triton.spec import KernelSpec, Load, Step, Store
from . import eager
from .array import DeviceArray

DEFAULT_SEED = 67280421310721  # torch's default seed for its CUDA generator
_STATE = [DEFAULT_SEED, 0]  # seed, draws made


def manual_seed(seed: int) -> None:
    """Restart the device's stream of numbers from `seed`."""
    _STATE[0], _STATE[1] = int(seed) & 0xFFFFFFFFFFFFFFFF, 0


def initial_seed() -> int:
    return _STATE[0]


def get_state() -> bytes:
    """The 16 bytes of the state, seed then draws made (torch's CUDA state is seed then offset)."""
    return np.array(_STATE, np.uint64).tobytes()


def set_state(state: bytes) -> None:
    if len(state) != 16:
        raise RuntimeError(f"Expected a CUDA generator state of size 16 but found the input RNG state size "
                           f"to be {len(state)}")
    _STATE[0], _STATE[1] = (int(v) for v in np.frombuffer(state, np.uint64))


def _state_loads() -> tuple[list[Load], dict]:
    """Loads of this draw's seed and stream (0-d int64 views of one small buffer); advances the stream."""
    seed = np.uint64(_STATE[0]).view(np.int64)
    buf = eager.from_host(np.array([seed, _STATE[1]], np.int64), D.int64)
    _STATE[1] += 1
    arrays = {"seed": DeviceArray(buf.buffer, (), (), 0, D.int64),
              "stream": DeviceArray(buf.buffer, (), (), 1, D.int64)}
    return [Load("seed", D.int64, (), ()), Load("stream", D.int64, (), (), 1)], arrays


def _draw(name: str, op: str, shape: Sequence[int], dtype: D.DType, then: Sequence[Step] = (),
          value: str = "u") -> DeviceArray:
    out = eager.empty(tuple(shape), dtype)
    if out.size == 0:
        return out
    loads, arrays = _state_loads()
    ct = D.float64 if dtype is D.float64 else D.float32
    dt = ct if then else dtype  # (a draw stored as is is drawn for its own dtype's precision)
    body = [Step("u", op, ("seed", "stream"), {"dtype": dt}, dt), *then]
    arrays["out"] = out
    spec = KernelSpec(name, out.shape, tuple(loads), tuple(body), (Store("out", value, dtype, out.shape,
                                                                         out.estrides),))
    eager._launch(spec, arrays)
    return out


def uniform(shape: Sequence[int], dtype: D.DType) -> DeviceArray:
    """U[0, 1) samples (tracegrad.rand on the device)."""
    return _draw("rand", "rand_uniform", shape, dtype)


def normal(shape: Sequence[int], dtype: D.DType) -> DeviceArray:
    """N(0, 1) samples (tracegrad.randn on the device)."""
    return _draw("randn", "rand_normal", shape, dtype)


def dropout_mask(shape: Sequence[int], p: float, dtype: D.DType) -> DeviceArray:
    """1/(1-p) where a uniform sample is >= p, else 0: what dropout multiplies its input by."""
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    ct = D.float64 if dtype is D.float64 else D.float32
    then = [Step("keep", "ge", ("u", float(p)), {}, D.bool_), Step("k", "to_copy", ("keep",), {"dtype": ct}, ct),
            Step("m", "mul", ("k", scale), {}, ct)]
    return _draw("dropout_mask", "rand_uniform", shape, dtype, then, "m")

"""From generated source to a callable kernel, and launching it.

`load(source)` executes the source text as a fresh module and returns its kernel:
a `triton.JITFunction` for the GPU, or Triton's interpreted function when
`interpret=True` (Triton's interpreter runs the same source with NumPy on the
CPU; see interpret.py). The text is registered with `linecache` under a
`<tracegrad-kernel ...>` file name, because Triton reads a kernel's source back
with `inspect`, and tracebacks then show the generated lines.

`launch(source, buffers)` calls it on the grid the renderer chose, passing one
tensor-like object (anything with `data_ptr()` and a `dtype`) per parameter.
"""
from __future__ import annotations

import contextlib
import hashlib
import linecache
from typing import Any, Iterator, Mapping

from .render import KernelSource

_LOADED: dict[tuple[str, bool], Any] = {}


@contextlib.contextmanager
def interpret_mode(on: bool) -> Iterator[None]:
    """Switch Triton's interpreter on or off (its `TRITON_INTERPRET` knob) for a block.

    Triton reads the knob when `@triton.jit` runs (choosing the interpreted
    function) and while an interpreted kernel runs, so both happen inside."""
    from triton import knobs

    with knobs.runtime.scope():
        knobs.runtime.interpret = on
        yield


def filename(source: KernelSource) -> str:
    digest = hashlib.sha256(source.text.encode()).hexdigest()[:12]
    return f"<tracegrad-kernel {source.name} {digest}>"


def load(source: KernelSource, interpret: bool = False):
    """The kernel function defined by `source` (cached per text and mode)."""
    key = (source.text, interpret)
    fn = _LOADED.get(key)
    if fn is not None:
        return fn
    fname = filename(source)
    lines = source.text.splitlines(True)
    linecache.cache[fname] = (len(source.text), None, lines, fname)
    namespace: dict[str, Any] = {"__name__": "tracegrad_kernel_" + source.name, "__file__": fname}
    with interpret_mode(interpret):
        exec(compile(source.text, fname, "exec"), namespace)
    if interpret:
        from .interpret import LIBDEVICE, REDUCERS

        # libdevice calls and tree reductions become NumPy calls (see interpret.py)
        namespace["libdevice"] = LIBDEVICE
        namespace.update({k: v for k, v in REDUCERS.items() if k in namespace})
    fn = namespace[source.name]
    _LOADED[key] = fn
    return fn


def arguments(source: KernelSource, buffers: Mapping[str, Any]) -> list:
    """The pointer arguments in signature order, looked up by buffer name."""
    missing = [p.buffer for p in source.params if p.buffer not in buffers]
    if missing:
        raise KeyError(f"kernel {source.name} needs buffers {missing}")
    return [buffers[p.buffer] for p in source.params]


def launch(source: KernelSource, buffers: Mapping[str, Any], *, interpret: bool = False) -> None:
    """Run the kernel once over its grid on `buffers` (name -> tensor-like)."""
    if source.grid[0] * source.grid[1] * source.grid[2] == 0:
        return  # an empty tensor: nothing to do, and Triton rejects empty grids
    fn = load(source, interpret)
    args = arguments(source, buffers)
    # FMA contraction on, as nvcc compiles torch's own kernels (said explicitly: Triton warns otherwise)
    opts = {"num_warps": source.num_warps, "num_stages": source.num_stages, "enable_fp_fusion": True}
    with interpret_mode(interpret):
        fn[source.grid](*args, **source.constexprs, **opts)

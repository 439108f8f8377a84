"""Every op of the op table has a device path: a CUDA tensor never reaches the host fallback by design.

The dispatcher (kernels/cuda/eager.py, `_run`) sends an op to the device when it is a view, a
pointwise or reduction op with a Triton lowering, one of the ops it launches by name (copies,
matmul), or an op with a handler (composite, movement, conv, gather, scan). An op added to the
table without any of those would quietly run on the host for CUDA tensors; this test names it.
"""
from __future__ import annotations

import tracegrad  # noqa: F401  (registers every op of the table)
from tracegrad.kernels.cuda import eager
from tracegrad.ops.table import OPS

BY_NAME = {"clone", "contiguous", "matmul", "linear", "addmm", "linear_backward"}
# launched elsewhere: copy_ by eager's own copy path, random draws by kernels/cuda/random.py
ELSEWHERE = {"copy", "rand_uniform", "rand_normal"}


def test_every_op_of_the_table_has_a_device_path():
    handlers = eager._composite()
    missing = sorted(name for name, op in OPS.items()
                     if not (op.kind == "view" or (op.kind in ("pointwise", "reduce") and op.lowering is not None)
                             or name in BY_NAME or name in handlers or name in ELSEWHERE))
    assert not missing, f"ops with no device kernel (CUDA tensors would go to the host): {missing}"

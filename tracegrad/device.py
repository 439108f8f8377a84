"""`tracegrad.device`: where a tensor lives. Only the CPU runs without the GPU extra."""
from __future__ import annotations

NO_CUDA = (
    "Found no NVIDIA driver on your system: no CUDA device or driver was found, so "
    "device='cuda' cannot be used here. On a machine with an NVIDIA GPU, install the GPU "
    "extra (pip install 'tracegrad[gpu]') to run tensors through Triton kernels."
)


class OnDevice(RuntimeError):
    """NumPy code touched a tensor whose memory is on a device (a CUDA tensor's `_data`).

    The CPU paths never check where a tensor lives: they run NumPy on `_data`,
    and a device array raises this from any NumPy use. `dispatch.apply` catches
    it and hands the op to the device dispatcher, so a CPU op pays nothing for
    the check. Seen by a user, it names code that has no device path yet."""


class device:
    __slots__ = ("type", "index")

    def __init__(self, type: "str | device", index: int | None = None):
        if isinstance(type, device):
            self.type, self.index = type.type, type.index
            return
        if not isinstance(type, str):
            raise TypeError(f"device() received an invalid combination of arguments - got ({type.__class__.__name__})")
        if ":" in type:
            type, idx = type.split(":", 1)
            if not idx.isdigit():
                raise RuntimeError(f"Invalid device string: '{type}:{idx}'")
            index = int(idx)
        if type not in ("cpu", "cuda", "meta"):
            raise RuntimeError(
                "Expected one of cpu, cuda, meta device type at start of device string: " + type
            )
        self.type, self.index = type, index

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and self.type == other.type and self.index == other.index

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"


CPU = device("cpu")
CUDA0 = device("cuda", 0)


def check_device(d) -> device:
    """Turn a device argument into a device, refusing CUDA when no GPU backend is present."""
    if d is None:
        return CPU
    if not isinstance(d, device):
        if isinstance(d, int):
            d = device("cuda", d)
        else:
            d = device(d)
    if d.type == "cuda":
        from .kernels import cuda as kc

        if not kc.available():
            raise RuntimeError(NO_CUDA)
        if d.index not in (None, 0):
            raise RuntimeError(f"CUDA error: invalid device ordinal (device {d.index} of 1)")
        return CUDA0
    if d.type == "meta":
        raise RuntimeError("the meta device is only used inside the tracer")
    return CPU

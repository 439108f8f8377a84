"""`tracegrad.cuda`: queries that answer honestly on a machine without a GPU.

is_available() and device_count() ask the CUDA driver (through cuda-bindings,
imported only here and only when asked); without the bindings, a driver or a
device they answer False and 0, and never raise. With the simulated device
switched on (TRACEGRAD_SIMULATE_CUDA=1, see kernels/cuda/simulate.py) they
answer as a one-GPU machine would.

The memory counters read the runtime's caching allocator, as torch's read its
own: bytes in blocks handed to tensors (rounded to the allocator's size classes),
and the peak of that since the start or the last reset."""
from __future__ import annotations


def _runtime_if_started():
    from .kernels.cuda import _RUNTIME

    return _RUNTIME[0] if _RUNTIME else None


def is_available() -> bool:
    from .kernels.cuda import available

    return available()


def device_count() -> int:
    from .kernels.cuda import driver, simulate

    if simulate.enabled():
        return 1
    return driver.device_count()


def synchronize() -> None:
    """Wait for every kernel and copy queued on the device to finish."""
    from .kernels.cuda import runtime

    runtime().driver.synchronize()


def memory_allocated() -> int:
    """Bytes of device memory held by tensors now."""
    rt = _runtime_if_started()
    return rt.allocator.allocated if rt is not None else 0


def max_memory_allocated() -> int:
    """The most bytes of device memory tensors held at once."""
    rt = _runtime_if_started()
    return rt.allocator.peak_allocated if rt is not None else 0


def memory_reserved() -> int:
    """Bytes held from the driver: in use plus cached for reuse."""
    rt = _runtime_if_started()
    return rt.allocator.reserved if rt is not None else 0


def reset_peak_memory_stats() -> None:
    rt = _runtime_if_started()
    if rt is not None:
        rt.allocator.peak_allocated = rt.allocator.allocated


def empty_cache() -> None:
    """Give cached (free) blocks back to the driver; memory in use stays."""
    rt = _runtime_if_started()
    if rt is not None:
        rt.allocator.empty_cache()


def get_device_name(device=None) -> str:
    from .kernels.cuda import runtime

    return runtime().driver.name()


def manual_seed(seed: int) -> None:
    """Seed the device's random numbers only (tracegrad.manual_seed seeds the host's too)."""
    from .kernels.cuda.random import manual_seed as seed_device

    seed_device(seed)


manual_seed_all = manual_seed  # one device


def initial_seed() -> int:
    from .kernels.cuda.random import initial_seed as device_seed

    return device_seed()


def seed() -> None:
    """Seed the device's random numbers from the operating system's entropy."""
    import numpy as np

    manual_seed(int(np.random.SeedSequence().entropy) & 0xFFFFFFFFFFFFFFFF)


seed_all = seed  # one device


def get_rng_state(device="cuda"):
    """The device generator's state as a uint8 CPU tensor of 16 bytes (its seed, then its offset)."""
    import numpy as np

    from .kernels.cuda.random import get_state
    from .tensor import Tensor
    from . import dtypes as D

    return Tensor._make(np.frombuffer(get_state(), np.uint8).copy(), D.uint8)


def set_rng_state(new_state, device="cuda") -> None:
    """Restore a state that get_rng_state returned: the same numbers are drawn again."""
    from .kernels.cuda.random import set_state
    from . import dtypes as D

    if getattr(new_state, "dtype", None) is not D.uint8:
        raise TypeError("RNG state must be a torch.ByteTensor")
    set_state(new_state.cpu().numpy().tobytes())


def get_rng_state_all() -> list:
    return [get_rng_state()]


def set_rng_state_all(new_states) -> None:
    for state in new_states:
        set_rng_state(state)

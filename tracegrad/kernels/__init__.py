"""`tracegrad.kernels`: the code that runs ops outside the eager NumPy path.

    triton/   fused-kernel codegen: a block-level `KernelSpec` rendered to Triton
              source, run under Triton's interpreter on NumPy memory, compiled ahead
              of time for sm_90, launched on a GPU
    cuda/     the CUDA runtime: driver calls through `cuda-bindings`, a caching allocator

Nothing here is imported by `import tracegrad`: Triton and the CUDA bindings are
optional (the `gpu` extra), so each submodule imports them only when it is used.
"""

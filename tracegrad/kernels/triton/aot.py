"""Ahead-of-time compilation for an H100 (sm_90) on a machine with no GPU.

`triton.compile` needs no device when it is given a target: with
`GPUTarget("cuda", 90, 32)` it runs the whole pipeline (TTIR -> TTGIR -> LLVM IR
-> PTX -> cubin, through the ptxas that ships with Triton). That checks what the
interpreter forgives (types, layouts, shared memory, the libdevice calls), and
the artifacts show how a kernel would run:

    n_regs       registers per thread (ptxas -v): occupancy
    n_spills     bytes spilled to local memory (stores + loads); should be 0
    shared       shared memory per block, bytes (Triton's dynamic + static)
    vector_loads how many global loads are 128-bit (ld.global.v4.b32 / v2.b64)

Register and spill counts come from running that ptxas with `-v` on the PTX,
since the numbers Triton reports are only filled in when a driver loads the cubin.
"""
from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .launch import load
from .render import KernelSource

SM90 = 90
_VECTOR = re.compile(r"ld\.global(\.\w+)*\.(v4\.b32|v4\.f32|v4\.u32|v2\.b64|v2\.f64)")
_CACHE: dict[tuple, "Compiled"] = {}


@dataclass(frozen=True)
class Compiled:
    """One kernel compiled for one target, with its intermediate forms and resource use."""

    name: str
    capability: int
    ttir: str
    ttgir: str
    llir: str
    ptx: str
    cubin: bytes
    n_regs: int
    spill_stores: int
    spill_loads: int
    stack: int
    shared: int
    num_warps: int

    @property
    def n_spills(self) -> int:
        """Bytes moved to and from local memory because registers ran out."""
        return self.spill_stores + self.spill_loads

    def global_loads(self) -> list[str]:
        return [ln.strip() for ln in self.ptx.splitlines() if "ld.global" in ln]

    def vector_loads(self) -> int:
        """Global loads that move 128 bits per thread (4 x 32-bit, 2 x 64-bit or 8 x 16-bit)."""
        return sum(1 for ln in self.global_loads() if _VECTOR.search(ln))

    def summary(self) -> str:
        return (f"{self.name}: sm_{self.capability}, {self.num_warps} warps, {self.n_regs} registers, "
                f"{self.n_spills} spill bytes, {self.shared} B shared, {self.vector_loads()} 128-bit loads")


def compile_for(source: KernelSource, capability: int = SM90) -> Compiled:
    """Compile `source` for CUDA compute capability `capability` (90: H100) without a GPU."""
    # the text is dtype-generic (pointer types come with the signature): both make the key
    key = (source.text, tuple(source.signature().items()), capability)
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = load(source, interpret=False)
    # every pointer is 16-byte aligned: storages come from the caching allocator (512-byte blocks)
    # and offsets are part of the index arithmetic, not of the pointer
    attrs = {(i,): [["tt.divisibility", 16]] for i in range(len(source.params))}
    src = ASTSource(fn=fn, signature=source.signature(), constexprs=dict(source.constexprs), attrs=attrs)
    options = {"num_warps": source.num_warps, "num_stages": source.num_stages, "enable_fp_fusion": True}
    k = triton.compile(src, target=GPUTarget("cuda", capability, 32), options=options)
    asm = k.asm
    info = ptxas_info(asm["ptx"], capability)
    shared = int(getattr(k.metadata, "shared", 0) or 0) + info["smem"]
    out = Compiled(source.name, capability, asm["ttir"], asm["ttgir"], asm["llir"], asm["ptx"], asm["cubin"],
                   info["registers"], info["spill_stores"], info["spill_loads"], info["stack"], shared,
                   source.num_warps)
    _CACHE[key] = out
    return out


def compile_sm90(source: KernelSource) -> Compiled:
    return compile_for(source, SM90)


def ptxas_path(capability: int) -> str:
    """The ptxas Triton itself uses for this capability."""
    try:
        from triton.backends.nvidia.compiler import get_ptxas

        return get_ptxas(capability).path
    except (ImportError, AttributeError):
        from triton import knobs

        return knobs.nvidia.ptxas.path


_INFO = {
    "registers": re.compile(r"Used (\d+) registers"),
    "spill_stores": re.compile(r"(\d+) bytes spill stores"),
    "spill_loads": re.compile(r"(\d+) bytes spill loads"),
    "stack": re.compile(r"(\d+) bytes stack frame"),
    "smem": re.compile(r"(\d+) bytes smem"),
}


def ptxas_info(ptx: str, capability: int = SM90) -> dict[str, int]:
    """Registers, spills, stack and static shared memory, from `ptxas -v` on the PTX."""
    arch = f"sm_{capability}a" if capability >= 90 else f"sm_{capability}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.ptx"
        path.write_text(ptx)
        # the flags Triton passes itself, so the counts match the cubin it built
        proc = subprocess.run([ptxas_path(capability), "-v", "--regAllocOptLevel=2", f"--gpu-name={arch}", str(path),
                               "-o", str(Path(tmp) / "kernel.cubin")], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ptxas failed:\n{proc.stderr}")
    log = proc.stderr + proc.stdout
    out = {}
    for key, rx in _INFO.items():
        m = rx.search(log)
        out[key] = int(m.group(1)) if m else 0
    if not _INFO["registers"].search(log):
        raise RuntimeError(f"could not read the register count from ptxas:\n{log}")
    return out

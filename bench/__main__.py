"""`python -m bench`: run the benchmark suite and write bench/results/<device>-<date>/.

See bench/__init__.py for what is measured and how."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from . import machine, plots, report, suite
from .systems import make_systems

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="run only the workloads named NAME, or in group NAME, else those whose name "
                        "contains NAME; repeatable")
    p.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    p.add_argument("--no-compile", action="store_true", help="leave out torch.compile and tracegrad.compile")
    p.add_argument("--out", type=Path, help="results folder (default bench/results/<device>-<date>)")
    p.add_argument("--no-save", action="store_true", help="print the table only")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    p.add_argument("--threads", type=int, metavar="N",
                   help="limit torch, OpenMP and BLAS to N threads (default: each library's own choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--debug", action="store_true", help="print tracebacks of failing systems")
    return p.parse_args(argv)


THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _limit_threads(n: int, argv: list[str]) -> None:
    """Thread pools are sized when a library loads, so the limit is set in the
    environment and the suite starts again in a fresh process."""
    if all(os.environ.get(v) == str(n) for v in THREAD_VARS):
        import torch

        torch.set_num_threads(n)
        return
    for v in THREAD_VARS:
        os.environ[v] = str(n)
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "bench", *argv])


def main(argv: list[str] | None = None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    args = parse_args(argv)
    if args.threads:
        _limit_threads(args.threads, argv)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("--device cuda: no CUDA GPU is visible to torch on this machine", file=sys.stderr)
            return 2
    workloads, problems = suite.discover(args.device, args.quick)
    workloads = suite.select(workloads, args.only)
    if args.list:
        for w in workloads:
            sizes = ", ".join(w.size_label(s) for s in w.sizes_for(args.quick))
            print(f"{w.name:<24} {w.group:<18} {sizes}")
        for p in problems:
            print("note:", p)
        return 0
    if not workloads:
        print(f"no workload matches {args.only}", file=sys.stderr)
        return 2
    for p in problems:
        print("note:", p, file=sys.stderr)

    t0 = time.perf_counter()
    info = machine.describe(args.device)
    roofs = machine.cpu_roofs(args.quick) if args.device == "cpu" else machine.cuda_roofs(args.quick)
    systems = make_systems(args.device, want_compile=not args.no_compile)
    rows = suite.run(workloads, systems, device=args.device, quick=args.quick, seed=args.seed,
                     show_progress=not args.no_progress)
    info["loadavg_at_end"] = machine._loadavg()
    names = [s.name for s in systems if any(s.name in r.get("systems", {}) for r in rows)]
    result = {
        "command": "python -m bench " + " ".join(shlex.quote(a) for a in argv),
        "threads": args.threads,
        "quick": args.quick,
        "machine": info,
        "roofs": roofs,
        "systems": names,
        "rows": rows,
        "targets": suite.evaluate_targets(workloads, rows),
        "problems": problems,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(report.table(rows, names))
    for line in report.targets_md(result["targets"]):
        print(line)
    for line in report.failures(rows):
        print(line)
    if not args.no_save:
        label = machine.device_label(args.device)
        default = f"{label}-{info['date']}" + (f"-only-{'-'.join(args.only)}" if args.only else "")
        out = args.out or RESULTS / default
        out.mkdir(parents=True, exist_ok=True)
        result["plots"] = plots.plot_all(rows, names, out, args.device)
        if not result["plots"] and not plots.available():
            print("(matplotlib is not installed: no plots)", file=sys.stderr)
        report.save(result, out)
        print(f"results: {out}/results.md ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

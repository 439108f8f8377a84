"""PNG plots of time against size, one per workload with several sizes.

matplotlib is optional (`pip install matplotlib`, or the `examples` extra):
without it the suite writes no plots and says so."""
from __future__ import annotations

from pathlib import Path


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_all(rows: list[dict], systems: list[str], out_dir: Path, device: str) -> list[str]:
    """Write `<workload>.png` for each workload measured at 2+ sizes; return the file names."""
    if not available():
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_workload: dict[str, list[dict]] = {}
    for r in rows:
        if "x" in r:
            by_workload.setdefault(r["workload"], []).append(r)
    written = []
    for name, rs in by_workload.items():
        if len(rs) < 2:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for s in systems:
            pts = [(r["x"], r["systems"][s]["median_s"]) for r in rs
                   if r["systems"].get(s, {}).get("status") == "ok"]
            if pts:
                xs, ys = zip(*sorted(pts))
                ax.plot(xs, ys, marker="o", label=s, linewidth=2 if s.startswith("tracegrad") else 1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("size (elements)" if "matmul" not in name else "n (n x n x n)")
        ax.set_ylabel("median time per call (s)")
        ax.set_title(f"{name} on {device}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fname = f"{name}.png"
        fig.savefig(out_dir / fname, dpi=90)
        plt.close(fig)
        written.append(fname)
    return written

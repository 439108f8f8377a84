"""Turning result rows into the final table, results.md and results.json."""
from __future__ import annotations

import json
from pathlib import Path

SHORT = {"tracegrad": "tg", "tracegrad.compile": "tg.compile"}


def fmt_time(s: float | None) -> str:
    if s is None:
        return ""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if s >= scale or unit == "ns":
            v = s / scale
            return f"{v:.3g} {unit}" if v >= 100 else f"{v:.3g} {unit}"
    return f"{s:.3g} s"


def fmt_ratio(r: float | None) -> str:
    return "" if r is None else f"{r:.2f}x"


def _cell(rec: dict | None) -> str:
    if rec is None:
        return "-"
    st = rec.get("status")
    if st == "ok":
        return fmt_time(rec["median_s"])
    return {"FAIL": "FAIL", "error": "error", "n/a": "n/a"}.get(st, st or "-")


def _rate(rec: dict | None) -> str:
    if not rec or rec.get("status") != "ok":
        return ""
    if "GFLOPs" in rec:
        return f"{rec['GFLOPs']:.3g} GFLOP/s"
    if "GBps" in rec:
        return f"{rec['GBps']:.3g} GB/s"
    return ""


def table(rows: list[dict], systems: list[str]) -> str:
    """The results as one Markdown table (readable as plain text too)."""
    ours = [s for s in systems if s.startswith("tracegrad")]
    bases = [s for s in systems if not s.startswith("tracegrad")]
    ratio_cols = [(o, b) for o in ours for b in bases
                  if any(f"{o}/{b}" in r.get("ratios", {}) for r in rows)]
    head = ["workload", "size"] + systems + [f"{SHORT.get(o, o)} ÷ {b}" for o, b in ratio_cols]
    head += ["tg rate", "kernels"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        if "error" in r:
            cells = [r["workload"], r["size"], r["error"]] + [""] * (len(head) - 3)
        else:
            sysr = r["systems"]
            cells = [r["workload"], r["size"]] + [_cell(sysr.get(s)) for s in systems]
            cells += [fmt_ratio(r["ratios"].get(f"{o}/{b}")) for o, b in ratio_cols]
            cells += [_rate(sysr.get("tracegrad")), "" if r.get("kernels") is None else str(r["kernels"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def failures(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        if "error" in r:
            out.append(f"- {r['workload']} {r['size']}: {r['error']}")
        for name, rec in r.get("systems", {}).items():
            if rec.get("status") in ("FAIL", "error"):
                out.append(f"- {r['workload']} {r['size']} on {name}: {rec['status']}: {rec.get('detail', '')}")
    return out


def targets_md(targets: list[dict]) -> list[str]:
    out = []
    for t in targets:
        state = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        got = fmt_ratio(t["ratio"]) or "-"
        out.append(f"- {t['workload']} {t['size']}: {t['system']} <= {t['max_ratio']}x {t['baseline']}: "
                   f"{got} ({state})")
    return out


def machine_md(info: dict, roofs: dict) -> list[str]:
    lines = [f"- date: {info['time']}, tracegrad commit {info.get('commit')}"
             + (" (with uncommitted changes)" if info.get("dirty") else "")]
    if info.get("gpu"):
        lines.append(f"- GPU: {info['gpu']}")
    lines.append(f"- CPU: {info['cpu']}, {info['cpu_count']} logical cores "
                 f"(torch uses {info['torch_threads']} thread{'s' if info['torch_threads'] != 1 else ''}"
                 + (f"; {', '.join(f'{k}={v}' for k, v in info['thread_env'].items())})"
                    if info.get("thread_env") else ")"))
    lines.append(f"- Python {info['python']}, NumPy {info['numpy']}, torch {info['torch']}")
    if info.get("loadavg_at_start") is not None:
        lines.append(f"- load average (1, 5, 15 min) at start {info['loadavg_at_start']}, "
                     f"at end {info.get('loadavg_at_end')}: other work on the machine shows here")
    if roofs:
        lines.append("- roofs: " + ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                                            for k, v in roofs.items()))
    return lines


def markdown(result: dict) -> str:
    info, rows = result["machine"], result["rows"]
    mode = "quick" if result["quick"] else "full"
    parts = [f"# Benchmark results: {info['device']}, {info['date']} ({mode} run)", ""]
    parts += machine_md(info, result.get("roofs", {}))
    parts += ["", f"Command: `{result['command']}`", "",
              "Times are medians per call. `a ÷ b` is a's time over b's (below 1: a is faster). "
              "`tg rate` is tracegrad eager's GB/s (one read of each input, one write of the "
              "output) or GFLOP/s. `kernels`: kernels launched per call, from `tracegrad.explain` "
              "(blank while it does not exist). FAIL: the output did not match torch, so it "
              "was not timed.", ""]
    parts.append(table(rows, result["systems"]))
    if result.get("targets"):
        parts += ["", "## Targets", ""] + targets_md(result["targets"])
    fails = failures(rows)
    if fails or result.get("problems"):
        parts += ["", "## Failures and skipped modules", ""] + fails + [f"- {p}" for p in result.get("problems", [])]
    notes = {}
    for r in rows:
        notes.setdefault(r["workload"], r.get("note", ""))
    parts += ["", "## Workloads", ""] + [f"- `{k}`: {v}" for k, v in notes.items() if v]
    if result.get("plots"):
        parts += ["", "## Plots", ""] + [f"![{p}]({p})" for p in result["plots"]]
    return "\n".join(parts) + "\n"


def save(result: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out_dir / "results.md").write_text(markdown(result))

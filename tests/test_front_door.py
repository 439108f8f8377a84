"""The README keeps its promises: its two commands are the ones that work (the
test command is exactly what .ci/run runs), its example prints what torch
prints, and every benchmark number in it is copied from the committed results
file it links to."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _code_blocks(text: str) -> list[tuple[str, str]]:
    return re.findall(r"```(\w*)\n(.*?)```", text, flags=re.S)


def test_first_screen_has_exactly_two_commands():
    lang, first = _code_blocks(README)[0]
    assert lang == "bash"
    commands = [ln for ln in first.splitlines() if ln.strip()]
    assert len(commands) == 2
    assert commands[0] == "pip install -e . && python examples/tour.py"
    assert (ROOT / "examples" / "tour.py").is_file()
    # the first screen: the commands come before the 20th line
    assert README.index(first) < len("\n".join(README.splitlines()[:20]))


def test_ci_runs_exactly_the_readme_test_command():
    test_cmd = [ln for ln in _code_blocks(README)[0][1].splitlines() if ln.strip()][1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in ci
    last = [ln for ln in ci.splitlines() if ln.strip() and not ln.lstrip().startswith("#")][-1]
    assert last == test_cmd


def test_python_example_prints_like_torch():
    import torch
    import tracegrad

    src = next(code for lang, code in _code_blocks(README) if lang == "python")
    src = src.replace("import tracegrad as torch\n", "")
    lines = [ln for ln in src.splitlines() if ln.strip()]
    body = "\n".join(ln for ln in lines if "RuntimeError" not in ln)
    failing = next(ln.split("#")[0].strip() for ln in lines if "RuntimeError" in ln)

    def run(lib):
        ns, buf = {"torch": lib}, io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(body, ns)
        with pytest.raises(RuntimeError) as info:
            eval(failing, ns)
        return buf.getvalue().replace("tracegrad.", "torch."), str(info.value)

    ours, ref = run(tracegrad), run(torch)
    assert ours == ref
    phrase = README.split("# RuntimeError: ", 1)[1].split(" ...", 1)[0]
    assert ref[1].startswith(phrase)


def test_every_benchmark_number_comes_from_the_linked_results():
    m = re.search(r"\((bench/results/[^)]+/results\.md)\)", README)
    assert m, "the README must link to a committed results.md"
    results = (ROOT / m.group(1)).read_text(encoding="utf-8")
    bench_part = README.split("## Benchmarks", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in bench_part.splitlines() if ln.startswith("|")]
    assert len(rows) >= 3, "the README shows the results table"
    measured = re.compile(r"\d+(\.\d+)?\s*(µs|ms|ns|GB/s|GFLOP/s|x\b)")
    lines = results.splitlines()
    for ln in bench_part.splitlines():
        if ln.startswith("|") or measured.search(ln):
            assert ln in lines, f"not copied from {m.group(1)}: {ln}"


def test_tracer_example_runs():
    import tracegrad

    blocks = [code for lang, code in _code_blocks(README) if lang == "python"]
    assert len(blocks) >= 2
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(blocks[1], {"torch": tracegrad})
    assert "def f(" in buf.getvalue()


def test_triton_example_runs_without_a_gpu():
    import triton  # noqa: F401
    import tracegrad

    blocks = [code for lang, code in _code_blocks(README) if lang == "python"]
    ns = {"torch": tracegrad}
    exec(blocks[1].replace("print(", "(lambda *a: None)("), ns)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(blocks[2], ns)
    assert ".target sm_90" in buf.getvalue()

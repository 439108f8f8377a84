"""The benchmark suite's own machinery: checks before timing, failures never
timed, the workload contract, the report. No speed is asserted here."""
from __future__ import annotations

import json

import numpy as np
import pytest

import torch  # noqa: F401  (the reference; part of the test extra)

from bench import checks, report, suite, timing  # noqa: E402
from bench.systems import System, make_systems, to_numpy  # noqa: E402
from bench.workload import Target, Workload  # noqa: E402

FAST = dict(repeats=2, min_loop_s=0.001, warmup_s=0.0)


def _systems(compile=False):
    return make_systems("cpu", want_compile=compile)


def _vec(n, rng):
    return (rng.standard_normal(n).astype(np.float32),)


def _run(w, quick=True):
    progress = suite.Progress(1, enabled=False)
    return [suite.run_one(w, s, _systems(), device="cpu", quick=quick, seed=0, progress=progress)
            for s in w.sizes_for(quick)]


@pytest.fixture(autouse=True)
def fast_timing(monkeypatch):
    """Keep the timed loops tiny: these tests are about bookkeeping."""
    real = timing.time_interleaved
    monkeypatch.setattr(timing, "time_interleaved", lambda loops, **_: real(loops, **FAST))


def test_correct_workload_is_timed_on_every_system():
    w = Workload(name="exp", group="t", sizes=[10, 1000], make_inputs=_vec,
                 fn=lambda lib, x: x.exp(), numpy_fn=np.exp, targets=(Target(1000, "numpy", 1e9),))
    rows = _run(w)
    assert [r["size"] for r in rows] == ["10", "1000"]
    for r in rows:
        assert set(r["systems"]) == {"torch", "tracegrad", "numpy"}
        for rec in r["systems"].values():
            assert rec["status"] == "ok" and rec["median_s"] > 0
        assert r["ratios"]["tracegrad/torch"] == pytest.approx(
            r["systems"]["tracegrad"]["median_s"] / r["systems"]["torch"]["median_s"])
    (t,) = suite.evaluate_targets([w], rows)
    assert t["met"] is True and t["ratio"] == rows[1]["ratios"]["tracegrad/numpy"]


def test_wrong_result_is_a_failure_and_never_timed():
    def fn(lib, x):
        return x + 1 if lib.__name__ == "tracegrad" else x

    w = Workload(name="wrong", group="t", sizes=[100], make_inputs=_vec, fn=fn, numpy_fn=lambda x: x * 1)
    (row,) = _run(w)
    rec = row["systems"]["tracegrad"]
    assert rec["status"] == "FAIL" and "max |diff|" in rec["detail"]
    assert "median_s" not in rec and "timing" not in rec
    assert row["systems"]["numpy"]["status"] == "ok"
    assert not any(k.startswith("tracegrad/") for k in row["ratios"])
    assert any("wrong 100 on tracegrad: FAIL" in line for line in report.failures([row]))


def test_wrong_dtype_and_exception_are_reported():
    def fn(lib, x):
        if lib.__name__ == "tracegrad":
            return x.double()
        return x.float()

    (row,) = _run(Workload(name="dt", group="t", sizes=[8], make_inputs=_vec, fn=fn))
    assert row["systems"]["tracegrad"]["status"] == "FAIL"
    assert "dtype float64, expected float32" in row["systems"]["tracegrad"]["detail"]

    def boom(lib, x):
        if lib.__name__ == "tracegrad":
            raise RuntimeError("no such op")
        return x

    (row,) = _run(Workload(name="boom", group="t", sizes=[8], make_inputs=_vec, fn=boom))
    assert row["systems"]["tracegrad"] == {"status": "error", "detail": "RuntimeError: no such op"}


def test_prepare_form_and_rotation():
    seen = []

    def prepare(system, arrays, size):
        if system.kind == "numpy":
            return None  # no NumPy version
        if system.name == "torch.compile":
            raise NotImplementedError  # the other way to say it
        x = system.tensor(arrays[0])
        seen.append(system.name)
        return (lambda t: (t * 2).sum()), (x,)

    w = Workload(name="prep", group="t", sizes=[16], make_inputs=_vec, prepare=prepare,
                 systems=("torch", "tracegrad", "torch.compile", "numpy"))
    progress = suite.Progress(1, enabled=False)
    (row,) = [suite.run_one(w, 16, _systems(compile=True), device="cpu", quick=True, seed=0,
                            progress=progress)]
    assert set(row["systems"]) == {"torch", "tracegrad"}
    assert row["rotations"] == suite.ROTATIONS  # small inputs rotate over several buffers
    assert seen.count("tracegrad") == suite.ROTATIONS


def _ulps(x, k):
    x = np.float32(x)
    for _ in range(abs(k)):
        x = np.nextafter(x, np.float32(np.inf if k > 0 else -np.inf))
    return x


def test_float64_rule_accepts_a_different_but_no_worse_result():
    exact = np.array([1.2345678, -3.25, 1000.1], dtype=np.float64)
    ref = np.array([_ulps(v, 2) for v in exact], dtype=np.float32)  # torch: 2 ulps off
    same_quality = np.array([_ulps(v, -2) for v in exact], dtype=np.float32)
    worse = np.array([_ulps(v, -9) for v in exact], dtype=np.float32)
    # with zero tolerance only the float64 rule can accept a result that differs
    assert checks.check(same_quality, ref, exact, rtol=0, atol=0) is None
    why = checks.check(worse, ref, exact, rtol=0, atol=0)
    assert why is not None and "from float64" in why
    assert checks.check(same_quality, ref, rtol=0, atol=0) is not None  # no float64 reference: no rule
    assert checks.check(np.zeros(3, np.float32), np.zeros(4, np.float32)) == "shape (3,), expected (4,)"
    assert checks.check(np.array([1, 2]), np.array([1, 3])).startswith("values differ at 1 of 2")


def test_to_numpy_handles_tensors_tuples_and_scalars():
    import torch

    import tracegrad

    assert to_numpy(tracegrad.ones(2)).tolist() == [1.0, 1.0]
    a, b = to_numpy((torch.zeros(1, requires_grad=True) * 2, 3.5))
    assert a.tolist() == [0.0] and float(b) == 3.5


def test_report_table_and_json_roundtrip(tmp_path):
    w = Workload(name="neg", group="t", sizes=[4], make_inputs=_vec, fn=lambda lib, x: -x,
                 numpy_fn=np.negative, bytes=lambda s, a, o: 32.0)
    rows = _run(w)
    names = ["torch", "tracegrad", "numpy"]
    text = report.table(rows, names)
    assert text.splitlines()[0].startswith("| workload | size | torch | tracegrad | numpy |")
    assert "tg ÷ torch" in text and "GB/s" in text
    result = {"command": "x", "quick": True, "machine": {"device": "cpu", "date": "d", "time": "t",
              "cpu": "c", "cpu_count": 2, "torch_threads": 2, "python": "3", "numpy": "2", "torch": "2"},
              "roofs": {}, "systems": names, "rows": rows, "targets": [], "problems": []}
    report.save(result, tmp_path)
    assert json.loads((tmp_path / "results.json").read_text())["rows"][0]["workload"] == "neg"
    assert "| neg | 4 |" in (tmp_path / "results.md").read_text()


def test_builtin_workloads_are_well_formed_and_discovery_reports_broken_modules(tmp_path, monkeypatch):
    ws, problems = suite.discover("cpu", quick=True)
    names = [w.name for w in ws]
    for needed in ("overhead_add", "chain1", "chain4", "chain8", "chain16", "softmax", "layer_norm", "matmul"):
        assert needed in names
    chain4 = next(w for w in ws if w.name == "chain4")
    assert 10_000_000 in chain4.sizes_for(quick=True)
    assert chain4.targets and chain4.targets[0].max_ratio == 1.1 and chain4.targets[0].baseline == "numpy"
    assert all(isinstance(p, str) for p in problems)
    assert [w.name for w in suite.select(ws, ["chain1"])] == ["chain1"]
    assert [w.name for w in suite.select(ws, ["overhead"])][:2] == ["overhead_add", "overhead_mul"]
    assert {w.name for w in suite.select(ws, ["row-wise"])} == {"softmax", "layer_norm", "cross_entropy"}

    broken = tmp_path / "bench_broken.py"
    broken.write_text("raise ImportError('half written')\n")
    monkeypatch.setattr(suite, "_module_names", lambda: ["bench_broken"])
    monkeypatch.syspath_prepend(str(tmp_path))
    ws2, problems2 = suite.discover("cpu", quick=True)
    assert any("bench_broken.py skipped: ImportError: half written" in p for p in problems2)
    assert len(ws2) == len([w for w in ws if not w.extra.get("module")])


def test_builtin_workloads_compute_what_torch_computes():
    """Every built-in CPU workload, at its smallest size, passes its own check on
    tracegrad and NumPy (so a FAIL in a results file means a real regression)."""
    ws, _ = suite.discover("cpu", quick=True)
    for w in ws:
        if w.extra.get("module"):
            continue  # other modules' workloads are checked by their own tests
        w.quick_sizes = [min(w.sizes_for(True), key=lambda s: np.prod(s))]
        (row,) = _run(w)
        for name in ("tracegrad", "numpy"):
            assert row["systems"][name]["status"] == "ok", (w.name, row["systems"][name])


def test_system_tensor_copies_inputs():
    import tracegrad

    s = System("tracegrad", "tracegrad", tracegrad)
    a = np.arange(3, dtype=np.float32)
    t = s.tensor(a)
    a[0] = 9
    assert t.tolist() == [0.0, 1.0, 2.0]


def _tiny(size):
    """A workload size shrunk for the simulated device (same kind of size, a few elements)."""
    if isinstance(size, int):
        return min(size, 64)
    if isinstance(size, tuple):
        return tuple(min(d, 16) for d in size)
    return size


def test_cuda_workloads_compute_what_torch_computes_on_the_simulated_device(monkeypatch):
    """Every CUDA workload (built-in and from the bench modules), shrunk to a few elements, passes its
    check with tracegrad on the (simulated) device against torch. Nothing is timed: the simulator runs
    every kernel under Triton's interpreter. Of the training runs, FizzBuzz takes one epoch (the others
    are the same code on bigger models; their kernels are checked in the device tests)."""
    import torch
    import tracegrad
    from cuda_device import cuda_device
    from bench import bench_training

    monkeypatch.setattr(bench_training, "CUDA_AMOUNTS", {"fizzbuzz": (1, "1 epoch")})
    monkeypatch.setattr(bench_training, "WORKLOADS", {"fizzbuzz": bench_training.WORKLOADS["fizzbuzz"]})
    passed = []  # the systems that passed their check reach the timing step
    monkeypatch.setattr(timing, "time_interleaved", lambda loops, **_: passed.append(set(loops)) or {})
    with cuda_device():
        ws, problems = suite.discover("cuda", quick=True)
        assert not problems
        names = {w.name for w in ws}
        for want in ("chain8", "softmax", "layer_norm", "cross_entropy", "matmul_float16", "matmul_tall_bfloat16",
                     "matmul_bias_relu_float32", "mlp_gelu_fwd_bwd", "train_fizzbuzz", "overhead_add"):
            assert want in names, want
        systems = [System("tracegrad", "tracegrad", tracegrad, device="cuda"), System("torch", "torch", torch)]
        progress = suite.Progress(1, enabled=False)
        for w in ws:
            size = _tiny(w.sizes_for(True)[0])
            row = suite.run_one(w, size, systems, device="cpu", quick=True, seed=0, progress=progress)
            assert "error" not in row and "tracegrad" not in row["systems"], (w.name, row)  # no FAIL, no error
            assert passed.pop() == {"tracegrad", "torch"}, w.name


def test_mlp_workload_checks_eager_and_compiled_gradients_on_the_cpu():
    """The MLP block's forward+backward passes its check on tracegrad eager and tracegrad.compile (whose
    backward runs through the traced function's autograd), against torch eager."""
    from bench import bench_mlp

    (w,) = bench_mlp.workloads("cpu", quick=True)
    progress = suite.Progress(1, enabled=False)
    systems = [s for s in make_systems("cpu", want_compile=True) if s.name != "torch.compile"]
    row = suite.run_one(w, (8, 16), systems, device="cpu", quick=True, seed=0, progress=progress)
    for name in ("tracegrad", "tracegrad.compile"):
        assert row["systems"][name]["status"] == "ok", (name, row["systems"][name])
    assert "numpy" not in row["systems"]  # no NumPy version: no column

"""Autotuning: the fastest candidate wins, failures are skipped, the choice persists on disk.

Timing needs a GPU; here `bench` is a stand-in that scores the rendered source,
so the test checks the search and the cache, not the clock."""
from __future__ import annotations

import json

import pytest

import triton_cases as C
from tracegrad.kernels.triton.autotune import AutotuneCache, autotune, candidates, cache_key

SPEC = next(c for c in C.chain_cases() if c.id == "chain-contiguous-f32").spec


def _fake_bench(calls, fail_over=None):
    def bench(src):
        calls.append(src.constexprs["XBLOCK"])
        if fail_over is not None and src.constexprs["XBLOCK"] > fail_over:
            raise RuntimeError("out of resources")
        return abs(src.constexprs["XBLOCK"] - 512) + 1.0  # 512 is fastest

    return bench


def test_fastest_candidate_wins_and_is_cached(tmp_path):
    cache = AutotuneCache(tmp_path / "at.json")
    calls = []
    got = autotune(SPEC, _fake_bench(calls), device="test-gpu", cache=cache)
    assert got["config"]["XBLOCK"] == 512 and got["tried"] == len(calls) > 1
    calls.clear()
    again = autotune(SPEC, _fake_bench(calls), device="test-gpu", cache=cache)
    assert again == got and calls == []  # answered from the cache, nothing re-timed


def test_cache_persists_across_instances_and_separates_devices(tmp_path):
    path = tmp_path / "at.json"
    autotune(SPEC, _fake_bench([]), device="gpu-a", cache=AutotuneCache(path))
    data = json.loads(path.read_text())
    assert cache_key(SPEC, "gpu-a") in data
    calls = []
    autotune(SPEC, _fake_bench(calls), device="gpu-a", cache=AutotuneCache(path))
    assert calls == []
    autotune(SPEC, _fake_bench(calls), device="gpu-b", cache=AutotuneCache(path))
    assert calls  # another device is tuned afresh
    assert len(json.loads(path.read_text())) == 2


def test_failing_candidates_are_skipped(tmp_path):
    got = autotune(SPEC, _fake_bench([], fail_over=256), device="d", cache=AutotuneCache(tmp_path / "a.json"))
    assert got["config"]["XBLOCK"] == 256


def test_nothing_runs_raises(tmp_path):
    def bench(src):
        raise RuntimeError("no")

    with pytest.raises(RuntimeError, match="no configuration"):
        autotune(SPEC, bench, device="d", cache=AutotuneCache(tmp_path / "a.json"))


def test_a_corrupt_cache_file_is_treated_as_empty(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("{not json")
    got = autotune(SPEC, _fake_bench([]), device="d", cache=AutotuneCache(path))
    assert json.loads(path.read_text())[cache_key(SPEC, "d")] == got


def test_cache_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEGRAD_CACHE_DIR", str(tmp_path))
    assert AutotuneCache().path == tmp_path / "autotune.json"


@pytest.mark.parametrize("cid", ["softmax-float32-persistent", "reduce-rows-float32-looped",
                                 "matmul-linear-relu-float16", "matmul-linear-relu-float32"])
def test_candidates_render_for_every_kind(cid):
    from tracegrad.kernels.triton import render

    case = next(c for c in C.all_cases() if c.id == cid)
    cfgs = candidates(case.spec)
    assert cfgs
    for cfg in cfgs:
        src = render(case.spec.with_options(**cfg))
        assert src.num_warps == cfg["num_warps"]

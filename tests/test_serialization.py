"""tracegrad.save / tracegrad.load: round trips of tensors, state dicts and containers, storage
sharing, the documented on-disk format, and that loading never runs code from the file."""
from __future__ import annotations

import io
import json
import math
import pickle
import zipfile
from collections import Counter, OrderedDict

import numpy as np
import pytest
import torch

import tracegrad
from nn_helpers import close, copy_weights, tg


def _round_trip(obj, path=None):
    if path is not None:
        tracegrad.save(obj, path)
        return tracegrad.load(path)
    buf = io.BytesIO()
    tracegrad.save(obj, buf)
    buf.seek(0)
    return tracegrad.load(buf)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16", "int64", "int32", "int8", "uint8",
                                   "int16", "bool"])
def test_tensor_round_trip_every_dtype(dtype, tmp_path):
    t = (tracegrad.arange(12) - 5).reshape(3, 4).to(getattr(tracegrad, dtype))
    back = _round_trip(t, tmp_path / "t.pt")
    assert back.dtype is t.dtype and tuple(back.shape) == (3, 4)
    assert back.tolist() == t.tolist()
    assert repr(back) == repr(t)


def test_views_share_storage_after_loading():
    base = tracegrad.arange(20.0).reshape(4, 5)
    view = base[1:, ::2]
    tr = base.t()
    obj = {"base": base, "view": view, "t": tr, "again": base, "scalar": base[2, 3]}
    back = _round_trip(obj)
    assert back["again"] is back["base"]
    assert back["view"].tolist() == view.tolist() and back["view"].stride() == view.stride()
    assert back["t"].tolist() == tr.tolist() and back["scalar"].item() == 13.0
    back["base"][1, 0] = -1.0
    assert back["view"][0, 0].item() == -1.0 and back["t"][0, 1].item() == -1.0  # one storage, as saved
    with zipfile.ZipFile(_bytes(obj)) as z:
        assert len([n for n in z.namelist() if "/data/" in n]) == 1


def _bytes(obj):
    buf = io.BytesIO()
    tracegrad.save(obj, buf)
    buf.seek(0)
    return buf


def test_containers_and_scalars_round_trip():
    od = OrderedDict([("b", 1), ("a", 2)])
    obj = {"list": [1, 2.5, "x", None, True], "tuple": (1, (2, 3)), "set": {1, 2}, "nested": {3: {"deep": [od]}},
           "inf": float("inf"), "nan": float("nan"), "neg": -float("inf"), "dtype": tracegrad.float16,
           "size": tracegrad.Size([2, 3]), "bytes": b"\x00\xff", "counter": Counter({4: 2}),
           "device": tracegrad.device("cpu"), "np": np.float32(1.5), "npint": np.int64(7)}
    back = _round_trip(obj)
    assert back["list"] == obj["list"] and back["tuple"] == (1, (2, 3)) and back["set"] == {1, 2}
    assert back["nested"][3]["deep"][0] == od and list(back["nested"][3]["deep"][0]) == ["b", "a"]
    assert isinstance(back["nested"][3]["deep"][0], OrderedDict)
    assert back["inf"] == math.inf and math.isnan(back["nan"]) and back["neg"] == -math.inf
    assert back["dtype"] is tracegrad.float16 and back["size"] == tracegrad.Size([2, 3])
    assert isinstance(back["size"], tracegrad.Size) and back["bytes"] == b"\x00\xff"
    assert back["counter"] == Counter({4: 2}) and isinstance(back["counter"], Counter)
    assert back["device"] == tracegrad.device("cpu") and back["np"] == 1.5 and back["npint"] == 7


def test_model_state_dict_round_trip(tmp_path):
    torch_model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Flatten(),
                                      torch.nn.Linear(2 * 4 * 4, 3))
    ours = tracegrad.nn.Sequential(tracegrad.nn.Conv2d(1, 2, 3), tracegrad.nn.BatchNorm2d(2), tracegrad.nn.Flatten(),
                                   tracegrad.nn.Linear(2 * 4 * 4, 3))
    copy_weights(ours, torch_model)
    path = tmp_path / "model.pt"
    tracegrad.save(ours.state_dict(), path)
    sd = tracegrad.load(path)
    assert isinstance(sd, OrderedDict) and list(sd) == list(torch_model.state_dict())
    assert sd._metadata == ours.state_dict()._metadata
    assert sd["1.num_batches_tracked"].dtype is tracegrad.int64
    fresh = tracegrad.nn.Sequential(tracegrad.nn.Conv2d(1, 2, 3), tracegrad.nn.BatchNorm2d(2), tracegrad.nn.Flatten(),
                                    tracegrad.nn.Linear(2 * 4 * 4, 3))
    assert repr(fresh.load_state_dict(sd)) == "<All keys matched successfully>"
    x = torch.randn(2, 1, 6, 6)
    fresh.eval(), torch_model.eval()
    close(fresh(tg(x)), torch_model(x))


def test_parameters_and_requires_grad_survive():
    p = tracegrad.nn.Parameter(tracegrad.ones(2))
    frozen = tracegrad.nn.Parameter(tracegrad.ones(2), requires_grad=False)
    leaf = tracegrad.ones(3, requires_grad=True)
    back = _round_trip([p, frozen, leaf, leaf.detach()])
    assert isinstance(back[0], tracegrad.nn.Parameter) and back[0].requires_grad
    assert isinstance(back[1], tracegrad.nn.Parameter) and not back[1].requires_grad
    assert not isinstance(back[2], tracegrad.nn.Parameter) and back[2].requires_grad and back[2].is_leaf
    assert not back[3].requires_grad


def test_manifest_format_is_as_documented():
    t = tracegrad.tensor([[1.0, 2.0], [3.0, 4.0]])
    with zipfile.ZipFile(_bytes({"w": t, "k": 3})) as z:
        names = z.namelist()
        assert "archive/manifest.json" in names and "archive/data/0" in names
        m = json.loads(z.read("archive/manifest.json"))
        raw = z.read("archive/data/0")
    assert m["format"] == "tracegrad" and m["version"] == 1
    assert m["storages"] == [{"dtype": "float32", "numel": 4}]
    assert m["tensors"][0] == {"storage": 0, "dtype": "float32", "shape": [2, 2], "stride": [2, 1], "offset": 0,
                               "requires_grad": False, "parameter": False}
    assert m["root"] == {"type": "dict", "items": [["w", {"type": "tensor", "index": 0}], ["k", 3]]}
    assert np.frombuffer(raw, "<f4").tolist() == [1.0, 2.0, 3.0, 4.0]


def test_load_runs_no_code_and_rejects_bad_files(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle ran')",))

    evil = tmp_path / "evil.pt"
    with zipfile.ZipFile(evil, "w") as z:  # a torch-style archive holding a pickle
        z.writestr("archive/data.pkl", pickle.dumps(Boom()))
    with pytest.raises(RuntimeError, match="no manifest.json"):
        tracegrad.load(evil)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(RuntimeError, match="not a tracegrad checkpoint"):
        tracegrad.load(plain)
    bad = tmp_path / "bad.pt"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("archive/manifest.json", json.dumps({"format": "tracegrad", "version": 1, "storages": [],
                                                        "tensors": [], "root": {"type": "pickle", "data": "x"}}))
    with pytest.raises(RuntimeError, match="unknown entry type"):
        tracegrad.load(bad)
    out_of_range = tmp_path / "oob.pt"
    with zipfile.ZipFile(out_of_range, "w") as z:
        z.writestr("archive/manifest.json", json.dumps({
            "format": "tracegrad", "version": 1, "storages": [{"dtype": "float32", "numel": 2}],
            "tensors": [{"storage": 0, "dtype": "float32", "shape": [5], "stride": [1], "offset": 0}],
            "root": {"type": "tensor", "index": 0}}))
        z.writestr("archive/data/0", np.zeros(2, "<f4").tobytes())
    with pytest.raises(RuntimeError, match="reaches outside its storage"):
        tracegrad.load(out_of_range)


def test_unsupported_objects_are_refused():
    with pytest.raises(TypeError, match="save its state_dict"):
        tracegrad.save(tracegrad.nn.Linear(2, 2), io.BytesIO())
    with pytest.raises(TypeError, match="cannot store an object of type"):
        tracegrad.save({"f": lambda: 1}, io.BytesIO())
    with pytest.raises(RuntimeError):
        tracegrad.load(_bytes(tracegrad.ones(1)), map_location="cuda")
    assert tracegrad.load(_bytes(tracegrad.ones(1)), map_location="cpu", weights_only=False).tolist() == [1.0]

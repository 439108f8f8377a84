"""`tracegrad.save` / `tracegrad.load`: tensors, state dicts and nested containers on disk.

Format
------
A checkpoint is an uncompressed zip archive with two kinds of members:

    <name>/manifest.json      what the file holds (below)
    <name>/data/<k>           the raw bytes of storage k, little-endian, C order

`manifest.json` is one JSON object:

    {"format": "tracegrad", "version": 1,
     "storages": [{"dtype": "float32", "numel": 12}, ...],
     "tensors":  [{"storage": 0, "dtype": "float32", "shape": [3, 4], "stride": [4, 1],
                   "offset": 0, "requires_grad": false, "parameter": false}, ...],
     "root": <value>}

A storage is a flat buffer (bfloat16 is stored as its raw 16-bit patterns). A
tensor is a view of a storage (shape, stride and offset in elements), so tensors
that shared memory when saved (a weight and a view of it) share it again after
loading, and a tensor object saved twice loads as one object. `<value>` encodes
the saved object:

    null, true/false, numbers, strings      themselves (finite floats only)
    {"type": "float", "value": "nan"}       nan, inf, -inf
    {"type": "tensor", "index": i}          entry i of "tensors"
    {"type": "list" | "tuple" | "set", "items": [<value>, ...]}
    {"type": "dict" | "odict" | "counter", "items": [[<key>, <value>], ...], "metadata": <value>?}
    {"type": "dtype", "name": "float32"}   {"type": "size", "items": [...]}   {"type": "device", "name": "cpu"}
    {"type": "bytes", "hex": "..."}

Dict keys are values too, so an optimizer's state dict (integer keys) round-trips;
"metadata" keeps the `_metadata` a Module's state_dict carries.

Safety: loading reads JSON and raw numbers only. Nothing is unpickled and no code
from the file runs (torch needs `weights_only=True` for that guarantee; here it
always holds). Objects of other types (a whole Module, a custom class) are refused
when saving: save `model.state_dict()` and rebuild the model in code."""
from __future__ import annotations

import json
import math
import os
import zipfile
from collections import Counter, OrderedDict
from typing import Any, BinaryIO, Union

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import dtypes as D
from .tensor import Tensor, Size, _root

__all__ = ["save", "load"]

_FORMAT = "tracegrad"
_VERSION = 1
_ARCHIVE = "archive"
_DTYPES = {d.name: d for d in D.ALL}

FileLike = Union[str, os.PathLike, BinaryIO]


# ---- saving ------------------------------------------------------------------------------------------
class _Writer:
    def __init__(self):
        self.storages: list[np.ndarray] = []  # flat arrays, in storage order
        self.storage_meta: list[dict] = []
        self.storage_ids: dict[int, int] = {}  # id(root ndarray) -> storage index
        self.tensors: list[dict] = []
        self.tensor_ids: dict[int, int] = {}  # id(Tensor) -> tensor index
        self._keep: list = []  # keeps roots alive so their ids stay unique while saving

    def storage_of(self, t: Tensor) -> tuple[int, int, tuple]:
        """(storage index, offset, strides in elements) for t, sharing storage with earlier tensors."""
        a = t._data
        item = a.itemsize
        root = _root(a)
        shareable = (isinstance(root, np.ndarray) and (root.flags.c_contiguous or root.flags.f_contiguous)
                     and root.itemsize == item and all(s >= 0 for s in a.strides)
                     and all(s % item == 0 for s in a.strides))
        if shareable:
            flat = root.ravel(order="K")
            offset = (a.__array_interface__["data"][0] - flat.__array_interface__["data"][0])
            if offset % item:
                shareable = False
        if not shareable:  # an odd layout: save a contiguous copy of its own
            flat = np.ascontiguousarray(a).reshape(-1)
            root, offset = flat, 0
            strides = _contiguous_strides(a.shape)
        else:
            offset //= item
            strides = tuple(s // item for s in a.strides)
        k = self.storage_ids.get(id(root))
        if k is None:
            k = len(self.storages)
            self.storage_ids[id(root)] = k
            self._keep.append(root)
            self.storages.append(flat)
            self.storage_meta.append({"dtype": _storage_dtype(t.dtype, flat), "numel": int(flat.size)})
        return k, int(offset), strides

    def tensor(self, t: Tensor) -> dict:
        i = self.tensor_ids.get(id(t))
        if i is None:
            from .nn.parameter import Parameter

            k, offset, strides = self.storage_of(t)
            i = len(self.tensors)
            self.tensor_ids[id(t)] = i
            self.tensors.append({"storage": k, "dtype": t.dtype.name, "shape": list(t.shape),
                                 "stride": list(strides), "offset": offset,
                                 "requires_grad": bool(t.requires_grad), "parameter": isinstance(t, Parameter)})
        return {"type": "tensor", "index": i}

    def encode(self, obj: Any) -> Any:
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, Tensor):
            return self.tensor(obj)
        if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
            return int(obj)
        if isinstance(obj, np.bool_):
            return bool(obj)
        if isinstance(obj, (float, np.floating)):
            obj = float(obj)
            return obj if math.isfinite(obj) else {"type": "float", "value": repr(obj)}
        if isinstance(obj, D.DType):
            return {"type": "dtype", "name": obj.name}
        if isinstance(obj, Size):
            return {"type": "size", "items": [int(s) for s in obj]}
        if type(obj).__name__ == "device" and hasattr(obj, "type"):
            return {"type": "device", "name": str(obj)}
        if isinstance(obj, (bytes, bytearray)):
            return {"type": "bytes", "hex": bytes(obj).hex()}
        if isinstance(obj, Counter):
            return {"type": "counter", "items": [[self.encode(k), self.encode(v)] for k, v in obj.items()]}
        if isinstance(obj, dict):
            out = {"type": "odict" if isinstance(obj, OrderedDict) else "dict",
                   "items": [[self.encode(k), self.encode(v)] for k, v in obj.items()]}
            meta = getattr(obj, "_metadata", None)
            if meta is not None and isinstance(obj, OrderedDict):
                out["metadata"] = self.encode(meta)
            return out
        if isinstance(obj, (list, tuple, set, frozenset)):
            kind = "list" if isinstance(obj, list) else "tuple" if isinstance(obj, tuple) else "set"
            return {"type": kind, "items": [self.encode(x) for x in obj]}
        from .nn.modules.module import Module

        hint = " (save its state_dict() and rebuild the model in code)" if isinstance(obj, Module) else ""
        raise TypeError(f"tracegrad.save cannot store an object of type {type(obj).__module__}."
                        f"{type(obj).__qualname__}{hint}: only tensors, numbers, strings, None, dtypes and "
                        "lists/tuples/dicts of them are supported")


def _contiguous_strides(shape) -> tuple:
    st, acc = [], 1
    for n in reversed(shape):
        st.append(acc)
        acc *= max(n, 1)
    return tuple(reversed(st))


def _storage_dtype(dt: D.DType, flat: np.ndarray) -> str:
    # a storage keeps the dtype of the tensor that first named it; views with another
    # dtype of the same width reinterpret its bytes, as view(dtype) does
    return dt.name


def save(obj: Any, f: FileLike, pickle_module=None, pickle_protocol=None,
         _use_new_zipfile_serialization: bool = True) -> None:
    """Write obj (tensors, state dicts, nested lists/tuples/dicts, numbers, strings) to a path or binary file."""
    w = _Writer()
    root = w.encode(obj)
    manifest = {"format": _FORMAT, "version": _VERSION, "storages": w.storage_meta, "tensors": w.tensors,
                "root": root}
    own = isinstance(f, (str, os.PathLike))
    fh = open(f, "wb") if own else f
    try:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as z:
            z.writestr(f"{_ARCHIVE}/manifest.json", json.dumps(manifest, allow_nan=False))
            for k, flat in enumerate(w.storages):
                data = np.ascontiguousarray(flat)
                if data.dtype.byteorder == ">":
                    data = data.astype(data.dtype.newbyteorder("<"))
                z.writestr(f"{_ARCHIVE}/data/{k}", data.tobytes())
    finally:
        if own:
            fh.close()


# ---- loading -----------------------------------------------------------------------------------------
class _Reader:
    def __init__(self, manifest: dict, z: zipfile.ZipFile, prefix: str):
        self.manifest = manifest
        self.z = z
        self.prefix = prefix
        self.storages: dict[int, np.ndarray] = {}
        self.tensors: dict[int, Tensor] = {}

    def storage(self, k: int) -> np.ndarray:
        s = self.storages.get(k)
        if s is None:
            meta = self.manifest["storages"][k]
            dt = _dtype(meta["dtype"])
            raw = bytearray(self.z.read(f"{self.prefix}data/{k}"))
            s = np.frombuffer(raw, dtype=np.dtype(dt.np).newbyteorder("<")).astype(dt.np, copy=False)
            if s.size != meta["numel"]:
                raise RuntimeError(f"tracegrad.load: storage {k} holds {s.size} elements, the manifest says "
                                   f"{meta['numel']}; the file is corrupt")
            self.storages[k] = s
        return s

    def tensor(self, i: int) -> Tensor:
        t = self.tensors.get(i)
        if t is not None:
            return t
        meta = self.manifest["tensors"][i]
        dt = _dtype(meta["dtype"])
        flat = self.storage(meta["storage"])
        if flat.dtype != np.dtype(dt.np):
            flat = flat.view(dt.np)
        shape, stride, offset = tuple(meta["shape"]), tuple(meta["stride"]), int(meta["offset"])
        span = offset + sum((n - 1) * s for n, s in zip(shape, stride)) + 1 if all(shape) else offset
        if offset < 0 or span > flat.size or any(s < 0 for s in stride):
            raise RuntimeError(f"tracegrad.load: tensor {i} reaches outside its storage; the file is corrupt")
        base = flat[offset:]
        arr = as_strided(base, shape, tuple(s * flat.itemsize for s in stride))
        t = Tensor._make(arr, dt)
        if meta.get("parameter"):
            from .nn.parameter import Parameter

            t = Parameter(t, requires_grad=bool(meta.get("requires_grad", True)))
        elif meta.get("requires_grad"):
            t.requires_grad_(True)
        self.tensors[i] = t
        return t

    def decode(self, v: Any) -> Any:
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, list):  # never written by save; accept plain JSON arrays as lists
            return [self.decode(x) for x in v]
        kind = v.get("type")
        if kind == "tensor":
            return self.tensor(int(v["index"]))
        if kind == "float":
            return float(v["value"])
        if kind in ("list", "tuple", "set"):
            items = [self.decode(x) for x in v["items"]]
            return items if kind == "list" else tuple(items) if kind == "tuple" else set(items)
        if kind in ("dict", "odict", "counter"):
            cls = {"dict": dict, "odict": OrderedDict, "counter": Counter}[kind]
            pairs = [(_hashable(self.decode(k)), self.decode(x)) for k, x in v["items"]]
            out = Counter(dict(pairs)) if cls is Counter else cls(pairs)
            if "metadata" in v and kind == "odict":  # a Module state_dict's per-module versions
                out._metadata = self.decode(v["metadata"])
            return out
        if kind == "dtype":
            return _dtype(v["name"])
        if kind == "size":
            return Size(int(x) for x in v["items"])
        if kind == "device":
            from .device import device

            return device(v["name"])
        if kind == "bytes":
            return bytes.fromhex(v["hex"])
        raise RuntimeError(f"tracegrad.load: unknown entry type {kind!r}; the file is corrupt or from a newer "
                           "version")


def _hashable(k):
    return tuple(k) if isinstance(k, list) else k


def _dtype(name: str) -> D.DType:
    dt = _DTYPES.get(name)
    if dt is None:
        raise RuntimeError(f"tracegrad.load: unknown dtype {name!r}")
    return dt


def load(f: FileLike, map_location=None, pickle_module=None, *, weights_only: bool = True, mmap=None,
         **pickle_load_args) -> Any:
    """Read what `save` wrote. Only data is read: no code from the file runs, whatever weights_only says."""
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        from .device import check_device

        check_device(map_location)
    own = isinstance(f, (str, os.PathLike))
    fh = open(f, "rb") if own else f
    try:
        try:
            z = zipfile.ZipFile(fh, "r")
        except zipfile.BadZipFile as e:
            raise RuntimeError("tracegrad.load: not a tracegrad checkpoint (expected a zip archive with a "
                               f"manifest.json): {e}") from None
        with z:
            names = [n for n in z.namelist() if n.endswith("/manifest.json")]
            if len(names) != 1:
                raise RuntimeError("tracegrad.load: not a tracegrad checkpoint (no manifest.json in the archive)")
            prefix = names[0][: -len("manifest.json")]
            try:
                manifest = json.loads(z.read(names[0]).decode("utf-8"))
            except ValueError as e:
                raise RuntimeError(f"tracegrad.load: the manifest is not valid JSON: {e}") from None
            if manifest.get("format") != _FORMAT:
                raise RuntimeError("tracegrad.load: not a tracegrad checkpoint (manifest format is "
                                   f"{manifest.get('format')!r})")
            if int(manifest.get("version", 0)) > _VERSION:
                raise RuntimeError(f"tracegrad.load: the file has format version {manifest['version']}; this "
                                   f"tracegrad reads up to version {_VERSION}")
            return _Reader(manifest, z, prefix).decode(manifest["root"])
    finally:
        if own:
            fh.close()

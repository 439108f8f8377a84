"""The example scripts run (at reduced size) and print what the tutorials show.

Each script is run as a program. Their models are also built from the same
source with the `import tracegrad as torch` lines turned back into `import torch`
(loaded in this process, main() not run): the printed model must be the text
torch prints for it, and printed tensors must have torch's layout, numbers
aside (the two libraries draw different random weights)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg")


def _as_torch(src: str) -> str:
    return (src.replace("import tracegrad as torch", "import torch")
               .replace("import tracegrad.nn as nn", "import torch.nn as nn")
               .replace("from tracegrad.utils.data import", "from torch.utils.data import"))


def run(name: str, *args: str, tmp: Path | None = None) -> str:
    r = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, env=ENV,
                       cwd=tmp or EXAMPLES, timeout=300)
    assert r.returncode == 0, f"{name} {args} failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    return r.stdout


def torch_version(name: str) -> dict:
    """The example's definitions, executed with torch in place of tracegrad."""
    ns = {"__name__": "example_under_torch"}
    exec(compile(_as_torch((EXAMPLES / name).read_text()), name, "exec"), ns)
    return ns


def _losses(out: str) -> list[float]:
    """The numbers of the `step loss` lines the two-layer scripts print."""
    return [float(m.group(2)) for m in re.finditer(r"^\s*(\d+) ([-\d.e+]+)$", out, re.M)]


def _shape(text: str) -> str:
    """The text with numbers replaced by N (what must match between the libraries)."""
    return re.sub(r"\s+", "", re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?%?", "N", text))


def test_two_layer_numpy():
    losses = _losses(run("two_layer_numpy.py", "--steps", "120"))
    assert len(losses) == 3 and losses[-1] < losses[0] / 100


@pytest.mark.parametrize("script", ["two_layer_tensor.py", "two_layer_autograd.py", "two_layer_nn.py"])
def test_two_layer_by_hand_and_autograd(script, tmp_path):
    out = run(script, "--quick")
    losses = _losses(out)
    assert len(losses) == 2 and losses[1] < losses[0] / 100  # the fit improves fast
    if script == "two_layer_autograd.py":
        assert out.splitlines()[:3] == ["tensor(1.)", "tensor(2.)", "tensor(1.)"]  # dy/dw, dy/dx, dy/db
    if script == "two_layer_nn.py":  # prints the model and a Parameter: torch's text, numbers aside
        import torch

        model = torch.nn.Sequential(torch.nn.Linear(1000, 100, bias=False), torch.nn.ReLU(),
                                    torch.nn.Linear(100, 10, bias=False))
        torch.nn.init.normal_(model[0].weight)
        assert repr(model) in out
        assert _shape(repr(model[0].weight)) in _shape(out)


@pytest.mark.parametrize("args", [(), ("--optimizer", "adam")])
def test_two_layer_optim(args, tmp_path):
    out = run("two_layer_optim.py", "--quick", *args)
    losses = _losses(out)
    assert len(losses) == 2 and losses[1] < losses[0]


def test_two_layer_module(tmp_path):
    out = run("two_layer_module.py", "--quick")
    losses = _losses(out)
    assert len(losses) == 2 and losses[1] < losses[0]
    assert repr(torch_version("two_layer_module.py")["TwoLayerNet"](1000, 100, 10)) in out


def test_fizzbuzz(tmp_path):
    out = run("fizzbuzz.py", "--quick")
    lines = out.splitlines()
    assert lines[:15] == ["1", "2", "fizz", "4", "buzz", "fizz", "7", "8", "fizz", "buzz", "11", "fizz", "13", "14",
                          "fizzbuzz"]
    epochs = [ln for ln in lines if ln.startswith("Epoch:")]
    assert len(epochs) == 10 and float(epochs[-1].split()[-1]) < float(epochs[0].split()[-1])
    preds = eval(next(ln for ln in lines if ln.startswith("['1'")))  # the 100 answers it gives
    assert len(preds) == 100 and set(preds) <= {str(i) for i in range(1, 101)} | {"fizz", "buzz", "fizzbuzz"}
    count = int(next(ln for ln in lines if ln.isdigit() and int(ln) > 15))
    assert 16 <= count <= 100
    ns = torch_version("fizzbuzz.py")
    assert [ns["fizz_buzz_decode"](i, ns["fizz_buzz_encode"](i)) for i in range(1, 16)] == lines[:15]


def test_digits_cnn(tmp_path):
    png = tmp_path / "curve.png"
    out = run("digits_cnn.py", "--quick", "--plot", str(png), tmp=tmp_path)
    assert "DigitsCNN(\n  (features): Sequential(\n    (0): Conv2d(1, 32, kernel_size=(3, 3)" in out
    bars = [ln for ln in out.replace("\r", "\n").splitlines() if ln.startswith("epoch ")]
    assert any("[" + "#" * 30 + "]" in b for b in bars)  # the bar fills up
    done = [b for b in bars if "test accuracy" in b]
    assert len(done) == 2
    acc = float(re.findall(r"test accuracy ([\d.]+)%", out)[-1])
    assert acc > 50.0  # two epochs already learn most digits
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "no loss curve saved" in out
    else:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert repr(torch_version("digits_cnn.py")["DigitsCNN"]()) in out


def test_digits_cnn_synthetic_data(tmp_path):
    out = run("digits_cnn.py", "--quick", "--synthetic", "--plot", "", tmp=tmp_path)
    assert out.startswith("synthetic: 1437 training and 360 test images of shape (1, 8, 8)")
    assert float(re.findall(r"test accuracy ([\d.]+)%", out)[-1]) > 50.0

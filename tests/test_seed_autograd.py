"""The autograd cells of the seed tutorials, run unchanged with `torch` = tracegrad and
`torch` = torch; what each cell prints (or, for a bare last expression, displays as a
notebook would) must be the same text, with `tracegrad.` written as `torch.` and object
addresses (`<AddBackward0 object at 0x...>`) blanked.

Cells that draw random numbers get them from one seeded NumPy generator in both runs
(`torch.rand/randn` are replaced in the namespace the cell sees), so their printouts
can be compared exactly too. Only the training loop's float32 losses, whose matmuls
sum in a different order, are compared with a tolerance."""
from __future__ import annotations

import ast
import contextlib
import io
import re

import numpy as np
import pytest

import torch  # the reference; part of the test extra

import tracegrad  # noqa: E402

# (tutorial, cell, source): the tutorials' own code; one namespace per tutorial, cells in order
CELLS = [
    # ---- 000: PyTorch 自动微分
    ("000", "In[57]", """
x1 = torch.ones(2, 2, requires_grad=True)
x2 = torch.ones(2, 2, requires_grad=False)
print(x1)
print(x2)
"""),
    ("000", "In[58]", """
y1 = x1 + 2
y2 = x2 + 2
print(y1)
print(y2)
"""),
    ("000", "In[59]", """
print(y1.grad_fn)
print(y2.grad_fn)
"""),
    ("000", "In[60]", """
z1 = y1 * y1 * 3
z2 = y2 * y2 * 3

out1 = z1.mean()
out2 = z2.mean()

print(z1)
print(z2)
print(out1)
print(out2)
"""),
    ("000", "In[61]", """
a = torch.randn(2, 2)
a = ((a * 3) / (a - 1))
print(a.requires_grad)
a.requires_grad_(True)
print(a.requires_grad)
b = (a * a).sum()
print(b.grad_fn)
"""),
    ("000", "In[62]", "out1.backward()"),
    ("000", "In[63]", """
print(x1.grad)
print(x2.grad)
"""),
    ("000", "In[64]", """
x = torch.randn(3, requires_grad=True)
y = x * 2
while y.data.norm() < 1000:
    y = y * 2
print(y)
"""),
    ("000", "In[65]", """
v = torch.tensor([0.1, 1.0, 0.0001], dtype=torch.float)
y.backward(v)

print(x.grad)
"""),
    ("000", "In[66]", """
print(x.requires_grad)
print((x**2).requires_grad)

with torch.no_grad():
    print((x**2).requires_grad)
"""),
    # ---- 001: 求導原理
    ("001", "c1", """
x = torch.randn(3,4,requires_grad=True)
x
"""),
    ("001", "c2", """
b = torch.randn(3,4,requires_grad=True)
b
"""),
    ("001", "c3", """
t = 2*x*x + b
y = t.sum()
y
"""),
    ("001", "c4", "y.backward()"),
    ("001", "c5", "x.requires_grad, b.requires_grad, t.requires_grad"),
    ("001", "c6", "x.grad"),
    ("001", "c7", "x.grad == 4*x"),
    # ---- 002: Variable and autograd
    ("002", "In[4]", "from torch.autograd import Variable" if False else "Variable = torch.autograd.Variable"),
    ("002", "In[4]b", """
x = Variable(torch.ones(2,3))
x
"""),
    ("002", "In[5]", "x.requires_grad_()"),
    ("002", "In[7]", "y = x ** 2"),
    ("002", "In[8]", "y.backward()"),
    ("002", "In[9]", "y.backward(torch.ones_like(x))"),
    ("002", "In[12]", "x.grad"),
    ("002", "In[29]", """
def func(x):
    return x**2 * torch.exp(x)

def pfunc(x):
    return 2*x*torch.exp(x) + x**2 * torch.exp(x)
"""),
    ("002", "In[39]", """
x = Variable(torch.rand(3,4), requires_grad=True)
# x.requires_grad_()
x
"""),
    ("002", "In[40]", "y = func(x)"),
    ("002", "In[41]", "y.backward(torch.ones_like(x)) # 这里一定要设置形式像要求导的x一样"),
    ("002", "In[43]", "x.grad"),
    ("002", "In[45]", "pfunc(x)"),
    # ---- 003: 简单的autograd, then the two-layer net with autograd
    ("003", "c1", """
x = torch.tensor(1., requires_grad=True)
w = torch.tensor(2., requires_grad=True)
b = torch.tensor(3., requires_grad=True)

y = w * x + b
y.backward()

print(x.grad)
print(w.grad)
print(b.grad)
"""),
    ("003", "c2", """
dtype = torch.float
device = torch.device("cpu")
N, D_in, H, D_out = 64, 1000, 100, 10

x = torch.randn(N, D_in, device=device, dtype=dtype)
y = torch.randn(N, D_out, device=device, dtype=dtype)
w1 = torch.randn(D_in, H, device=device, dtype=dtype, requires_grad=True)
w2 = torch.randn(H, D_out, device=device, dtype=dtype, requires_grad=True)

learning_rate = 1e-6
for t in range(500):
    y_pred = x.mm(w1).clamp(min=0).mm(w2)

    loss = (y_pred - y).pow(2).sum()
    if t % 50 == 0:
        print(t, loss.item())

    loss.backward()

    with torch.no_grad():
        w1 -= learning_rate * w1.grad
        w2 -= learning_rate * w2.grad

        w1.grad.zero_()
        w2.grad.zero_()
"""),
    # ---- 004: 自动求梯度（Autograd）
    ("004", "In[85]", """
# 标量求梯度
w = torch.tensor([1.], requires_grad=True)
x = torch.tensor([2.], requires_grad=True)
a = torch.add(w, x)
b = torch.add(w, 1)
y = torch.mul(a, b)

 # x是直接创建的，所以它没有grad_fn
print(x.grad_fn)
print(a.grad_fn)

y.backward()
print(w.grad)
""".replace("\n # x", "\n# x")),
    ("004", "In[86]", """
# 注意grad是累加的
y2 = w.sum()
y2.backward()      # 梯度未清零，累加梯度
print(w.grad)

y3 = w.sum()
w.grad.data.zero_()
y3.backward()      # 梯度清零后，x的梯度为1
print(w.grad)
"""),
    ("004", "In[87]", """
from torch.autograd import Function
""" if False else """
Function = torch.autograd.Function

class Exp(Function):                    # 此层计算e^x
    @staticmethod
    def forward(ctx, i):                # 模型前向
        result = i.exp()
        ctx.save_for_backward(result)   # 保存所需内容，以备backward时使用，所需的结果会被保存在saved_tensors元组中；
                                        # 此处仅能保存tensor类型变量，若其余类型变量（Int等），可直接赋予ctx作为成员变量，也可以达到保存效果
        return result
    @staticmethod
    def backward(ctx, grad_output):     # 模型梯度反传
        result, = ctx.saved_tensors     # 取出forward中保存的result
        return grad_output * result     # 计算梯度并返回


# 尝试使用
x = torch.tensor([1.], requires_grad=True)  # 需要设置tensor的requires_grad属性为True，才会进行梯度反传
ret = Exp.apply(x)                          # 使用apply方法调用自定义autograd function
print(ret)                                  # tensor([2.7183], grad_fn=<ExpBackward>)
ret.backward()                              # 反传梯度
print(x.grad)                               # tensor([2.7183])
"""),
]

# cells whose numbers come from float32 matmul loops: compared with a tolerance
CLOSE = {("003", "c2")}


class _Seeded:
    """The `torch` a cell sees: the library itself, except that rand/randn draw from one
    seeded NumPy generator, so both libraries start from the same numbers."""

    def __init__(self, lib, seed: int):
        self._lib = lib
        self._rng = np.random.default_rng(seed)

    def __getattr__(self, name):
        return getattr(self._lib, name)

    def _make(self, arr, dtype, device, requires_grad):
        t = self._lib.tensor(np.asarray(arr, dtype=np.float64), dtype=dtype or self._lib.get_default_dtype(),
                             device=device)
        return t.requires_grad_(True) if requires_grad else t

    def rand(self, *size, dtype=None, device=None, requires_grad=False):
        shape = tuple(size[0]) if len(size) == 1 and not isinstance(size[0], int) else size
        return self._make(self._rng.random(shape), dtype, device, requires_grad)

    def randn(self, *size, dtype=None, device=None, requires_grad=False):
        shape = tuple(size[0]) if len(size) == 1 and not isinstance(size[0], int) else size
        return self._make(self._rng.standard_normal(shape), dtype, device, requires_grad)


def _run_cell(src: str, ns: dict) -> str:
    """Run a cell like a notebook: print()s are kept, and a bare last expression is displayed."""
    tree = ast.parse(src)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            exec(compile(tree, "<cell>", "exec"), ns)
            if last is not None:
                value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), ns)
                if value is not None:
                    print(repr(value))
    except Exception as e:  # the tutorials show their errors too (002 In[8])
        buf.write(f"{type(e).__name__}: {e}\n")
    return buf.getvalue()


def _normalize(text: str) -> str:
    text = text.replace("tracegrad.", "torch.")
    return re.sub(r"object at 0x[0-9a-fA-F]+", "object at 0x?", text)


def run_tutorial(lib, tut: str) -> dict:
    ns = {"torch": _Seeded(lib, seed=int(tut)), "np": np, "__name__": "__cells__"}
    return {name: _normalize(_run_cell(src, ns)) for t, name, src in CELLS if t == tut}


_CACHE: dict = {}


def outputs(tut: str):
    if tut not in _CACHE:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            _CACHE[tut] = (run_tutorial(tracegrad, tut), run_tutorial(torch, tut))
        finally:
            torch.set_num_threads(threads)
    return _CACHE[tut]


NUM = re.compile(r"-?\d+\.?\d*(?:e[+-]?\d+)?")


@pytest.mark.parametrize("tut,cell", [(t, c) for t, c, _ in CELLS], ids=[f"{t}-{c}" for t, c, _ in CELLS])
def test_cell_prints_like_torch(tut, cell):
    ours, ref = (o[cell] for o in outputs(tut))
    if (tut, cell) in CLOSE:
        assert NUM.sub("N", ours) == NUM.sub("N", ref)
        a = np.array([float(x) for x in NUM.findall(ours)])
        b = np.array([float(x) for x in NUM.findall(ref)])
        np.testing.assert_allclose(a, b, rtol=2e-3, err_msg=f"\n--- tracegrad ---\n{ours}\n--- torch ---\n{ref}")
    else:
        assert ours == ref, f"\n--- tracegrad ---\n{ours}\n--- torch ---\n{ref}"


def test_tutorial_error_cell_is_torchs_error():
    ours, ref = (o["In[8]"] for o in outputs("002"))
    assert ours == ref == "RuntimeError: grad can be implicitly created only for scalar outputs\n"


def test_tutorial_exp_prints_exp_backward():
    ours, _ = (o["In[87]"] for o in outputs("004"))
    assert ours.splitlines()[0] == "tensor([2.7183], grad_fn=<ExpBackward>)"

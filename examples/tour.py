"""A tour of tracegrad: the tensor cells of five PyTorch tutorials, run unchanged.

    python examples/tour.py

Each tutorial below is a real PyTorch tutorial (their prose is Chinese; the code
is plain PyTorch). Only their *tensor* cells are here: creation, arithmetic,
indexing, views, NumPy interop, broadcasting. Their autograd and nn cells live in
the other examples. The one change to the tutorials' code is the import line:

    import tracegrad as torch

so what is printed is what PyTorch prints, with `tracegrad.` where PyTorch writes
`torch.` (`tracegrad.Size([5, 3])`, `dtype=tracegrad.float64`).

A notebook shows the value of a cell's last expression; a script does not, so
those displays are written as `print(...)` (or `print(repr(...))` for NumPy
arrays, whose notebook display is their repr). Cells that used a GPU pick
`cuda` only when one is present. Each `# %%` line starts one notebook cell;
tests/test_seed_tensor_cells.py runs every cell with tracegrad and with PyTorch
and compares what they print.
"""
import numpy as np

import tracegrad as torch

# %% 000 heading
print("=" * 72)
print("Tutorial 000: PyTorch and NumPy side by side (PyTorch与Numpy对比)")
print("=" * 72)

# %% 000 In[12]
x1 = torch.rand(5, 3)
x2 = np.random.rand(5, 3)
print(x1)
print(x2)

# %% 000 In[13]
x1 = torch.empty(5, 3)  # uninitialised memory: whatever it holds
x2 = np.empty((5, 3))
print(x1)
print(x2)

# %% 000 In[14]
x1 = torch.zeros(5, 3, dtype=torch.long)
x2 = np.zeros((5, 3), dtype=np.long)
print(x1)
print(x2)

# %% 000 In[15]
x1 = torch.tensor([5.5, 3])
x2 = np.array([5.5, 3])
print(x1)
print(x2)

# %% 000 In[16]
x1 = x1.new_ones(5, 3, dtype=torch.double)
x2 = np.ones((5, 3), dtype=np.double)
print(x1)
print(x2)
x3 = torch.rand_like(x1, dtype=torch.float)
# result has the same size
print(x3)

# %% 000 In[17]
x5 = np.empty((5, 3))
print(repr(x5))

# %% 000 In[18]
print(x3.size())
print(x2.shape)

# %% 000 In[19]
y1 = torch.rand(5, 3)
y2 = np.random.random((5, 3))
print(y1)
print(y2)
print(x1 + y1)
print(x2 + y2)

# %% 000 In[20]
print(torch.add(x1, y1))
print(np.add(x2, y2))

# %% 000 In[21]
result1 = torch.empty(5, 3)
torch.add(x1, y1, out=result1)
print(result1)

result2 = np.empty((5, 3))
np.add(x2, y2, out=result2)
print(result2)

# %% 000 In[22]
print(y1.add_(x1))

# %% 000 In[23]
x1 = x1.new_empty(5, 3, dtype=torch.double)
x2 = np.empty((5, 3), dtype=np.double)
print(x1)
print(x2)

# %% 000 In[24]
print(y1.add_(x1))

# %% 000 In[25]
print(x1[:, 1])
print(x2[:, 1])

# %% 000 In[26]
x1 = torch.randn(4, 4)
y1 = x1.view(16)
z1 = x1.view(-1, 8)  # the size -1 is inferred from other dimensions
x2 = np.random.randn(4, 4)
y2 = x2.reshape(16)
z2 = x2.reshape((-1, 8))  # 大小-1是从其他维度推断出来的
print(x1.size(), y1.size(), z1.size())
print(x2.shape, y2.shape, z2.shape)

# %% 000 In[27]
x1 = torch.randn(1)
y1 = torch.randn(4, 4)
x2 = np.random.randn(1)
y2 = np.random.randn(4, 4)
print(x1, x1.item(), y1[0, 0].item())
print(x2, x2[0], y2[0, 0])

# %% 000 In[28]
# pytorch的
x1 = torch.Tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
y1 = torch.Tensor([[2, 3, 4, 1], [6, 7, 8, 5]])
print("x1", x1)
print("y1", y1)
print('---用y1覆盖x1------')
z1 = x1.copy_(y1)
print("x1", x1)
print("y1", y1)
print("z1", z1)

print('---修改参数,x1,y1互不影响,z1与x1是同一参数------')
x1[0, 0] = 10
y1[0, 1] = 20
z1[0, 2] = 30
print("x1", x1)
print("y1", y1)
print("z1", z1)

x1.t_()
print(x1)

# %% 001 heading
print("=" * 72)
print("Tutorial 001: getting started (pytorch入門)")
print("=" * 72)

# %% 001 c1
x = torch.rand(5, 3)
print(x)

# %% 001 c2
print(x.size())

# %% 001 c3
x = torch.rand(5, 3)
y = torch.rand(5, 3)
print(x)
print(y)
add = x + y  # add=torch.add(x, y)
print(add)

# %% 001 c4
a = torch.ones(5)
print(a)
b = a.numpy()
print(repr(b))

# %% 001 c5
a = np.ones(5)
b = torch.from_numpy(a)
print(b)

# %% 002 heading
print("=" * 72)
print("Tutorial 002: indexing, shared memory, contiguity, broadcasting")
print("=" * 72)

# %% 002 In[19]
a = torch.randn(2, 3, 3)
print(a)

# %% 002 In[24]
print(a[0, ...])

# %% 002 In[25]
print(a[0, :, :])

# %% 002 In[26]
print(a > 0)

# %% 002 In[27]
print(a[a > 0])

# %% 002 In[28]
a = torch.rand(2, 2)
print(a)

# %% 002 In[30]
b = a.view(-1)
print(b)

# %% 002 In[34]
b[1] = 0
print(b)

# %% 002 In[36]
# 可以发现a，b的存储信息区不是共享的，但是数据是共享的
print(a)

# %% 002 In[64]
b = a.numpy()
# 下面两种方式转换成tensor
a = torch.from_numpy(b)
c = torch.Tensor(b)

# %% 002 In[47]
a = torch.rand(2, 3)
print(a)

# %% 002 In[48]
b = a.t()
print(b)

# %% 002 In[50]
a[0, 0] = 1
print(a)

# %% 002 In[53]
print(b.is_contiguous())

# %% 002 In[54]
try:
    b.view(-1)
except RuntimeError as e:  # the notebook stops here with this error
    print("RuntimeError:", e)

# %% 002 In[58]
# 因为b的数据是不连续的，所以不能使用view操作
print(b.contiguous())

# %% 002 In[59]
print(b.is_contiguous())

# %% 002 In[60]
b = b.contiguous()
print(b.is_contiguous())

# %% 002 In[63]
print(b.view(-1))

# %% 002 In[85]
a = torch.ones(2, 1)
print(a)

# %% 002 In[86]
b = torch.zeros(2, 2, 2)
print(b)

# %% 002 In[87]
res = a + b
print(res.shape)

# %% 002 In[92]
print(res)

# %% 002 In[88]
print(a.unsqueeze(0).shape)

# %% 002 In[94]
print(a.unsqueeze(0).expand(2, 2, 2))

# %% 003 heading
print("=" * 72)
print("Tutorial 003: tensors, the NumPy bridge, and a two-layer net by hand")
print("=" * 72)

# %% 003 c1
x = torch.empty(5, 3)  # 构造一个未初始化的 5x3 矩阵
print(x)

# %% 003 c2
x = torch.rand(5, 3)  # 构建一个随机初始化的矩阵
print(x)

# %% 003 c3
x = torch.zeros(5, 3, dtype=torch.long)
x1 = torch.zeros(5, 3).long()
print(x)
print(x1.dtype)

# %% 003 c4
x = torch.tensor([5.5, 3])
print(x)

# %% 003 c5
x = x.new_ones(5, 3, dtype=torch.double)
print(x)

# %% 003 c6
x = torch.randn_like(x, dtype=torch.float)
print(x)

# %% 003 c7
print(x.size())
print(x.shape)

# %% 003 c8
y = torch.rand(5, 3)
print(x + y)
print(torch.add(x, y))
result = torch.empty(5, 3)
torch.add(x, y, out=result)
print(result)

# %% 003 c9
y.add_(x)  # in-place: y changes
print(y)

# %% 003 c10
print(x[1:, 1:])

# %% 003 c11
x = torch.randn(4, 4)
y = x.view(16)
z = x.view(-1, 8)
print(z)

# %% 003 c12
x = torch.randn(1)
print(x)
print(x.item())

# %% 003 c13
print(z.t())

# %% 003 c14
if torch.cuda.is_available():
    device = torch.device("cuda")
    y = torch.ones_like(x, device=device)
    x = x.to(device)
    z = x + y
    print(z)
    print(z.to("cpu", torch.double))

# %% 003 c15
print(repr(y.to("cpu").data.numpy()))
print(repr(y.cpu().data.numpy()))

# %% 003 c16
# A fully connected ReLU net with one hidden layer and no bias, trained with an
# L2 loss, forward and backward written by hand with tensor ops (no autograd):
# mm for np.dot, clamp for np.maximum, pow for np.square, t for .T, clone for copy.
dtype = torch.float
device = torch.device("cpu")
N, D_in, H, D_out = 64, 1000, 100, 10

x = torch.randn(N, D_in, device=device, dtype=dtype)
y = torch.randn(N, D_out, device=device, dtype=dtype)
w1 = torch.randn(D_in, H, device=device, dtype=dtype)
w2 = torch.randn(H, D_out, device=device, dtype=dtype)

learning_rate = 1e-6
for t in range(500):
    h = x.mm(w1)
    h_relu = h.clamp(min=0)
    y_pred = h_relu.mm(w2)

    loss = (y_pred - y).pow(2).sum().item()
    if t % 50 == 0:
        print(t, loss)

    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h_relu.t().mm(grad_y_pred)
    grad_h_relu = grad_y_pred.mm(w2.t())
    grad_h = grad_h_relu.clone()
    grad_h[h < 0] = 0
    grad_w1 = x.t().mm(grad_h)

    w1 -= learning_rate * grad_w1
    w2 -= learning_rate * grad_w2

# %% 004 heading
print("=" * 72)
print("Tutorial 004: creating and operating on tensors")
print("=" * 72)
device = "cuda" if torch.cuda.is_available() else "cpu"  # the tutorial used 'cuda'

# %% 004 In[28]
# 创建一个2x3的未初始化的Tensor
x1 = torch.empty(2, 3)
# 创建一个2x3的随机初始化的Tensor
x2 = torch.rand(2, 3)
# 创建一个2x3的long型全0的Tensor
x3 = torch.zeros(2, 3, dtype=torch.long)
# 为每一个元素以给定的mean和std用高斯分布生成随机数
x4 = torch.normal(mean=0.5, std=torch.arange(1., 6.))
# randn 服从N(0，1)的正态分布
x5 = torch.randn(2, 3)

print(x1, x2, x3, x4, x5, sep="\n")

# %% 004 In[32]
# 根据不同数据类型创建
x1 = torch.tensor([[5, 5, 3], [2, 2, 5]])
x2 = torch.tensor(np.array([[1, 2, 3], [4, 5, 6]]))
x3 = torch.from_numpy(np.array([[1, 2, 3], [4, 5, 6]]))
print(x1, x2, x3, sep="\n")

# %% 004 In[35]
x = torch.tensor([[1, 2, 3], [4, 5, 6]])
# 返回的tensor默认具有相同的torch.dtype和torch.device
x1 = x.new_ones(2, 3, dtype=torch.float64)
# 指定新的数据类型
x2 = torch.randn_like(x, dtype=torch.float, device=device)
print(x1, x2, sep="\n")

# %% 004 In[43]
x = torch.ones(2, 3)
y = torch.eye(2, 3)
# 加法形式1
s1 = x + y
# 加法形式2
s2 = torch.add(x, y)
# 加法形式3，inplace(原地操作)，原值修改
s3 = y.add_(x)

print(x, y, s1, s2, s3, y, sep="\n")

# %% 004 In[45]
x = torch.ones(2, 3, device=device)
y = x[0, :]
y += 1

print(x, y, x[0, :], sep="\n")

# %% 004 In[46]
x = torch.randn(3, 4)
indices = torch.LongTensor([0, 2])
y = torch.index_select(x, 0, indices)
print(x, indices, y, sep="\n")

# %% 004 In[51]
x = torch.ones(2, 4)
# 一个tensor必须是连续的contiguous()才能被查看。
y1 = x.view(8)
y2 = x.view(-1, 8)  # -1所指的维度可以根据其他维度的值推出来

print(x, y1, y2, x.size(), y1.size(), y2.size(), sep="\n")

# %% 004 In[52]
x += 1
print(x)
print(y1)  # 也加了1

# %% 004 In[53]
x1 = x.clone()
y3 = x.view(-1)
x1 += 1

print(x1, y3, sep="\n")

# %% 004 In[56]
_input = torch.tensor([[0.9, 0, 0], [0, 0.6, 0], [0, 0.7, 0]])
index = torch.tensor([0, 1, 1])
print(_input, index, index.view(-1, 1), sep="\n")

# %% 004 In[30]
print(_input.gather(dim=1, index=index.view(-1, 1)))
# dim=1，表示的是在第二维度上操作。

# %% 004 In[57]
# x 中第一行的2个 元素被广播(复制)到了第二行和第三行
# y 中第一列的3个元素被广播(复制)到 了第二列
x = torch.arange(1, 3).view(1, 2)
y = torch.arange(1, 4).view(3, 1)
print(x, y, x + y, sep="\n")

# %% 004 In[63]
# Tensor转NumPy数组
x = torch.ones(3)
y = x.numpy()
x += 1
y += 1
print(x, y)

# NumPy数组转 Tensor
x = np.ones(3)
y = torch.from_numpy(x)
x += 1
y += 1
print(x, y)

# %% 004 In[65]
# 使用torch.tensor()将NumPy数组转换成Tensor(不再共享内存)
x = np.ones(3)
y = torch.tensor(x)
x += 1
print(x, y)

"""The layer classes of `tracegrad.nn` (laid out as torch.nn.modules is)."""
from .module import Module
from .container import Sequential, ModuleList, ModuleDict, ParameterList, ParameterDict
from .linear import Identity, Linear, Bilinear
from .activation import (ReLU, ReLU6, LeakyReLU, GELU, SiLU, ELU, Softplus, Hardtanh, Sigmoid, Tanh, Softmax,
                         Softmin, LogSoftmax, LogSigmoid, Hardsigmoid, Hardswish, Mish, SELU, CELU, Softsign,
                         Tanhshrink, Threshold, GLU)
from .dropout import Dropout, Dropout2d
from .flatten import Flatten, Unflatten
from .sparse import Embedding
from .conv import Conv2d
from .padding import (ZeroPad1d, ZeroPad2d, ConstantPad1d, ConstantPad2d, ReflectionPad1d, ReflectionPad2d,
                      ReplicationPad1d, ReplicationPad2d, CircularPad1d, CircularPad2d)
from .pooling import MaxPool2d, AvgPool2d, AdaptiveAvgPool2d
from .normalization import LayerNorm, BatchNorm1d, BatchNorm2d
from .loss import (L1Loss, MSELoss, SmoothL1Loss, HuberLoss, NLLLoss, CrossEntropyLoss, BCELoss, BCEWithLogitsLoss,
                   KLDivLoss)

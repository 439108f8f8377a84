"""`tracegrad.nn`: modules, parameters, losses, `functional`, `init` and `utils`, as torch.nn.

    import tracegrad as torch
    model = torch.nn.Sequential(torch.nn.Linear(10, 100), torch.nn.ReLU(), torch.nn.Linear(100, 4))
"""
from .parameter import Parameter
from .modules import *  # noqa: F401,F403
from .modules import Module
from . import functional, init, utils, modules

__all__ = ["Parameter", "Module", "functional", "init", "utils", "modules"]
__all__ += [n for n in dir(modules) if n[:1].isupper()]

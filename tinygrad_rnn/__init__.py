"""tinygrad_rnn: a small, exact autograd engine on numpy, for seeing how recurrent networks learn.

    import tinygrad_rnn as tr
    x = tr.Tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()      # x.grad == [2, 4]
"""
from .gradcheck import GradcheckError, gradcheck
from .rng import manual_seed
from .tensor import Tensor, cat, detect_anomaly, is_grad_enabled, linear, no_grad, scope, stack
from . import bptt, nn, optim
from .io import CheckpointError, load, save
from .compile import compile

__version__ = "0.1.0"

__all__ = ["Tensor", "cat", "stack", "linear", "no_grad", "is_grad_enabled", "scope", "detect_anomaly",
           "manual_seed", "gradcheck", "GradcheckError", "nn", "optim", "bptt", "compile", "save",
           "load", "CheckpointError"]

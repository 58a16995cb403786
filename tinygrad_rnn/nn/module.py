"""Parameter and Module: learnable weights, and the containers that find them.

A Module finds its Parameters and sub-modules by looking at its own
attributes, in the order they were assigned (and inside lists, tuples and dicts of
them), so a model is just a class whose ``__init__`` assigns weights and
layers::

    class Readout(nn.Module):             # y(t) = B h(t)
        def __init__(self, hidden, out):
            self.B = nn.Parameter(np.zeros((out, hidden)))

        def forward(self, h):
            return h @ self.B.T
"""
from collections.abc import Mapping

import numpy as np

from ..tensor import Tensor


def check_size(owner, what, value):
    """``value`` as a positive int, or a ValueError naming ``owner`` and ``what``.

    The one check of every layer's sizes (in_features, hidden_size, num_layers, ...).
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{owner}: {what} must be a positive int, got {value!r}")
    return int(value)


class Parameter(Tensor):
    """A learnable Tensor: ``requires_grad=True``, found by :class:`Module`.

    Like ``Tensor``, a floating ndarray is used as it is (not copied), and
    Python numbers and lists become float32.
    """
    __slots__ = ()

    def __init__(self, data, dtype=None, name=None):
        super().__init__(data, requires_grad=True, dtype=dtype, name=name)

    def __repr__(self):
        return "Parameter" + super().__repr__()[len("Tensor"):]


class Module:
    """Base class of layers and models; ``model(x)`` calls ``model.forward(x)``.

    ``training`` is True until :meth:`eval` (dropout acts only in training).
    An attribute that holds a Parameter takes only a Parameter: assigning a
    plain Tensor, an array or None there raises, because the weight would
    silently drop out of :meth:`parameters` and :meth:`state_dict`.
    """
    training = True

    def __setattr__(self, name, value):
        held = vars(self).get(name)
        if isinstance(held, Parameter) and not isinstance(value, Parameter):
            owner = type(self).__name__
            raise TypeError(
                f"{owner}: cannot assign a {type(value).__name__} to '{name}', which holds a "
                f"Parameter: it would drop out of parameters() and state_dict(). Assign "
                f"nn.Parameter(array), or change the values in place with .data = array")
        object.__setattr__(self, name, value)

    def __call__(self, *args, **kwargs):
        forward = getattr(self, "forward", None)
        if forward is None:
            raise TypeError(f"{type(self).__name__} has no forward() method; "
                            "a Module subclass defines forward(...) to be callable")
        return forward(*args, **kwargs)

    def train(self, mode=True):
        """Set ``training`` to ``mode`` on this module and every sub-module; returns self."""
        if not isinstance(mode, bool):
            raise TypeError(f"train: mode must be True or False, got {mode!r}")
        for module in self.modules():
            module.training = mode
        return self

    def eval(self):
        """Evaluation mode, ``train(False)``: dropout becomes the identity; returns self."""
        return self.train(False)

    def modules(self):
        """This module and every sub-module below it, each once, depth first in assignment order."""
        found, seen, pending = [], {}, [self]
        while pending:
            module = pending.pop()
            if id(module) in seen:
                continue
            seen[id(module)] = True
            found.append(module)
            pending += [child for _, child in reversed(module.named_children())]
        return found

    def named_children(self):
        """(name, module) of direct sub-modules, in assignment order; list items as ``name.i``,
        dict items as ``name.key``."""
        return [(name, value) for name, value in self._named_members() if isinstance(value, Module)]

    def named_parameters(self, prefix=""):
        """(dotted name, Parameter) of every parameter, in assignment order.

        A Parameter (or sub-module) reachable twice, as with tied weights, is
        listed once, under the first name found.
        """
        found, seen = [], {}
        self._collect(prefix, found, seen)
        return found

    def _named_members(self):
        """(name, value) of attributes that are Parameters or Modules; list items as ``name.i``,
        dict items as ``name.key`` (a dict of layers would otherwise be silently left untrained)."""
        members = []
        for name, value in vars(self).items():
            if isinstance(value, (list, tuple)):
                items = [(f"{name}.{i}", item) for i, item in enumerate(value)]
            elif isinstance(value, dict):
                items = [(f"{name}.{key}", item) for key, item in value.items()]
            else:
                items = [(name, value)]
            members += [(n, item) for n, item in items if isinstance(item, (Parameter, Module))]
        return members

    def _collect(self, prefix, found, seen):
        seen[id(self)] = True
        for name, value in self._named_members():
            if id(value) in seen:
                continue
            if isinstance(value, Parameter):
                seen[id(value)] = True
                found.append((prefix + name, value))
            else:
                value._collect(prefix + name + ".", found, seen)

    def parameters(self):
        """Every Parameter, in the order of :meth:`named_parameters`."""
        return [p for _, p in self.named_parameters()]

    def zero_grad(self):
        """Forget every parameter's gradient (``.grad = None``)."""
        for p in self.parameters():
            p.grad = None

    def state_dict(self):
        """Dotted parameter name -> a copy of its ndarray, in :meth:`named_parameters` order."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state, strict=True):
        """Copy arrays from ``state`` into the parameters, cast to each one's dtype.

        ``state`` maps dotted names to ndarrays or Tensors (a PyTorch
        state_dict converted with ``{k: v.numpy() for k, v in sd.items()}``
        loads as it is). All or nothing: every key and shape is checked first,
        and any missing key (with ``strict``), unexpected key (with
        ``strict``), shape mismatch, non-numeric value or value too large for
        the parameter's dtype (1e300 into float32) raises a ValueError naming
        them, with no parameter changed. Returns
        ``(missing_keys, unexpected_keys)``.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict into {type(self).__name__}: expected a dict "
                            f"of name -> array, got {type(state).__name__}")
        params = dict(self.named_parameters())
        missing = [k for k in params if k not in state]
        unexpected = [k for k in state if k not in params]
        problems = []
        if strict:
            problems += [f"missing key '{k}' (expected shape {params[k].shape})" for k in missing]
            problems += [f"unexpected key '{k}'" for k in unexpected]
        arrays = {}
        for key, p in params.items():
            if key in state:
                array, problem = _numeric_array(key, state[key], p.shape, p.dtype)
                if problem:
                    problems.append(problem)
                else:
                    arrays[key] = array
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__}: "
                             + "; ".join(problems) + " (nothing was loaded)")
        for key, array in arrays.items():
            params[key].data = array
        return missing, unexpected

    def to(self, dtype):
        """Cast every parameter (and gradient) to the floating ``dtype`` in place; returns self.

        Create optimizers after ``to``: their running averages keep the
        dtype the parameters had when the optimizer first stepped.
        """
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"to: parameters need a floating dtype, got {dtype}")
        for p in self.parameters():
            p.data = p.data.astype(dtype, copy=False)
            if p.grad is not None:
                p.grad = p.grad.astype(dtype, copy=False)
        return self

    def extra_repr(self):
        """Text shown inside this module's parentheses in ``repr``."""
        return ""

    def __repr__(self):
        children = self.named_children()
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({name}): " + repr(child).replace("\n", "\n  ") for name, child in children]
        return f"{type(self).__name__}({self.extra_repr()}\n" + "\n".join(lines) + "\n)"


def _numeric_array(key, value, shape, dtype):
    """(a new ndarray of ``dtype``, None) for a numeric value of ``shape``, else (None, the problem)."""
    value = value.data if isinstance(value, Tensor) else value
    try:
        array = np.asarray(value)
    except Exception as error:  # whatever the foreign object raises (a torch tensor that requires grad)
        return None, f"key '{key}': cannot read it as an array ({error})"
    if array.dtype.kind not in "fiu":
        return None, f"key '{key}': expected real numbers, found dtype {array.dtype}"
    if array.shape != shape:
        return None, f"key '{key}': expected shape {shape}, found {array.shape}"
    with np.errstate(over="ignore"):
        cast = np.array(array, dtype=dtype)
    overflowed = ~np.isfinite(cast) & np.isfinite(array)
    if overflowed.any():
        return None, (f"key '{key}': the value {float(array[overflowed].flat[0]):g} does not fit "
                      f"the parameter's dtype {dtype} (it would become inf)")
    return cast, None

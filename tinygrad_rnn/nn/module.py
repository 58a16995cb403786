"""Parameter and Module: learnable weights, and the containers that find them.

A Module finds its Parameters and sub-modules by looking at its own
attributes, in the order they were assigned (and inside lists of them), so a
model is just a class whose ``__init__`` assigns weights and layers.
"""
import numpy as np

from ..tensor import Tensor


class Parameter(Tensor):
    """A learnable Tensor: ``requires_grad=True``, found by :class:`Module`."""
    __slots__ = ()

    def __init__(self, data, dtype=None, name=None):
        super().__init__(data, requires_grad=True, dtype=dtype, name=name)

    def __repr__(self):
        return "Parameter" + super().__repr__()[len("Tensor"):]


class Module:
    """Base class of layers and models; ``model(x)`` calls ``model.forward(x)``."""

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def named_children(self):
        """(name, module) of direct sub-modules, in assignment order; list items as ``name.i``."""
        children = []
        for name, value in vars(self).items():
            if isinstance(value, Module):
                children.append((name, value))
            elif isinstance(value, (list, tuple)):
                children += [(f"{name}.{i}", v) for i, v in enumerate(value) if isinstance(v, Module)]
        return children

    def named_parameters(self, prefix=""):
        """(dotted name, Parameter) of every parameter, in assignment order, each once."""
        found, seen = [], {}
        self._collect(prefix, found, seen)
        return found

    def _collect(self, prefix, found, seen):
        for name, value in vars(self).items():
            items = list(enumerate(value)) if isinstance(value, (list, tuple)) else [(None, value)]
            for i, item in items:
                full = prefix + name + ("" if i is None else f".{i}")
                if isinstance(item, Parameter):
                    if id(item) not in seen:
                        seen[id(item)] = True
                        found.append((full, item))
                elif isinstance(item, Module):
                    item._collect(full + ".", found, seen)

    def parameters(self):
        """Every Parameter, in the order of :meth:`named_parameters`."""
        return [p for _, p in self.named_parameters()]

    def zero_grad(self):
        """Forget every parameter's gradient (``.grad = None``)."""
        for p in self.parameters():
            p.grad = None

    def state_dict(self):
        """Dotted parameter name -> a copy of its ndarray."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state, strict=True):
        """Copy arrays from ``state`` into the parameters, cast to each one's dtype.

        All or nothing: every key and shape is checked first, and any missing
        key (with ``strict``), unexpected key (with ``strict``) or shape
        mismatch raises a ValueError naming them, with no parameter changed.
        Returns ``(missing_keys, unexpected_keys)``.
        """
        params = dict(self.named_parameters())
        missing = [k for k in params if k not in state]
        unexpected = [k for k in state if k not in params]
        problems = []
        if strict:
            problems += [f"missing key '{k}' (expected shape {params[k].shape})" for k in missing]
            problems += [f"unexpected key '{k}'" for k in unexpected]
        arrays = {}
        for key, p in params.items():
            if key not in state:
                continue
            value = state[key].data if isinstance(state[key], Tensor) else state[key]
            array = np.asarray(value)
            if array.dtype.kind not in "fiu":
                problems.append(f"key '{key}': expected numbers, found dtype {array.dtype}")
            elif array.shape != p.shape:
                problems.append(f"key '{key}': expected shape {p.shape}, found {array.shape}")
            else:
                arrays[key] = array
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__}: "
                             + "; ".join(problems) + " (nothing was loaded)")
        for key, array in arrays.items():
            params[key].data = np.array(array, dtype=params[key].dtype)
        return missing, unexpected

    def to(self, dtype):
        """Cast every parameter (and gradient) to ``dtype`` in place; returns self."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"to: parameters need a floating dtype, got {dtype}")
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            if p.grad is not None:
                p.grad = p.grad.astype(dtype)
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

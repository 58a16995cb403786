"""Linear and Embedding: the layers around a recurrent core.

A Linear layer is the article's readout y(t) = B h(t) (plus a bias); an
Embedding turns token indices into the input vectors x(t). The article is
"Recurrent Neural Networks (RNN)" by Gayathri Siva, Medium, 26 May 2021.
"""
import numpy as np

from ..rng import generator
from ..tensor import Tensor, linear
from .module import Module, Parameter, check_size


class Linear(Module):
    """y = x W^T + b, applied to the last axis.

    ``weight (out_features, in_features)``, ``bias (out_features,)``, both
    float32 and drawn from U(-1/sqrt(in_features), 1/sqrt(in_features))
    (PyTorch's default; repeatable after ``tr.manual_seed``). Input
    ``(..., in_features)`` -> output ``(..., out_features)``. As the article's
    readout, ``weight`` is B in y(t) = B h(t).
    """

    def __init__(self, in_features, out_features, bias=True):
        self.in_features = check_size("Linear", "in_features", in_features)
        self.out_features = check_size("Linear", "out_features", out_features)
        bound = 1 / np.sqrt(self.in_features)
        rng = generator()
        self.weight = Parameter(rng.uniform(-bound, bound, (self.out_features, self.in_features))
                                .astype(np.float32), name="weight")
        self.bias = (Parameter(rng.uniform(-bound, bound, self.out_features).astype(np.float32),
                               name="bias") if bias else None)

    def forward(self, x):
        """x ``(..., in_features)`` -> x W^T + b ``(..., out_features)``."""
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.dtype.kind != "f":
            raise TypeError(f"Linear: input must be floating point, got dtype {x.dtype}")
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: expected input of shape (..., {self.in_features}) "
                             f"(in_features={self.in_features}), got shape {x.shape}")
        return linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Embedding(Module):
    """A lookup table: index k -> row k of ``weight (num_embeddings, embedding_dim)``.

    ``weight`` is float32, drawn from N(0, 1) (PyTorch's default). Indices
    of any shape ``(...)`` -> vectors ``(..., embedding_dim)``; the gradient
    of each row is the sum over the positions that looked it up.
    """

    def __init__(self, num_embeddings, embedding_dim):
        self.num_embeddings = check_size("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = check_size("Embedding", "embedding_dim", embedding_dim)
        self.weight = Parameter(generator().standard_normal((self.num_embeddings, self.embedding_dim))
                                .astype(np.float32), name="weight")

    def forward(self, indices):
        """Integer ``indices (...)`` (Tensor, ndarray, list or int) -> ``(..., embedding_dim)``."""
        indices = _as_indices(indices)
        out_of_range = (indices < 0) | (indices >= self.num_embeddings)
        if out_of_range.any():
            bad = indices[out_of_range].flat[0]
            raise IndexError(f"Embedding: index {bad} is out of range for "
                             f"num_embeddings={self.num_embeddings} (valid: 0 to "
                             f"{self.num_embeddings - 1})")
        return self.weight[indices]

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


def _as_indices(indices):
    if isinstance(indices, Tensor):
        array = indices.data
    elif isinstance(indices, list) and not indices:
        array = np.zeros(0, dtype=np.int64)
    else:
        array = np.asarray(indices)
    if array.dtype.kind not in "iu":
        raise TypeError(f"Embedding: indices must be integers, got dtype {array.dtype}")
    return array

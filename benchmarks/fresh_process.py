"""The engine's and the hand-written numpy step in a process of their own, with glibc's defaults.

    python benchmarks/fresh_process.py M lstm 11 1   # config, cell, repetitions, BLAS threads

``make bench`` runs with glibc told to keep freed memory, so that every
implementation meets the same allocator, whatever ran before it in the
process (PyTorch's fused LSTM, for one, raises glibc's thresholds for the
rest of the process). This script shows what a user's own training process
sees without those settings: only the engine and the numpy step, timed
interleaved, with the minor page faults of one step of each.
"""
import json
import os
import subprocess
import sys

import machine
import measure
import steps

HERE = os.path.dirname(os.path.abspath(__file__))


def run_in_fresh_process(config_name, cell, reps, threads):
    """{"ratio": engine / numpy, "median_ms": {...}, "minor_page_faults": {...}} from a new
    Python process whose environment has no MALLOC_ variables."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    command = [sys.executable, os.path.join(HERE, "fresh_process.py"), config_name, cell, str(reps),
               str(threads)]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def main(config_name, cell, reps, threads):
    machine.set_blas_threads(threads)
    weights, x, targets = steps.make_problem(steps.CONFIGS[config_name], cell)
    functions = {impl: steps.build_step(impl, cell, weights, x, targets) for impl in ("engine", "numpy")}
    times = measure.interleaved_times(functions, reps)
    medians = {impl: measure.median(ts) for impl, ts in times.items()}
    faults = {impl: measure.minor_page_faults(function) for impl, function in functions.items()}
    print(json.dumps({"ratio": medians["engine"] / medians["numpy"],
                      "median_ms": {impl: t * 1e3 for impl, t in medians.items()},
                      "minor_page_faults": faults}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))

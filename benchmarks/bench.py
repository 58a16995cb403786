"""Speed and memory of tinygrad_rnn's training step, against hand-written numpy and PyTorch.

    .venv/bin/python benchmarks/bench.py                  # everything (make bench), a few minutes
    .venv/bin/python benchmarks/bench.py --quick          # smoke run: 3 repetitions, nothing saved
    .venv/bin/python benchmarks/bench.py --only S,M --cells lstm --reps 9
    .venv/bin/python benchmarks/bench.py --threads 1       # one BLAS thread for numpy and torch
    .venv/bin/python benchmarks/bench.py --profile --only M --cells lstm

The timed step (see ``steps.py``) runs a 1-layer RNN (tanh), LSTM or GRU over
T steps in float32, reads out K = I classes at every step, takes the mean
cross-entropy, backpropagates through time and applies one SGD update.
Figures are medians over interleaved repetitions after warm-up; ratios are
engine time / baseline time, so below 1 means the engine is faster. The
growth of backward from a short to a long unroll is the median over rounds
of the two times' ratio within a round, which a change in the machine's
speed between rounds does not move. A second table replays each engine
step's primitive calls without the graph, which splits the engine's time
into their numpy work and the rest (mostly the graph's bookkeeping). ``make
bench`` tells glibc to keep freed memory (MALLOC_ variables), so that every
implementation meets the same allocator whatever ran before it; a third
table runs the engine and the numpy step in a process of their own with
glibc's defaults (``fresh_process.py``), as a user's training process would.
A full run writes ``results.json`` and ``results.md`` next to this file.
"""
import argparse
import cProfile
import io
import json
import os
import pstats
import sys

import numpy as np

import compiled
import dezero_peer
import fresh_process
import machine
import measure
import record_cost
import steps
import table
import tinygrad_rnn as tr
from tinygrad_rnn import nn

torch = steps.torch
HERE = os.path.dirname(os.path.abspath(__file__))
IMPLEMENTATIONS = ("engine", "numpy", "torch-cells", "torch-fused")
SHORT_NAMES = {"numpy": "numpy", "torch-cells": "cells", "torch-fused": "fused"}

# The eager engine keeps the whole graph and pays for it per node: its per-node cost and
# peak memory are figures to read; the compiled step has the memory target (compiled.py).
# {baseline: the largest allowed engine / baseline time ratio}, on every row of the step table.
STEP_TARGETS = {"torch-cells": 1.3}
# The eager engine's training step against DeZero's, the peer written to be read.
DEZERO_LIMIT = 0.5
# The sizes whose compiled step is also timed warm (compiled.warm_times): at L a step is long
# enough that what ran before it does not show.
WARM_CONFIGS = ("S", "M")
# Backward through T steps should cost O(T): 10x the steps, about 10x the time.
UNROLL_LIMIT = 13.0


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 3 repetitions, short unrolls, results not saved")
    parser.add_argument("--only", default="S,M,L", help="configurations, e.g. S,M (default S,M,L)")
    parser.add_argument("--cells", default="rnn,lstm,gru", help="cells, e.g. lstm (default all three)")
    parser.add_argument("--reps", type=int, help="timed repetitions per figure (default 11; --quick 3)")
    parser.add_argument("--threads", type=int,
                        help="BLAS threads for numpy and torch alike (default: numpy's own count)")
    parser.add_argument("--no-save", action="store_true", help="do not write results.json/.md")
    parser.add_argument("--profile", action="store_true",
                        help="instead of timing, profile the engine's step of each selected "
                             "configuration and cell (cProfile, top 25 by tottime)")
    args = parser.parse_args(argv)
    args.only = _choices(parser, "--only", args.only, steps.CONFIGS)
    args.cells = _choices(parser, "--cells", args.cells, steps.CELLS)
    if args.reps is None:
        args.reps = 3 if args.quick else 11
    if args.reps < 1:
        parser.error(f"--reps must be at least 1, got {args.reps}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    args.save = not (args.quick or args.no_save or args.profile)
    return args


def _choices(parser, option, text, allowed):
    picked = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in picked if item not in allowed]
    if unknown or not picked:
        parser.error(f"{option}: expected a comma-separated subset of {','.join(allowed)}, got {text!r}")
    return [item for item in allowed if item in picked]


# ------------------------------------------------------------- training steps

def time_training_step(config, cell, reps):
    """Time every available implementation of one (configuration, cell); a result record.

    Right after the timing, while the allocator is in the state it was timed
    in, the minor page faults of one engine and one numpy step are counted,
    and the engine step's numpy work alone (its primitives' calls replayed
    without a graph) is timed against the engine's and the numpy step.
    """
    weights, x, targets = steps.make_problem(config, cell)
    functions = {impl: steps.build_step(impl, cell, weights, x, targets)
                 for impl in steps.available_implementations()}
    first_losses = {impl: step() for impl, step in functions.items()}
    functions.update(compiled.build_steps(cell, weights, x, targets))
    first_losses.update({impl: functions[impl]() for impl in ("compiled", "unrolled")})
    _check_same_loss(first_losses, config, cell)
    functions["matmuls"]()
    times = measure.interleaved_times(functions, reps)
    faults = {impl: measure.minor_page_faults(functions[impl]) for impl in ("engine", "numpy")}
    work_per_numpy, work_per_engine = measure.primitive_work(functions["engine"], functions["numpy"], reps)
    medians = {impl: measure.median(ts) for impl, ts in times.items()}
    ratios = {impl: medians["engine"] / medians[impl] for impl in IMPLEMENTATIONS[1:] if impl in medians}
    limits = STEP_TARGETS
    return {"config": config.name, "cell": cell, "batch": config.batch, "input": config.input,
            "hidden": config.hidden, "steps": config.steps, "classes": config.classes,
            "median_ms": {impl: t * 1e3 for impl, t in medians.items()},
            "min_ms": {impl: min(ts) * 1e3 for impl, ts in times.items()},
            "times_ms": {impl: [t * 1e3 for t in ts] for impl, ts in times.items()},
            "ratios": ratios, "targets": limits, "result": _verdict(ratios, limits),
            "minor_page_faults": faults,
            "first_call_ms": compiled.first_call_seconds(cell, weights, x, targets) * 1e3,
            "primitive_work": {"per_numpy_step": work_per_numpy, "per_engine_step": work_per_engine}}


def _check_same_loss(losses, config, cell):
    """Every implementation must compute the same first loss, or they time different things."""
    reference = losses["numpy"]
    if not all(abs(loss - reference) <= 1e-3 * abs(reference) for loss in losses.values()):
        raise RuntimeError(f"bench: the implementations disagree on the first loss of "
                           f"{config.name} {cell}: {losses}")


def _verdict(ratios, targets):
    """PASS when every target is met; n/a when none is missed but a baseline did not run."""
    checked = [ratios[base] <= limit for base, limit in targets.items() if base in ratios]
    if not targets:
        return "-"
    if not all(checked):
        return "FAIL"
    return "PASS" if len(checked) == len(targets) else "n/a"


def step_table(records):
    headers = (["config", "cell"] + [f"{impl} ms" for impl in IMPLEMENTATIONS]
               + [f"engine/{SHORT_NAMES[impl]}" for impl in IMPLEMENTATIONS[1:]] + ["target", "result"])
    rows = []
    for r in records:
        times = [_ms(r["median_ms"].get(impl)) for impl in IMPLEMENTATIONS]
        ratios = [_ratio(r["ratios"].get(impl)) for impl in IMPLEMENTATIONS[1:]]
        target = ", ".join(f"{SHORT_NAMES[base]}<={limit}x" for base, limit in r["targets"].items())
        rows.append([r["config"], r["cell"]] + times + ratios + [target or "-", r["result"]])
    return headers, rows


def work_table(records):
    """The engine step's numpy work alone, per hand-written step and as a share of the
    engine's, and the page faults of a step of each."""
    headers = ["config", "cell", "primitives alone / numpy step", "the rest, share of engine step",
               "page faults: engine", "numpy"]
    rows = [[r["config"], r["cell"], _ratio(r["primitive_work"]["per_numpy_step"]),
             f"{1 - r['primitive_work']['per_engine_step']:.0%}",
             f"{r['minor_page_faults']['engine']:.0f}", f"{r['minor_page_faults']['numpy']:.0f}"]
            for r in records]
    return headers, rows


def own_process_table(records):
    """The engine's and the numpy step alone in a new process with glibc's defaults."""
    headers = ["config", "cell", "engine ms", "numpy ms", "engine/numpy", "page faults: engine", "numpy"]
    rows = []
    for r in records:
        own = r.get("own_process")
        if own is not None:
            rows.append([r["config"], r["cell"], _ms(own["median_ms"]["engine"]),
                         _ms(own["median_ms"]["numpy"]), _ratio(own["ratio"]),
                         f"{own['minor_page_faults']['engine']:.0f}",
                         f"{own['minor_page_faults']['numpy']:.0f}"])
    return headers, rows


def _ms(value):
    if value is None:
        return "n/a"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _ratio(value):
    return "n/a" if value is None else f"{value:.2f}x"


# --------------------------------------------------------------------- extras

def measure_extras(quick, reps, memory_config="M"):
    """Per-node cost, backward through long unrolls, and the peak memory and no_grad
    inference of the LSTM step in ``memory_config`` (M unless that was not selected)."""
    per_node = measure.per_node_microseconds(reps)
    short, long = (100, 1000) if quick else (1000, 10000)
    unroll, growth = measure.unrolled_backward_seconds((short, long), reps=reps)
    config = steps.CONFIGS[memory_config]
    weights, x, targets = steps.make_problem(config, "lstm")
    peaks = {impl: measure.peak_bytes(steps.build_step(impl, "lstm", weights, x, targets))
             for impl in ("engine", "numpy")}
    tr.manual_seed(0)
    layer, readout = nn.LSTM(config.input, config.hidden), nn.Linear(config.hidden, config.classes)
    no_grad_ok = measure.no_grad_records_nothing(layer, readout, tr.Tensor(x))
    return {"per_node_us": per_node,
            "unroll_backward_s": {str(k): v for k, v in unroll.items()},
            "unroll_ratio": growth,
            "memory_config": memory_config,
            "peak_bytes_lstm": peaks,
            "memory_ratio": peaks["engine"] / peaks["numpy"],
            "no_grad_records_nothing": no_grad_ok}


def extras_table(extras):
    headers = ["figure", "engine", "baseline", "ratio", "target", "result"]
    per_node = extras["per_node_us"]
    torch_node = per_node.get("torch")
    (short, t_short), (long, t_long) = extras["unroll_backward_s"].items()
    peaks, where = extras["peak_bytes_lstm"], extras["memory_config"]
    rows = [
        ["per node: tanh (4,4), forward + backward", f"{per_node['engine']:.2f} us",
         "n/a" if torch_node is None else f"{torch_node:.2f} us (torch)",
         _ratio(None if torch_node is None else per_node["engine"] / torch_node),
         "-", "-"],
        ["per node: the same numpy calls, no graph", f"{per_node['engine']:.2f} us",
         f"{per_node['numpy']:.2f} us (numpy)", _ratio(per_node["engine"] / per_node["numpy"]),
         "-", "-"],
        [f"backward, tiny tanh RNN, {long} vs {short} steps", f"{t_long * 1e3:.1f} ms",
         f"{t_short * 1e3:.1f} ms", _ratio(extras["unroll_ratio"]),
         f"<= {UNROLL_LIMIT:g}x (linear: 10x)", _pass(extras["unroll_ratio"] <= UNROLL_LIMIT)],
        [f"peak memory, {where} LSTM step (tracemalloc)", f"{peaks['engine'] / 2**20:.1f} MiB",
         f"{peaks['numpy'] / 2**20:.1f} MiB (numpy)", _ratio(extras["memory_ratio"]),
         "-", "-"],
        [f"no_grad inference, {where} LSTM: graph recorded",
         "none" if extras["no_grad_records_nothing"] else "some", "-", "-", "no parents",
         _pass(extras["no_grad_records_nothing"])],
    ]
    return headers, rows


def dezero_table(peers):
    """The training step and the per-node cost against DeZero, as table headers and rows."""
    headers = ["config", "cell", "engine ms", "dezero ms", "engine/dezero", "target", "result"]
    rows = [[name, cell, _ms(engine), _ms(other), _ratio(ratio), f"<={DEZERO_LIMIT}x",
             _pass(ratio <= DEZERO_LIMIT)]
            for name, cell, engine, other, ratio in peers["steps"]]
    per_node = peers["per_node_us"]
    rows.append(["per node", "tanh (4,4)", f"{per_node['engine']:.2f} us", f"{per_node['dezero']:.2f} us",
                 _ratio(per_node["engine"] / per_node["dezero"]), "-", "-"])
    return headers, rows


def _pass(ok):
    return "PASS" if ok else "FAIL"


# ------------------------------------------------------------------ profiling

def profile_engine_step(config, cell, reps, lines=25):
    """cProfile of ``reps`` engine steps after one warm-up, top ``lines`` by tottime, as text."""
    weights, x, targets = steps.make_problem(config, cell)
    step = steps.build_step("engine", cell, weights, x, targets)
    step()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(reps):
        step()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(lines)
    return text.getvalue()


# ----------------------------------------------------------------------- main

def sizes_line(names):
    return "sizes: " + "; ".join(
        f"{c.name} B={c.batch} I={c.input} H={c.hidden} T={c.steps} K={c.classes}"
        for c in (steps.CONFIGS[name] for name in names))


def header_lines(info):
    torch_text = (f"torch {info['torch']} (threads: {info['torch_threads']}, "
                  f"OMP_WAIT_POLICY={info['omp_wait_policy']})"
                  if info["torch"] else "torch not installed: PyTorch columns are n/a")
    return [f"machine: {info['cpu']}, {info['cores']} cores, {info['platform']}",
            f"python {info['python']}, numpy {info['numpy']} ({info['blas']}, BLAS threads: "
            f"{info['blas_threads']}, from {info['blas_threads_from']}), {torch_text}",
            "malloc: " + (", ".join(f"{name}={value}" for name, value in info["malloc_settings"].items())
                          or "glibc defaults (no MALLOC_ variables set)"),
            f"date: {info['date']}, tinygrad_rnn at {info['revision']}, "
            f"load average {info['load_average']}"]


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads is not None:
        machine.set_blas_threads(args.threads)
    threads, _ = machine.blas_threads()
    if torch is not None:
        torch.set_num_threads(threads)
    info = machine.describe(torch)
    command = " ".join(["benchmarks/bench.py"] + (sys.argv[1:] if argv is None else argv))
    print("\n".join(header_lines(info)), flush=True)
    if torch is not None:
        print(f"torch.set_num_threads({threads}): the same thread count as numpy's BLAS")

    if args.profile:
        for name in args.only:
            for cell in args.cells:
                print(f"\nprofile of the engine's {name} {cell} step, {args.reps} steps:")
                print(profile_engine_step(steps.CONFIGS[name], cell, args.reps))
        return 0

    print(f"\ntraining step, float32, median of {args.reps} interleaved repetitions after warm-up"
          " (ratio = engine / baseline; below 1: engine faster)", flush=True)
    print(sizes_line(args.only))
    records = []
    for name in args.only:
        for cell in args.cells:
            records.append(time_training_step(steps.CONFIGS[name], cell, args.reps))
            print(f"  {name} {cell}: done", file=sys.stderr)
    print(table.render(*step_table(records)))
    print("\nthe compiled step (tr.compile) in the same runs, and the step's matrix products alone "
          "(the BLAS floor); ratio = compiled / baseline")
    print(table.render(*compiled.step_table(records, _ms, _ratio, _verdict)))
    for record in records:
        if record["config"] in WARM_CONFIGS:
            config = steps.CONFIGS[record["config"]]
            record["warm_ms"] = compiled.warm_times(config, record["cell"], args.reps)
    if any("warm_ms" in record for record in records):
        print(f"\nthe compiled step timed warm, as a training loop runs it: {compiled.WARM_BURST} steps in a "
              f"row per round, the last timed (median of {args.reps})")
        print(table.render(*compiled.warm_table(records, _ms, _ratio)))

    print("\nthe engine's numpy work alone: its primitives' calls replayed without the graph, "
          "per hand-written numpy step; minor page faults of one step")
    print(table.render(*work_table(records)))

    for record in records:
        if record["config"] != "S":  # an S step's graph is too small to leave the heap
            record["own_process"] = fresh_process.run_in_fresh_process(
                record["config"], record["cell"], args.reps, threads)
    if any("own_process" in record for record in records):
        print(f"\nthe engine and numpy alone in a process of their own, glibc's malloc defaults "
              f"(median of {args.reps})")
        print(table.render(*own_process_table(records)))

    extras = measure_extras(args.quick, args.reps, "M" if "M" in args.only else args.only[0])
    print("\nper-node cost, long unrolls, memory, no_grad")
    print(table.render(*extras_table(extras)))
    extras["compiled_memory"] = compiled.peak_memory(extras["memory_config"])
    print(table.render(*compiled.memory_table(extras["compiled_memory"], _ratio)))

    cost = record_cost.record_cost(args.reps, extras["memory_config"])
    print("\nbptt.record: the engine's LSTM step with and without a recording")
    print(table.render(*record_cost.table_rows(cost)))

    peers = None
    if dezero_peer.dezero is not None:
        small = [name for name in args.only if name in ("S", "M")] or args.only[:1]
        rows, per_node = dezero_peer.compare(small, args.reps)
        peers = {"steps": rows, "per_node_us": per_node}
        print("\nthe other teaching engine on numpy: DeZero (RNN and LSTM only; no GRU)")
        print(table.render(*dezero_table(peers)))
    else:
        print("\nDeZero is not installed (pip install dezero==0.0.13): its comparison is skipped")

    info["load_average_end"] = machine.describe(torch)["load_average"]
    print(f"\nload average at the end: {info['load_average_end']}")
    if args.save:
        results = {"command": command, "reps": args.reps, "machine": info,
                   "training_steps": records, "extras": extras, "record_cost": cost, "dezero": peers}
        write_results(results)
        print(f"\nwrote {os.path.join(HERE, 'results.json')} and results.md")
    return 0


def write_results(results):
    with open(os.path.join(HERE, "results.json"), "w") as out:
        json.dump(results, out, indent=1, default=_json_value)
        out.write("\n")
    lines = ["# Benchmark results", "",
             f"`{results['command']}`, median of {results['reps']} interleaved repetitions after "
             "warm-up; ratio = engine time / baseline time (below 1: engine faster).", ""]
    lines += [f"- {line}" for line in header_lines(results["machine"])]
    configs = list(dict.fromkeys(r["config"] for r in results["training_steps"]))
    lines += [f"- load average at the end: {results['machine']['load_average_end']}",
              f"- {sizes_line(configs)}"]
    lines += ["", "## Training step (float32)", "", table.markdown(*step_table(results["training_steps"])),
              "", "## The compiled step", "",
              "`tr.compile` of the engine's loss function, timed in the same interleaved runs; "
              "`matmuls` is the hand-written step's matrix products alone, the floor of any step "
              "on numpy. Ratios are compiled time / baseline time; the first call traces, runs "
              "the passes and the engine's backward.", "",
              table.markdown(*compiled.step_table(results["training_steps"], _ms, _ratio, _verdict)), "",
              table.markdown(*compiled.memory_table(results["extras"]["compiled_memory"], _ratio)), "",
              f"Timed warm, as a training loop runs a step: {compiled.WARM_BURST} steps of one "
              "implementation in a row per round, the last timed (in the table above each call "
              "follows another implementation's step, which has taken the caches).", "",
              table.markdown(*compiled.warm_table(results["training_steps"], _ms, _ratio)),
              "", "## The engine's numpy work alone", "",
              "One engine step's calls of its primitives (forward, backward, gather) replayed "
              "without the graph, timed interleaved with the engine's step and the hand-written "
              "one. The rest of the engine's step is the graph's bookkeeping (recording, "
              "ordering, dispatch, accumulation), the layers' Python and the SGD update, and "
              "the cost of the graph's memory: page faults count the fresh pages one step "
              "takes from the system.", "",
              table.markdown(*work_table(results["training_steps"])),
              "", "## The engine and numpy alone in a process of their own", "",
              "A new Python process that runs only the engine's and the hand-written step, "
              "with glibc's malloc defaults (no MALLOC_ variables): what a user's training "
              "process sees.", "",
              table.markdown(*own_process_table(results["training_steps"])),
              "", "## Per-node cost, long unrolls, memory, no_grad", "",
              table.markdown(*extras_table(results["extras"])), "",
              "## bptt.record", "", table.markdown(*record_cost.table_rows(results["record_cost"])), ""]
    if results["dezero"] is not None:
        lines += ["## DeZero, the other teaching engine on numpy", "",
                  table.markdown(*dezero_table(results["dezero"])), ""]
    with open(os.path.join(HERE, "results.md"), "w") as out:
        out.write("\n".join(lines))


def _json_value(value):
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    raise TypeError(f"bench: cannot write {type(value).__name__} to JSON")


if __name__ == "__main__":
    sys.exit(main())

"""The benchmark's hand-written numpy step is the same computation as the engine's (and PyTorch's).

The benchmark compares speeds; these tests make sure it compares like with
like: the numpy reference's loss and gradients equal the engine's to 1e-10
in float64, its gradients match finite differences, every implementation of
the timed step agrees over two SGD steps, and the harness prints its tables.
"""
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn import nn
from tinygrad_rnn.compile.trace import Tracer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench  # noqa: E402
import call_by_call  # noqa: E402
import first_call  # noqa: E402
import fresh_process  # noqa: E402
import machine  # noqa: E402
import measure  # noqa: E402
import numpy_reference  # noqa: E402
import steps  # noqa: E402

CELLS = ["rnn", "lstm", "gru"]
ENGINE_LAYERS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

problems = st.fixed_dictionaries({
    "cell": st.sampled_from(CELLS), "steps": st.integers(1, 4), "batch": st.integers(1, 3),
    "inputs": st.integers(1, 4), "hidden": st.integers(1, 4), "classes": st.integers(2, 4),
    "seed": st.integers(0, 2**16)})


def make(problem):
    """(params, x (T, B, I), targets (T, B)) in float64 for a problem drawn from ``problems``."""
    params = numpy_reference.init_params(problem["cell"], problem["inputs"], problem["hidden"],
                                         problem["classes"], dtype=np.float64, seed=problem["seed"])
    rng = np.random.default_rng(problem["seed"] + 1)
    x = rng.standard_normal((problem["steps"], problem["batch"], problem["inputs"]))
    targets = rng.integers(0, problem["classes"], size=(problem["steps"], problem["batch"]))
    return params, x, targets


def engine_loss_and_grads(cell, params, x, targets):
    """The same loss through the engine: sequence layer, Linear readout, cross-entropy, backward."""
    classes, hidden = params["readout.weight"].shape
    layer = ENGINE_LAYERS[cell](x.shape[2], hidden).to(np.float64)
    readout = nn.Linear(hidden, classes).to(np.float64)
    layer.load_state_dict({k: v for k, v in params.items() if not k.startswith("readout.")})
    readout.load_state_dict({"weight": params["readout.weight"], "bias": params["readout.bias"]})
    output, _ = layer(tr.Tensor(x))
    loss = nn.cross_entropy(readout(output).reshape(-1, classes), targets.reshape(-1))
    loss.backward()
    grads = {name: p.grad for name, p in layer.named_parameters()}
    grads.update({f"readout.{name}": p.grad for name, p in readout.named_parameters()})
    return loss.item(), grads


def assert_same(loss, grads, expected_loss, expected_grads, atol):
    assert loss == pytest.approx(expected_loss, abs=atol)
    assert list(grads) == list(expected_grads)
    for name in grads:
        np.testing.assert_allclose(grads[name], expected_grads[name], rtol=0, atol=atol, err_msg=name)


@given(problems)
def test_reference_matches_engine_in_float64(problem):
    params, x, targets = make(problem)
    loss, grads = numpy_reference.loss_and_grads(problem["cell"], params, x, targets)
    engine_loss, engine_grads = engine_loss_and_grads(problem["cell"], params, x, targets)
    assert_same(loss, grads, engine_loss, engine_grads, atol=1e-10)


@given(problems)
def test_reference_matches_torch_in_float64(problem):
    torch = pytest.importorskip("torch")
    params, x, targets = make(problem)
    loss, grads = numpy_reference.loss_and_grads(problem["cell"], params, x, targets)
    classes, hidden = params["readout.weight"].shape
    layer = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[problem["cell"]](
        x.shape[2], hidden).double()
    readout = torch.nn.Linear(hidden, classes).double()
    layer.load_state_dict({k: torch.tensor(v) for k, v in params.items() if not k.startswith("readout.")})
    readout.load_state_dict({"weight": torch.tensor(params["readout.weight"]),
                             "bias": torch.tensor(params["readout.bias"])})
    output, _ = layer(torch.tensor(x))
    torch_loss = torch.nn.functional.cross_entropy(readout(output).reshape(-1, classes),
                                                   torch.tensor(targets).reshape(-1))
    torch_loss.backward()
    torch_grads = {name: p.grad.numpy() for name, p in layer.named_parameters()}
    torch_grads.update({f"readout.{name}": p.grad.numpy() for name, p in readout.named_parameters()})
    assert_same(loss, grads, torch_loss.item(), torch_grads, atol=1e-10)


@pytest.mark.parametrize("cell", CELLS)
def test_reference_gradients_match_finite_differences(cell):
    params, x, targets = make({"cell": cell, "steps": 3, "batch": 2, "inputs": 3, "hidden": 3,
                               "classes": 3, "seed": 7})
    _, grads = numpy_reference.loss_and_grads(cell, params, x, targets)
    eps = 1e-6
    for name, value in params.items():
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            original = value[index]
            value[index] = original + eps
            plus, _ = numpy_reference.loss_and_grads(cell, params, x, targets)
            value[index] = original - eps
            minus, _ = numpy_reference.loss_and_grads(cell, params, x, targets)
            value[index] = original
            numeric[index] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-5, atol=1e-8, err_msg=name)


def test_reference_handles_saturated_gates_without_warnings():
    """Huge pre-activations saturate σ and tanh to their limits, with finite gradients."""
    for cell in CELLS:
        params, x, targets = make({"cell": cell, "steps": 3, "batch": 2, "inputs": 2, "hidden": 2,
                                   "classes": 2, "seed": 3})
        params = {name: value * 1e4 for name, value in params.items()}
        loss, grads = numpy_reference.loss_and_grads(cell, params, x, targets)
        assert np.isfinite(loss)
        assert all(np.isfinite(g).all() for g in grads.values())


def test_train_step_is_one_sgd_update():
    params, x, targets = make({"cell": "lstm", "steps": 3, "batch": 2, "inputs": 3, "hidden": 2,
                               "classes": 3, "seed": 1})
    before = {name: value.copy() for name, value in params.items()}
    loss, grads = numpy_reference.loss_and_grads("lstm", before, x, targets)
    assert numpy_reference.train_step("lstm", params, x, targets, lr=0.5) == loss
    for name in params:
        np.testing.assert_allclose(params[name], before[name] - 0.5 * grads[name], rtol=0, atol=1e-15)


def test_reference_rejects_bad_input():
    params, x, targets = make({"cell": "gru", "steps": 2, "batch": 2, "inputs": 3, "hidden": 2,
                               "classes": 3, "seed": 0})
    with pytest.raises(ValueError, match="cell must be one of .* got 'lstmm'"):
        numpy_reference.loss_and_grads("lstmm", params, x, targets)
    with pytest.raises(ValueError, match=r"weight_hh_l0 has shape \(6, 2\), expected \(8, 2\)"):
        numpy_reference.loss_and_grads("lstm", params, x, targets)
    with pytest.raises(ValueError, match=r"x must be \(T, B, 3\), got \(2, 2, 4\)"):
        numpy_reference.loss_and_grads("gru", params, np.zeros((2, 2, 4)), targets)
    with pytest.raises(ValueError, match=r"targets must be integers of shape \(2, 2\), got float64"):
        numpy_reference.loss_and_grads("gru", params, x, targets.astype(np.float64))


@pytest.mark.parametrize("cell", CELLS)
def test_every_timed_implementation_computes_the_same_two_steps(cell):
    """The second loss depends on the first SGD update, so equal second losses
    mean equal forward, backward and update in every implementation."""
    config = steps.Config("tiny", batch=3, input=4, hidden=5, steps=4)
    weights, x, targets = steps.make_problem(config, cell, dtype=np.float64)
    step_functions = {impl: steps.build_step(impl, cell, weights, x, targets, lr=0.5)
                      for impl in steps.available_implementations()}
    first = {impl: step() for impl, step in step_functions.items()}
    second = {impl: step() for impl, step in step_functions.items()}
    assert second["numpy"] != pytest.approx(first["numpy"], abs=1e-6)
    for impl in step_functions:
        assert first[impl] == pytest.approx(first["numpy"], abs=1e-10), impl
        assert second[impl] == pytest.approx(second["numpy"], abs=1e-10), impl


def test_build_step_rejects_unknown_names():
    weights, x, targets = steps.make_problem(steps.CONFIGS["S"], "rnn")
    with pytest.raises(ValueError, match="implementation must be one of .* got 'jax'"):
        steps.build_step("jax", "rnn", weights, x, targets)
    with pytest.raises(ValueError, match="cell must be one of .* got 'transformer'"):
        steps.build_step("numpy", "transformer", weights, x, targets)


def test_interleaved_times_draws_a_new_order_for_each_round():
    """Every round runs each function once; over the rounds each one runs first at times and
    follows each of the others at times (not always the same one, as a rotation would)."""
    calls = []
    functions = {name: (lambda name=name: calls.append(name)) for name in "abcd"}
    times = measure.interleaved_times(functions, reps=40, warmup=1)
    rounds = [calls[k:k + 4] for k in range(4, len(calls), 4)]
    assert calls[:4] == list("abcd") and all(sorted(r) == list("abcd") for r in rounds)
    assert {r[0] for r in rounds} == set("abcd")
    before = {(r[k - 1], r[k]) for r in rounds for k in range(1, 4)}
    assert all({p for p, n in before if n == name} == set("abcd") - {name} for name in "abcd")
    assert [len(ts) for ts in times.values()] == [40] * 4 and all(t >= 0 for ts in times.values() for t in ts)
    calls.clear()
    measure.interleaved_times(functions, reps=40, warmup=1)
    assert calls[4:] == [name for r in rounds for name in r]  # the same orders: a seeded draw


def test_interleaved_times_in_bursts_time_the_last_call_of_each_burst(monkeypatch):
    """Call n of a function takes n seconds on a fake clock: the times are those of calls 3 and 6."""
    clock, calls = [0.0], {"a": 0, "b": 0}
    monkeypatch.setattr(measure.time, "perf_counter", lambda: clock[0])

    def run(name):
        calls[name] += 1
        clock[0] += calls[name]

    functions = {name: (lambda name=name: run(name)) for name in "ab"}
    times = measure.interleaved_times(functions, reps=2, warmup=0, burst=3)
    assert times == {"a": [3, 6], "b": [3, 6]} and calls == {"a": 6, "b": 6}


def test_peak_bytes_sees_numpy_allocations():
    small = measure.peak_bytes(lambda: np.ones(1_000))
    large = measure.peak_bytes(lambda: np.ones(1_000_000))
    assert large >= 8_000_000 > small


def test_recorded_primitive_calls_cover_the_step_and_leave_the_primitives_as_they_were():
    weights, x, targets = steps.make_problem(steps.Config("T", 2, 3, 4, 3), "lstm")
    step = steps.build_step("engine", "lstm", weights, x, targets)
    before = {op: dict(vars(op)) for op in (tr.ops.Linear, tr.ops.Sigmoid, tr.ops.Tanh)}
    add_into = vars(tr.ops.GetItem)["add_into"]
    calls = measure._recorded_primitive_calls(step)
    names = [function.__qualname__ for function, _, _ in calls]
    for name in ["Linear.forward", "Linear.backward", "Sigmoid.forward", "Sigmoid.backward",
                 "Tanh.backward", "GetItem.add_into"]:
        assert name in names
    assert names.count("Linear.forward") == 3 + 2  # one h product per step, projection, readout
    assert all(vars(op) == saved for op, saved in before.items())
    assert vars(tr.ops.GetItem)["add_into"] is add_into
    x_proj_args = next(args for function, args, _ in calls if function.__qualname__ == "Linear.forward")
    np.testing.assert_array_equal(x_proj_args[0], x)  # the projection of the whole sequence, first
    out, _ = tr.ops.Linear.forward(*x_proj_args)
    assert out.shape == (3, 2, 16)


def test_primitive_work_gives_two_positive_ratios():
    weights, x, targets = steps.make_problem(steps.Config("T", 2, 3, 4, 3), "gru")
    engine, reference = (steps.build_step(impl, "gru", weights, x, targets) for impl in ("engine", "numpy"))
    ratios = measure.primitive_work(engine, reference, reps=2)
    assert len(ratios) == 2 and all(np.isfinite(r) and r > 0 for r in ratios)


def test_minor_page_faults_count_fresh_memory():
    # 80 MB is above glibc's largest mmap threshold: every call maps and touches fresh
    # pages, at least 40 even if the kernel hands them out as 2 MB huge pages.
    faults = measure.minor_page_faults(lambda: np.ones(10_000_000))
    assert faults >= 40 > measure.minor_page_faults(lambda: None)


def test_fresh_process_times_the_engine_and_numpy_and_counts_their_page_faults():
    result = fresh_process.run_in_fresh_process("S", "rnn", reps=2, threads=1)
    assert result["ratio"] > 0 and set(result["median_ms"]) == {"engine", "numpy"}
    assert all(isinstance(count, (int, float)) and count >= 0
               for count in result["minor_page_faults"].values())


def test_blas_threads_can_be_read_and_set():
    threads, where = machine.blas_threads()
    assert threads >= 1 and where
    if where.startswith("os.cpu_count"):
        pytest.skip("numpy's BLAS is not an OpenBLAS that can be asked")
    try:
        machine.set_blas_threads(1)
        assert machine.blas_threads()[0] == 1
    finally:
        machine.set_blas_threads(threads)
    assert machine.blas_threads()[0] == threads


def test_quick_run_prints_every_column(capsys):
    assert bench.main(["--quick", "--only", "S", "--reps", "2"]) == 0
    out = capsys.readouterr().out
    for column in ["config", "cell", "engine ms", "numpy ms", "torch-cells ms", "torch-fused ms",
                   "engine/numpy", "engine/cells", "engine/fused", "target", "result", "compiled ms",
                   "matmuls ms", "compiled/numpy", "compiled/matmuls", "first call / engine step"]:
        assert column in out
    rows = [line.split() for line in out.splitlines()
            if line.startswith("S ") and line.split()[-1] in ("PASS", "FAIL", "n/a")
            and len(line.split()) >= 11]  # not DeZero's shorter rows
    assert [row[1] for row in rows] == CELLS * 2  # the engine's table, then the compiled one
    work_rows = [line.split() for line in out.splitlines()
                 if line.startswith("S ") and line.split()[3].endswith("%")]
    assert "primitives alone / numpy step" in out and [row[1] for row in work_rows] == CELLS
    assert all(row[4].isdigit() and row[5].isdigit() for row in work_rows)  # page faults per step
    assert "malloc: " in out
    if bench.dezero_peer.dezero is None:
        assert "DeZero is not installed" in out
    else:
        peer_rows = [line.split() for line in out.splitlines()
                     if line.startswith("S ") and len(line.split()) == 7]  # DeZero's table
        assert "engine/dezero" in out and [row[1] for row in peer_rows] == ["rnn", "lstm"]
    for figure in ["per node: tanh (4,4)", "backward, tiny tanh RNN, 1000 vs 100 steps",
                   "peak memory, S LSTM step", "no_grad inference, S LSTM: graph recorded",
                   "compiled/numpy  target    result"]:
        assert figure in out
    no_grad_row = next(line for line in out.splitlines() if line.startswith("no_grad inference"))
    assert no_grad_row.split()[-1] == "PASS"


def test_bench_rejects_unknown_options(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--only", "XL"])
    assert "--only: expected a comma-separated subset of S,M,L, got 'XL'" in capsys.readouterr().err


def test_call_by_call_labels_every_replayed_instruction_and_times_the_hand_written_parts():
    rows, hand = call_by_call.call_by_call("lstm", steps.CONFIGS["S"], reps=2)
    labels = [label for label, _, _ in rows]
    assert "CrossEntropy" in labels and "BatchedWeightGrad" in labels
    loops = [(label, count) for label, _, count in rows if count]
    assert [label.split(",")[0] for label, _ in loops] == ["Loop lstm/l0"] * 2
    assert [count for _, count in loops] == [18, 18]   # T = 20: t=1..18 forward, t=18..1 backward
    assert all(us > 0 for _, us, _ in rows)
    assert len(hand) == 4 and all(us > 0 for us in hand.values())


def test_first_call_times_each_phase_inside_the_real_call_and_puts_everything_back():
    phases, eager = first_call.first_call_phases("lstm", steps.CONFIGS["S"], reps=1)
    names = list(phases)
    assert names[:2] == ["fn under the tracer", "tracer.tape"] and names[-1] == "the whole first call"
    assert "  roll_loops: finding the copies" in names and "  join_gate_sigmoids (roll.py)" in names
    assert all(ms >= 0 for ms in phases.values()) and eager > 0
    parts = sum(ms for name, ms in phases.items() if name != "the whole first call")
    assert parts == pytest.approx(phases["the whole first call"])
    assert first_call.compile_module.Replay.__name__ == "Replay" and Tracer.tape.__name__ == "tape"


def test_call_by_call_folds_a_free_into_the_instruction_before_it_as_the_replay_does():
    from tinygrad_rnn.compile.replay import lower
    from tinygrad_rnn.compile.tape import Free
    instructions = [Free(values=(1,)), Free(values=(2,)), Free(values=(3,))]  # a Free first stands alone
    assert len(call_by_call.labels(instructions)) == len(lower(instructions)) == 2

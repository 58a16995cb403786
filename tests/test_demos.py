"""The demos' helpers, data generators and models, and the runs that test_notebooks.py does not do.

A demo's headline run is its notebook run in a kernel (test_notebooks.py).
The runs here are the script form's (``common.run``), with settings smaller
than ``--quick`` where the headline survives them, and pictures written to a
temporary folder instead of out/.
"""
import calendar
import importlib
import inspect
import json
import math
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tinygrad_rnn as tr

from explore_helpers import page_data

DEMOS = Path(__file__).resolve().parent.parent / "demos"
sys.path.insert(0, str(DEMOS))
common = importlib.import_module("_common")


def demo(name):
    """A demo's functions, classes and constants, without running its story."""
    return common.definitions(name)


@pytest.fixture(autouse=True)
def out_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "OUT", tmp_path / "out")
    return tmp_path / "out"


# ------------------------------------------------------------------ helpers

def test_parse_args_picks_quick_or_full_defaults_and_keeps_explicit_values():
    sizes = {"steps": (10, 100), "lr": (0.5, 0.1)}
    full = common.parse_args([], "d", sizes)
    quick = common.parse_args(["--quick"], "d", sizes)
    explicit = common.parse_args(["--quick", "--steps", "7"], "d", sizes)
    assert (full.steps, full.lr, quick.steps, quick.lr) == (100, 0.1, 10, 0.5)
    assert explicit.steps == 7 and isinstance(explicit.steps, int)


def test_parse_args_reads_the_command_line_in_a_script_and_kernel_argv_in_a_notebook(monkeypatch):
    sizes = {"steps": (10, 100)}
    monkeypatch.setattr(sys, "argv", ["demo.py", "--steps", "3"])
    assert not common.in_kernel()
    assert common.parse_args(None, "d", sizes).steps == 3
    monkeypatch.setattr(sys, "argv", ["ipykernel_launcher.py", "-f", "kernel.json"])
    monkeypatch.setattr(common, "in_kernel", lambda: True)
    assert common.parse_args(None, "d", sizes).steps == 10
    monkeypatch.setattr(common, "KERNEL_ARGV", ["--steps", "5"])
    assert common.parse_args(None, "d", sizes).steps == 5


def test_definitions_runs_a_demos_imports_functions_and_constants_but_not_its_story(
        tmp_path, monkeypatch):
    (tmp_path / "99_story.py").write_text(textwrap.dedent("""\
        import math
        SIZE = 3
        size = SIZE * 2
        def double(x):
            return 2 * x
        class Box:
            pass
        raise RuntimeError("the story ran")
        """))
    monkeypatch.setattr(common, "DEMOS", tmp_path)
    module = common.definitions("99_story")
    assert (module.double(module.SIZE), module.math.pi) == (6, math.pi)
    assert isinstance(module.Box(), module.Box) and not hasattr(module, "size")
    with pytest.raises(RuntimeError, match="the story ran"):
        common.run("99_story")


def test_shown_paths_are_relative_inside_the_repository_and_absolute_outside(tmp_path, monkeypatch):
    picture = common.DEMOS.parent / "out" / "a.png"
    monkeypatch.chdir(common.DEMOS)
    assert common.shown(picture) == str(Path("..", "out", "a.png"))
    assert common.shown(tmp_path / "a.png") == str(tmp_path / "a.png")
    monkeypatch.chdir(common.DEMOS.parent)
    assert common.shown(picture) == str(Path("out", "a.png"))
    monkeypatch.chdir(tmp_path)
    assert common.shown(picture) == str(picture)


def test_a_picture_prints_as_its_path_and_shows_as_png_or_svg(tmp_path):
    png, svg, dot = tmp_path / "a.png", tmp_path / "a.svg", tmp_path / "a.dot"
    png.write_bytes(b"\x89PNG")
    svg.write_text("<svg/>")
    dot.write_text("digraph {}")
    assert repr(common.Picture(png)) == f"picture: {common.shown(png)}"
    assert (common.Picture(png)._repr_png_(), common.Picture(png)._repr_svg_()) == (b"\x89PNG", None)
    assert (common.Picture(svg)._repr_svg_(), common.Picture(svg)._repr_png_()) == ("<svg/>", None)
    assert (common.Picture(dot)._repr_svg_(), common.Picture(dot)._repr_png_()) == (None, None)


def test_train_stops_at_the_first_loss_that_is_not_finite():
    losses = common.train(lambda i: [3.0, 2.0, math.inf, 1.0][i], 4, "t")
    assert losses == [3.0, 2.0]


def test_smooth_is_a_trailing_moving_average():
    values = [1.0, 3.0, 5.0, 7.0]
    expected = [1.0, 2.0, 4.0, 6.0]   # window 2: the first point averages itself only
    np.testing.assert_allclose(common.smooth(values, 2), expected)


# --------------------------------------------------------------- 01 and 02

def test_01_unrolled_rnn_matches_a_numpy_forward():
    rnn = demo("01_rnn_by_hand")
    tr.manual_seed(3)
    A, B, C = rnn.make_parameters(2, 3, 2)
    xs, targets = rnn.make_sequence(5, 2, 2)
    loss, hs = rnn.unrolled_rnn(A, B, C, xs, targets)
    h, expected = np.zeros(3), 0.0
    for x, target in zip(xs, targets):
        h = np.tanh(A.data @ x + C.data @ h)
        expected += 0.5 * np.sum((B.data @ h - target) ** 2)
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    np.testing.assert_allclose(hs[-1].data, h, atol=1e-12)
    assert [h.scope for h in hs] == [f"t={t}" for t in range(5)]


def test_02_hand_written_bptt_equals_finite_differences():
    bptt = demo("02_bptt_by_hand")
    rng = np.random.default_rng(0)
    A, B, C = rng.normal(size=(3, 2)), rng.normal(size=(2, 3)), rng.normal(size=(3, 3))
    xs, targets = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    _, grads = bptt.bptt_by_hand(A, B, C, xs, targets)
    weights, eps = {"A": A, "B": B, "C": C}, 1e-6
    for name, W in weights.items():
        numeric = np.zeros_like(W)
        for index in np.ndindex(W.shape):
            W[index] += eps
            plus = bptt.bptt_by_hand(A, B, C, xs, targets)[0]
            W[index] -= 2 * eps
            minus = bptt.bptt_by_hand(A, B, C, xs, targets)[0]
            W[index] += eps
            numeric[index] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------- 03

def test_03_truncated_bptt_matches_full_bptt_when_the_window_covers_the_sequence():
    vanishing = demo("03_vanishing_exploding")
    tr.manual_seed(0)
    model = vanishing.SequenceRegressor(tr.nn.RNNCell(1, 4))
    x, y = vanishing.short_memory_batch(batch=3, length=6)
    full_loss = vanishing.backprop_full(model, x, y)
    full = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    truncated_loss = vanishing.backprop_truncated(model, x, y, window=6)
    assert truncated_loss == pytest.approx(full_loss, rel=1e-6)
    for p, g in zip(model.parameters(), full):
        np.testing.assert_allclose(p.grad, g, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------- 04

def test_04_adding_batch_marks_one_value_in_each_half_and_sums_them():
    adding = demo("04_long_term")
    tr.manual_seed(0)
    x, y = adding.adding_batch(batch=500, length=10)
    values, markers = x[..., 0], x[..., 1]
    assert x.shape == (10, 500, 2) and y.shape == (500, 1)
    np.testing.assert_array_equal(markers[:5].sum(axis=0), 1)
    np.testing.assert_array_equal(markers[5:].sum(axis=0), 1)
    np.testing.assert_allclose(y[:, 0], (values * markers).sum(axis=0), rtol=1e-6)
    assert np.mean((y - 1) ** 2) == pytest.approx(adding.BASELINE, abs=0.03)


# ---------------------------------------------------------------------- 05

def test_05_stdlib_docstrings_are_gathered_in_a_fixed_order():
    text_generation = demo("05_text_generation")
    text = text_generation.stdlib_docstrings(["json", "textwrap"])
    assert text == text_generation.stdlib_docstrings(["json", "textwrap"])
    assert text.startswith(inspect.getdoc(json))
    # functions, a class and its method, in module order, then by name
    places = [text.index(inspect.getdoc(member)) for member in
              (json.dumps, json.load, textwrap.TextWrapper, textwrap.TextWrapper.wrap, textwrap.dedent)]
    assert places == sorted(places)


def test_05_produces_text_and_resumes_from_an_equal_checkpoint(tmp_path):
    text_generation = demo("05_text_generation")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Return the value of the key. Return the list of values.\n" * 40)
    first, resumed = tmp_path / "first.npz", tmp_path / "resumed.npz"
    common_args = ["--quick", "--text", str(corpus), "--window", "16", "--length", "30"]
    trained = common.run("05_text_generation", common_args + [
        "--hidden", "16", "--embedding", "8", "--steps", "30", "--checkpoint", str(first)])
    # the sizes come from the checkpoint
    again = common.run("05_text_generation", common_args + [
        "--steps", "0", "--resume", str(first), "--checkpoint", str(resumed)])
    assert trained["losses"][-1] < trained["losses"][0]
    for temperature, text in trained["samples"].items():
        assert text.startswith(text_generation.PROMPT)
        assert len(text) == len(text_generation.PROMPT) + 30
        assert again["samples"][temperature] == text
    saved, resaved = tr.load(first), tr.load(resumed)
    assert list(saved) == list(resaved)
    for key in saved:
        np.testing.assert_array_equal(saved[key], resaved[key])


def test_05_refuses_a_text_shorter_than_a_training_window(tmp_path):
    corpus = tmp_path / "short.txt"
    corpus.write_text("too short")
    with pytest.raises(ValueError, match="9 usable characters.*--window"):
        common.run("05_text_generation", ["--quick", "--text", str(corpus), "--window", "16"])


def test_05_refuses_a_checkpoint_of_something_else(tmp_path):
    other = tmp_path / "other.npz"
    tr.save({"weight": np.zeros(3)}, other)
    with pytest.raises(ValueError, match="not a checkpoint of this demo.*weight"):
        common.run("05_text_generation", ["--quick", "--resume", str(other)])


def small_05_run(tmp_path, *extra):
    """Demo 05 trained for a few steps on a small text, with small sizes; returns its variables."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Return the value of the key. Return the list of values.\n" * 40)
    return common.run("05_text_generation", [
        "--quick", "--text", str(corpus), "--window", "16", "--length", "30", "--hidden", "16",
        "--embedding", "8", "--steps", "20", *extra])


def files_in(folder):
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in folder.iterdir()}


def test_05_sample_loads_the_checkpoint_and_only_samples(tmp_path, out_dir):
    trained = small_05_run(tmp_path)
    before = files_in(out_dir)
    assert set(before) == {"05_char_lstm_quick.npz", "05_char_lstm_quick_learning_curve.png",
                           "05_char_lstm_quick_explorer.html"}
    # --quick --sample with no path reads the quick run's checkpoint
    sampled = common.run("05_text_generation", ["--quick", "--sample", "--length", "30",
                                                "--temperature", "0.6"])
    assert sampled["losses"] == [] and "text" not in sampled and sampled["picture"] is None
    assert sampled["samples"] == {0.6: trained["samples"][0.6]}
    assert files_in(out_dir) == before


def test_05_prompt_temperature_and_length_shape_the_samples(tmp_path, out_dir):
    small_05_run(tmp_path, "--checkpoint", str(tmp_path / "model.npz"))
    runs = [common.run("05_text_generation", ["--sample", str(tmp_path / "model.npz"), "--prompt", "the key",
                                              "--temperature", temperature, "--length", "40"])
            for temperature in ("0.01", "5.0")]
    cold, hot = (run["samples"] for run in runs)
    assert list(cold) == [0.01] and list(hot) == [5.0]
    for text in (cold[0.01], hot[5.0]):
        assert text.startswith("the key") and len(text) == len("the key") + 40
    # near 0 nearly every draw is the likeliest character; at 5 they spread over the vocabulary
    assert len(set(hot[5.0][7:])) > len(set(cold[0.01][7:])) + 5


@pytest.mark.parametrize("argv, error, words", [
    (["--prompt", "Return 42"], ValueError, "not in it: ['2', '4']"),
    (["--prompt", ""], ValueError, "it is empty"),
    (["--temperature", "0"], ValueError, "--temperature must be positive, got 0.0"),
])
def test_05_a_bad_prompt_or_temperature_is_named(tmp_path, out_dir, argv, error, words):
    small_05_run(tmp_path, "--steps", "1")
    with pytest.raises(error) as caught:
        common.run("05_text_generation", ["--quick", "--sample", *argv])
    assert words in str(caught.value)


def test_05_sample_refuses_the_flags_of_a_training_run(tmp_path, out_dir):
    with pytest.raises(ValueError, match="--sample only samples from a checkpoint; --text, --checkpoint "
                                         "belong to a training run"):
        common.run("05_text_generation", ["--sample", "--text", "a.txt", "--checkpoint", "b.npz"])


def test_05_sample_without_a_checkpoint_says_to_train_first(tmp_path, out_dir):
    with pytest.raises(FileNotFoundError, match="--sample .*missing.npz: no such checkpoint; a run "
                                                "without --sample trains"):
        common.run("05_text_generation", ["--sample", str(tmp_path / "missing.npz")])


def sequence_view(path):
    """(tokens, the one run's data) of an explorer page."""
    data = page_data(Path(path).read_text(encoding="utf-8"))
    (run,) = data["snapshots"][0]["runs"]
    return data["tokens"], run


def test_05_writes_the_explorer_page_of_held_out_text(tmp_path, out_dir):
    trained = small_05_run(tmp_path)
    tokens, run = sequence_view(trained["page"])
    assert trained["page"] == out_dir / "05_char_lstm_quick_explorer.html"
    assert "".join(tokens) == trained["text"][-trained["EXPLORED"]:][:-1]  # with --text: the text's end
    connectivity = np.array(run["connectivity"])
    assert connectivity.shape == (len(tokens), len(tokens))
    assert not np.triu(connectivity, 1).any() and connectivity.max(axis=1) == pytest.approx(1)
    assert len(run["predictions"]) == len(tokens)


def test_05_a_resumed_run_draws_its_own_learning_curve(tmp_path, out_dir):
    first = small_05_run(tmp_path, "--steps", "3")
    picture = out_dir / "05_char_lstm_quick_learning_curve.png"
    before = picture.read_bytes()
    resumed = small_05_run(tmp_path, "--steps", "3", "--resume", first["checkpoint"])
    assert resumed["picture"].path == out_dir / "05_char_lstm_quick_resumed_learning_curve.png"
    assert resumed["picture"].path.read_bytes() != before
    assert picture.read_bytes() == before


# ---------------------------------------------------------------------- 06

def test_06_windows_are_relative_to_their_last_value():
    series_demo = demo("06_time_series")
    series = np.arange(10.0) ** 2
    x, y, last = series_demo.windows(series, starts=[0, 3], width=4, scale=2.0)
    np.testing.assert_allclose(last, [9.0, 36.0])
    np.testing.assert_allclose(x[:, 1, 0], (series[3:7] - 36.0) / 2)
    np.testing.assert_allclose(y[:, 0], [(16 - 9) / 2, (49 - 36) / 2])


# ---------------------------------------------------------------------- 07

@pytest.mark.parametrize("day, words", [(1, "first"), (2, "second"), (12, "twelfth"),
                                        (20, "twentieth"), (22, "twenty-second"),
                                        (30, "thirtieth"), (31, "thirty-first")])
def test_07_ordinal_words(day, words):
    assert demo("07_translation").ordinal(day) == words


def test_07_generated_dates_are_valid_and_encode_back():
    translation = demo("07_translation")
    tr.manual_seed(0)
    dates = translation.random_dates(200)
    for year, month, day in dates:
        assert year in translation.YEARS
        assert 1 <= day <= calendar.monthrange(year, month)[1]
    assert translation.date_count() == 36525
    sources = translation.encode_sources(dates[:2])
    texts = ["".join(translation.SOURCE_CHARS[i] for i in column if i != translation.PAD)
             for column in sources.T]
    assert texts == [translation.source_text(*d) for d in dates[:2]]
    assert sources[-1].min() > translation.PAD   # padding is on the left
    targets = translation.encode_targets(dates[:2])
    assert [translation.decode_text(t) for t in targets.T] == \
        [translation.target_text(*d) for d in dates[:2]]




# ---------------------------------------------------------------------- 09

def test_09_bracket_text_nests_to_at_most_6_and_its_depth_counts_the_open_brackets():
    units = demo("09_what_units_learn")
    tr.manual_seed(0)
    text, depth = units.bracket_text(3000)
    assert len(text) == len(depth) == 3000 and set(text) <= set("()[]abcd")
    stack = []
    for char, d in zip(text, depth):
        if char in "([":
            stack.append(char)
        elif char in ")]":
            assert "([".index(stack.pop()) == ")]".index(char)
        assert d == len(stack)
    assert depth.min() == 0 and depth.max() == units.MAX_DEPTH
    tr.manual_seed(0)
    assert units.bracket_text(3000)[0] == text


def test_09_matching_openings_pairs_each_closing_bracket_with_its_opening():
    units = demo("09_what_units_learn")
    assert units.matching_openings("a([b]c)[]") == [(4, 2), (6, 1), (8, 7)]


def test_09_listening_sets_the_opening_apart_from_the_letters_and_the_brackets_before_it():
    units = demo("09_what_units_learn")
    text = "a[b]c(dd)"          # the ')' at 8 closes the '(' at 5; before it letters 0, 2, 4, brackets 1, 3
    row = np.array([0.1, 0.7, 0.3, 0.2, 0.05, 0.9, 0.2, 0.4, 0.0])
    assert units.listening(row, text, 8, 5) == pytest.approx((0.9, 0.3, 0.7, 0.3))
    at_opening, letter, bracket, between = units.listening(np.array([0.6, 0.2, 0.1, 0.0]), "[()]", 3, 0)
    assert (at_opening, letter, bracket) == (0.6, 0.0, 0.0) and np.isnan(between)


def test_09_with_kinds_swapped_changes_the_kind_of_the_brackets_named_and_nothing_else():
    units = demo("09_what_units_learn")
    assert units.with_kinds_swapped("a[b]c(dd)", [1, 3]) == "a(b)c(dd)"
    assert units.with_kinds_swapped("a[b]c(dd)", [5, 8]) == "a[b]c[dd]"
    assert units.with_kinds_swapped("a[b]c(dd)", [0, 2, 5]) == "a[b]c[dd)"


def test_09_training_windows_start_where_no_bracket_is_open():
    units = demo("09_what_units_learn")
    tr.manual_seed(1)
    text, depth = units.bracket_text(2000)
    data = np.arange(len(text))      # each character's own position, to find where a window starts
    inputs, targets = units.windows_from_depth_zero(data, depth, batch=50, length=20)
    assert inputs.shape == targets.shape == (20, 50)
    np.testing.assert_array_equal(targets[:-1], inputs[1:])
    for start in inputs[0]:
        assert start == 0 or depth[start - 1] == 0


def test_09_quick_run_finds_the_unit_the_connectivity_and_the_swapped_choices_of_closing_brackets(out_dir):
    run = common.run("09_what_units_learn", ["--quick", "--steps", "20", "--test-length", "200"])
    cell, depth, unit = run["cell"], run["test_depth"], run["unit"]
    correlations = [np.corrcoef(cell[:, k], depth)[0, 1] for k in range(cell.shape[1])]
    assert run["r"] == pytest.approx(correlations[unit])
    assert abs(run["r"]) == pytest.approx(np.max(np.abs(correlations)))
    C, closings = run["connectivity"], run["closings"]
    assert C.shape == (len(closings), 200)
    for row, (t, o) in zip(C, closings):
        assert not row[t:].any() and row[o] > 0   # the prediction before t reads characters up to t - 1
    strict = [o == 0 or row[o] > row[:o].max() for row, (t, o) in zip(C, closings)]
    assert list(run["above_everything"]) == strict   # heard more than every character before the opening
    model, vocab, head = run["model"], run["vocab"], run["head"]
    swapped = zip(closings, run["opening_swapped"], run["others_swapped"])
    for (t, o), opening_swapped, others_swapped in swapped:   # each reading again, alone
        for changed, choice in ((kinds_swapped(head[:t], [o]), opening_swapped),
                                (kinds_swapped(head[:t], [s for s in range(t) if s != o]), others_swapped)):
            logits, _ = model(vocab.encode(changed)[:, None])   # this text alone, batch of 1
            assert choice == pytest.approx(
                logits.data[-1, 0, vocab.index[")"]] - logits.data[-1, 0, vocab.index["]"]], abs=1e-5)
    assert (out_dir / "09_depth_unit.png").stat().st_size > 0
    tokens, page = sequence_view(run["page"])
    assert run["page"] == out_dir / "09_explorer.html" and "".join(tokens) == run["test_text"][:120]
    assert np.array(page["connectivity"]).shape == (120, 120)
    (c,) = [item for item in page["units"] if item["label"] == "c, lstm/l0"]
    assert c["corr"][unit] == pytest.approx(np.corrcoef(cell[:120, unit], depth[:120])[0, 1], abs=1e-6)



def kinds_swapped(text, positions):
    """``text`` with the kind of the brackets at ``positions`` swapped (letters left as they are)."""
    swap = {"(": "[", "[": "(", ")": "]", "]": ")"}
    return "".join(swap.get(char, char) if s in positions else char for s, char in enumerate(text))

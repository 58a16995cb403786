"""Bad input gets a clear error: checkpoints, graph names, depth, and other mistakes.

Cases 18 to 21 of the checklist that test_bad_inputs.py begins, each with the
behaviour and the words of the message the user sees, then the other mistakes
a newcomer makes that were found along the way.
"""
import io
import pickle
import sys
import tracemalloc
import warnings
import zipfile
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn import nn, optim, viz


def f32(*shape, fill=0.0):
    return tr.Tensor(np.full(shape, fill, dtype=np.float32))


@contextmanager
def no_warnings():
    """Any warning inside (numpy's RuntimeWarning above all) fails the test, whatever -W says."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ------------------------------------------------------------- 18 checkpoints

class CreatesAFileWhenUnpickled:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def write(path, data):
    with open(path, "wb") as file:
        file.write(data)
    return path


def npy_bytes(header_shape, data=b"", descr="<f8"):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False,
                                                 "shape": header_shape})
    return buffer.getvalue() + data


def npz_with(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_18_object_arrays_are_refused_on_save_and_on_load_and_never_unpickled(tmp_path):
    trap = tmp_path / "unpickled"
    with pytest.raises(tr.CheckpointError, match=r"save: 'w' has dtype object; only numeric and bool "
                                                 r"arrays can be saved"):
        tr.save({"w": np.array([1, None], dtype=object)}, tmp_path / "a.npz")
    np.savez(tmp_path / "object.npz", w=np.array([CreatesAFileWhenUnpickled(str(trap))], dtype=object))
    with pytest.raises(tr.CheckpointError, match=r"'w\.npy' holds dtype object; only numeric arrays "
                                                 r"are loaded"):
        tr.load(tmp_path / "object.npz")
    assert not trap.exists()


def test_18_pickle_files_and_pickles_inside_archives_are_refused_unopened(tmp_path):
    trap = tmp_path / "unpickled"
    payload = pickle.dumps({"w": CreatesAFileWhenUnpickled(str(trap))}, protocol=2)
    with pytest.raises(tr.CheckpointError, match=r"is a pickle file .*never loaded, because "
                                                 r"unpickling can run arbitrary code"):
        tr.load(write(tmp_path / "model.pt", payload))
    torch_like = npz_with(tmp_path / "torch.pt", {"archive/data.pkl": payload})
    with pytest.raises(tr.CheckpointError, match=r"is a PyTorch checkpoint .*never loaded, because "
                                                 r"unpickling can run arbitrary code\. Convert it once"):
        tr.load(torch_like)
    assert not trap.exists()


def test_18_truncated_and_corrupt_archives_are_refused(tmp_path):
    tr.save({"w": np.arange(20.0)}, tmp_path / "ok.npz")
    data = (tmp_path / "ok.npz").read_bytes()
    for cut in (0, 3, 30, len(data) // 2, len(data) - 1):
        with pytest.raises(tr.CheckpointError, match=r"is empty|is corrupt or truncated|is neither an "
                                                     r"\.npz archive nor a \.safetensors file"):
            tr.load(write(tmp_path / "cut.npz", data[:cut]))
    corrupt = bytearray(data)
    corrupt[data.index(b"\x93NUMPY") + 140] ^= 0x01  # one bit of the array's data
    with pytest.raises(tr.CheckpointError, match=r"corrupt or truncated \(BadZipFile: Bad CRC-32"):
        tr.load(write(tmp_path / "flip.npz", bytes(corrupt)))


def test_18_an_absurd_declared_shape_is_refused_before_any_allocation(tmp_path):
    path = npz_with(tmp_path / "huge.npz", {"w.npy": npy_bytes((10 ** 12,), b"\0" * 64)})
    tracemalloc.start()
    try:
        with pytest.raises(tr.CheckpointError, match=r"'w\.npy' declares shape \(1000000000000,\) of "
                                                     r"float64 \(8000000000000 bytes\) but holds 64 bytes"):
            tr.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_18_a_missing_file_and_other_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        tr.load(tmp_path / "nowhere.npz")
    np.save(tmp_path / "single.npy", np.ones(3))
    with pytest.raises(tr.CheckpointError, match=r"is neither an \.npz archive nor a \.safetensors file"):
        tr.load(tmp_path / "single.npy")
    with pytest.raises(TypeError, match=r"save: expected a dict of name -> array, got Linear; for a "
                                        r"model pass model\.state_dict\(\)"):
        tr.save(nn.Linear(2, 2), tmp_path / "model.npz")


class Model(nn.Module):
    def __init__(self):
        self.readin = nn.Linear(2, 3)
        self.cell = nn.GRUCell(3, 2)


def snapshot(model):
    return {name: p.data.tobytes() for name, p in model.named_parameters()}


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("cell.bias_hh"), r"missing key 'cell\.bias_hh' \(expected shape \(6,\)\)"),
    (lambda s: s.update(extra=np.zeros(2)), r"unexpected key 'extra'"),
    (lambda s: s.update({"cell.weight_hh": np.zeros((2, 6))}),
     r"key 'cell\.weight_hh': expected shape \(6, 2\), found \(2, 6\)"),
    (lambda s: s.update({"cell.bias_ih": np.full(6, 1e300)}),
     r"key 'cell\.bias_ih': the value 1e\+300 does not fit the parameter's dtype float32"),
    (lambda s: s.update({"cell.bias_ih": np.array([None] * 6)}),
     r"key 'cell\.bias_ih': expected real numbers, found dtype object"),
])
def test_18_a_failed_load_state_dict_changes_no_parameter(change, message):
    model = Model()
    before = snapshot(model)
    state = {name: np.full(p.shape, 0.5) for name, p in model.named_parameters()}
    change(state)
    with no_warnings(), pytest.raises(ValueError, match=rf"load_state_dict into Model: .*{message}.*"
                                                         r"\(nothing was loaded\)"):
        model.load_state_dict(state)
    assert snapshot(model) == before


def test_18_a_torch_state_dict_loads_and_tensors_that_require_grad_are_named():
    torch = pytest.importorskip("torch")
    reference = torch.nn.Linear(2, 3)
    layer = nn.Linear(2, 3)
    layer.load_state_dict(reference.state_dict())
    np.testing.assert_array_equal(layer.weight.data, reference.weight.detach().numpy())
    before = snapshot(layer)
    with pytest.raises(ValueError, match=r"key 'weight': cannot read it as an array \(.*detach"):
        layer.load_state_dict(dict(reference.named_parameters()))
    assert snapshot(layer) == before


# ------------------------------------------------ 19 fuzzing the checkpoint reader

SAVED = {"w": np.arange(6, dtype=np.float64).reshape(2, 3),
         "fortran": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
         "ints": np.array([1, -2], np.int16), "mask": np.array([True, False]),
         "scalar": np.array(3.5), "empty": np.zeros((0, 2))}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    tr.save(SAVED, folder / "saved.npz")
    return folder, (folder / "saved.npz").read_bytes()


def same_arrays(loaded, saved):
    return list(loaded) == list(saved) and all(
        loaded[k].dtype == saved[k].dtype and loaded[k].shape == saved[k].shape
        and loaded[k].tobytes(order="A") == saved[k].tobytes(order="A") for k in saved)


edits = st.one_of(
    st.tuples(st.just("xor"), st.integers(0, 10 ** 6), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10 ** 6), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 10 ** 6), st.integers(1, 8)),
)


@given(changes=st.lists(edits, max_size=4), cut=st.one_of(st.none(), st.integers(0, 10 ** 6)))
def test_19_every_mutated_checkpoint_loads_equal_or_raises_checkpoint_error(checkpoint, changes, cut):
    folder, saved = checkpoint
    data = bytearray(saved)
    for kind, position, arg in changes:
        position %= len(data) + 1
        if kind == "xor" and position < len(data):
            data[position] ^= arg
        elif kind == "insert":
            data[position:position] = arg
        elif kind == "delete":
            del data[position:position + arg]
    if cut is not None:
        data = data[:cut % (len(data) + 1)]
    try:
        loaded = tr.load(write(folder / "mutated.npz", bytes(data)))
    except tr.CheckpointError:
        return
    assert same_arrays(loaded, SAVED)


def test_19_the_unmutated_checkpoint_loads_equal(checkpoint):
    folder, saved = checkpoint
    loaded = tr.load(write(folder / "copy.npz", saved))
    assert same_arrays(loaded, SAVED) and loaded["fortran"].flags.f_contiguous


# ------------------------------------------------------------- 20 graph names

HOSTILE = 'a<b> "q" \\N\\'


def hostile_graph():
    with tr.scope(HOSTILE):
        x = tr.Tensor([1.0, 2.0], requires_grad=True, name=HOSTILE)
        return (x * 2).tanh().sum()


def test_20_names_with_markup_characters_are_escaped_in_dot():
    source = viz.to_dot(hostile_graph())
    escaped = 'a<b> \\"q\\" \\\\N\\\\'
    assert f'label="{escaped}' in source  # the leaf's label starts with its name
    assert f'label="{escaped}"' in source  # the scope's cluster
    assert all(quotes_closed(line) for line in source.splitlines())


def quotes_closed(line):
    """Whether every DOT double-quoted string on ``line`` ends on it (a backslash escapes one character)."""
    inside, i = False, 0
    while i < len(line):
        if inside and line[i] == "\\":
            i += 2
            continue
        inside ^= line[i] == '"'
        i += 1
    return not inside


def test_20_names_with_markup_characters_render_to_svg(tmp_path, renderer):
    path = viz.render(hostile_graph(), path=tmp_path / "hostile.svg")
    with open(path, encoding="utf-8") as file:
        svg = file.read()
    assert svg.count("a&lt;b&gt; &quot;q&quot; \\N\\") >= 2  # the leaf and its scope, as written


# -------------------------------------------------------------------- 21 depth

@pytest.fixture
def default_recursion_limit():
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    yield
    sys.setrecursionlimit(previous)


def numpy_rnn_bptt(x, weight_ih, weight_hh, bias_ih, bias_hh):
    """Gradients of sum(h_T) for h_t = tanh(A x_t + b_ih + C h_{t-1} + b_hh), by hand."""
    hs = [np.zeros((x.shape[1], weight_hh.shape[0]))]
    for x_t in x:
        hs.append(np.tanh(x_t @ weight_ih.T + bias_ih + hs[-1] @ weight_hh.T + bias_hh))
    grads = [np.zeros_like(weight_ih), np.zeros_like(weight_hh), np.zeros_like(bias_ih)]
    dh = np.ones_like(hs[-1])
    for t in range(len(x) - 1, -1, -1):
        da = dh * (1 - hs[t + 1] ** 2)
        grads[0] += da.T @ x[t]
        grads[1] += da.T @ hs[t]
        grads[2] += da.sum(axis=0)
        dh = da @ weight_hh
    return grads


def test_21_a_10000_step_rnn_backpropagates_with_the_default_recursion_limit(default_recursion_limit):
    tr.manual_seed(4)
    rnn = nn.RNN(1, 2).to("float64")
    x = np.random.default_rng(4).standard_normal((10_000, 1, 1))
    _, h_n = rnn(tr.Tensor(x))
    h_n.sum().backward()
    weights = [p.data for p in rnn.parameters()]
    expected = numpy_rnn_bptt(x, *weights)
    for grad, reference in zip([rnn.weight_ih_l0.grad, rnn.weight_hh_l0.grad, rnn.bias_ih_l0.grad],
                               expected):
        np.testing.assert_allclose(grad, reference, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rnn.bias_hh_l0.grad, expected[2], rtol=1e-10, atol=1e-12)


# ------------------------------------------------- other mistakes a newcomer makes

@pytest.mark.parametrize("call, kind, message", [
    (lambda: nn.Linear(3, 2)(f32(4, 5)), ValueError,
     r"Linear: expected input of shape \(\.\.\., 3\) \(in_features=3\), got shape \(4, 5\)"),
    (lambda: nn.Linear(2, 2)([[1, 2]]), TypeError, r"Linear: input must be floating point, got dtype int64"),
    (lambda: nn.cross_entropy(f32(2, 3), np.array([0.0, 1.0])), TypeError,
     r"cross_entropy: target must hold integer class indices, got dtype float64"),
    (lambda: nn.cross_entropy(f32(5, 2, 3), np.zeros((5, 2), int)), ValueError,
     r"cross_entropy: expected logits \(N, C\) with target \(N,\), or logits \(C,\) with a 0-d target; "
     r"got logits \(5, 2, 3\) and target \(5, 2\)"),
    (lambda: nn.Embedding(10, 4)(np.array([[2, 10]])), IndexError,
     r"Embedding: index 10 is out of range for num_embeddings=10 \(valid: 0 to 9\)"),
    (lambda: nn.Embedding(10, 4)(tr.Tensor([1.0, 2.0])), TypeError,
     r"Embedding: indices must be integers, got dtype float32"),
    (lambda: nn.mse_loss(f32(4, 1), f32(4)), ValueError,
     r"mse_loss: pred and target must have the same shape, got \(4, 1\) and \(4,\)"),
    (lambda: nn.mse_loss(f32(4), f32(0)), ValueError,
     r"mse_loss: pred and target must have the same shape, got \(4,\) and \(0,\)"),
    (lambda: tr.Tensor([tr.Tensor([1.0]), tr.Tensor([2.0])]), TypeError,
     r"Tensor: data is a list holding Tensors; to join Tensors use tr\.stack or tr\.cat"),
    (lambda: nn.clip_grad_norm_(nn.Linear(2, 2), 1.0), TypeError,
     r"clip_grad_norm_: pass model\.parameters\(\), not the Linear itself"),
    (lambda: nn.RNN(3, 4)(tr.Tensor(np.zeros((5, 2, 3)))), TypeError,
     r"RNN: input has dtype float64 but the parameters are float32; convert the input or the layer"),
])
def test_common_mistakes_get_a_message_naming_what_is_wrong(call, kind, message):
    with pytest.raises(kind, match=message):
        call()


@pytest.mark.parametrize("params, message", [
    (lambda model: model, r"params must be an iterable of Parameters \(for example "
                          r"model\.parameters\(\)\), got Linear"),
    (lambda model: model.parameters, r"params must be an iterable of Parameters .*got method"),
    (lambda model: model.named_parameters(), r"params\[0\] is a tuple, not a Parameter"),
    (lambda model: model.weight, r"params must be an iterable of Parameters, got one Tensor; wrap it "
                                 r"in a list"),
    (lambda model: [model.weight * 2], r"params\[0\] \(shape \(2, 2\)\) is not a trainable leaf"),
])
def test_an_optimizer_given_something_other_than_parameters_says_so(params, message):
    with pytest.raises(ValueError, match=rf"SGD: {message}"):
        optim.SGD(params(nn.Linear(2, 2)), lr=0.1)


def test_layers_kept_in_a_dict_are_found_and_trained():
    class Gates(nn.Module):
        def __init__(self):
            self.gates = {"i": nn.Linear(2, 2), "f": nn.Linear(2, 2, bias=False)}
            self.vocabulary = {"a": 0}

    model = Gates()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["gates.i.weight", "gates.i.bias", "gates.f.weight"]
    assert len(optim.SGD(model.parameters(), lr=0.1).params) == 3


def test_an_optimizer_given_an_iterator_already_used_up_says_so():
    model = nn.Linear(2, 2)
    both = iter(model.parameters())
    optim.SGD(both, lr=0.1)
    with pytest.raises(ValueError, match=r"SGD: got an empty list of parameters, .*an iterator "
                                         r"such as itertools\.chain\(\.\.\.\) can be read only once"):
        optim.SGD(both, lr=0.1)


def test_a_graph_too_big_to_draw_suggests_the_cells_view():
    tr.manual_seed(5)
    outputs, _ = nn.unroll(nn.LSTMCell(2, 2), f32(30, 1, 2))
    with pytest.raises(ValueError, match=r"to_dot: the graph has \d+ nodes to draw, more than .*"
                                         r"use detail='cells'"):
        viz.to_dot(outputs[-1], max_nodes=100)
    assert "digraph" in viz.to_dot(outputs[-1], detail="cells", max_nodes=100)

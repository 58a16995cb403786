import io
import json
import math
import os
import pathlib
import pickle
import re
import struct
import sys
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn import nn

ARRAYS = {
    "float32": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
    "float64": np.array([np.pi, -0.0, np.inf, np.nan, 5e-324]),
    "int64": np.array([[-(2 ** 62), 0, 7]]),
    "uint8": np.arange(5, dtype=np.uint8),
    "bool": np.array([True, False]),
    "scalar": np.array(2.5),
    "int_scalar": np.array(-3, dtype=np.int32),
    "empty": np.zeros((0, 4)),
    "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    "strided": np.arange(10.0)[::3],
    "big_endian": np.arange(3, dtype=">f4"),
    "complex": np.array([1 + 2j]),
    "rnn.weight_ih_l0": np.ones((4, 2), dtype=np.float32),
}


def assert_same_arrays(loaded, expected):
    """Same names in the same order, and each array the same dtype, shape and bytes."""
    assert list(loaded) == list(expected)
    for key, value in expected.items():
        value = np.asarray(value)
        assert loaded[key].dtype == value.dtype, key
        assert loaded[key].shape == value.shape, key
        assert loaded[key].tobytes() == value.tobytes(), key


def only_file(folder):
    return sorted(os.listdir(folder))


# ----------------------------------------------------------------- round trip

def test_round_trip_is_bit_exact(tmp_path):
    path = tmp_path / "model.npz"
    tr.save(ARRAYS, path)
    loaded = tr.load(path)
    assert_same_arrays(loaded, ARRAYS)
    assert all(a.flags.writeable for a in loaded.values())
    assert only_file(tmp_path) == ["model.npz"]


NUMERIC_DTYPES = ["?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "g",
                  "c8", "c16", "G", ">i4", ">f8", ">c16"]


def sample(dtype):
    """A (2, 3) array of ``dtype`` whose values are not all alike (a fraction for floats)."""
    values = np.arange(6).reshape(2, 3)
    kind = np.dtype(dtype).kind
    return (values / 7 * (1 - 2j if kind == "c" else 1) if kind in "fc" else values).astype(dtype)


@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
def test_every_numeric_dtype_round_trips_exactly(tmp_path, dtype):
    array = sample(dtype)
    tr.save({"a": array}, tmp_path / "a.npz")
    assert_same_arrays(tr.load(tmp_path / "a.npz"), {"a": array})


def held_by_safetensors(dtype):
    """Whether .safetensors has this dtype: bool, integers, and floats of at most 64 bits."""
    return np.dtype(dtype).kind != "c" and np.dtype(dtype).itemsize <= 8


@pytest.mark.parametrize("dtype", [d for d in NUMERIC_DTYPES if held_by_safetensors(d)])
def test_safetensors_round_trips_every_dtype_it_holds(tmp_path, dtype):
    pytest.importorskip("safetensors")
    array = sample(dtype)
    tr.save({"a": array}, tmp_path / "a.safetensors")
    loaded = tr.load(tmp_path / "a.safetensors")["a"]
    assert loaded.dtype == array.dtype.newbyteorder("=") and np.array_equal(loaded, array)


@pytest.mark.parametrize("dtype", [d for d in NUMERIC_DTYPES if not held_by_safetensors(d)])
def test_safetensors_save_names_an_array_whose_dtype_it_cannot_hold(tmp_path, dtype):
    pytest.importorskip("safetensors")
    array = sample(dtype)
    with pytest.raises(tr.CheckpointError, match=rf"'a' has dtype {array.dtype}, which .safetensors "
                                                 r"cannot hold .* save to an .npz path instead"):
        tr.save({"w": np.zeros(2), "a": array}, tmp_path / "a.safetensors")
    assert only_file(tmp_path) == []


def test_tensors_are_saved_as_their_arrays_and_a_module_round_trips(tmp_path):
    tr.manual_seed(0)
    source, target = nn.Linear(3, 2), nn.Linear(3, 2)
    tr.save(source.state_dict(), tmp_path / "linear.npz")
    target.load_state_dict(tr.load(tmp_path / "linear.npz"))
    assert_same_arrays(target.state_dict(), source.state_dict())
    tr.save({"w": source.weight}, str(tmp_path / "tensor.npz"))
    assert_same_arrays(tr.load(str(tmp_path / "tensor.npz")), {"w": source.weight.data})


def test_numpy_reads_our_files_and_we_read_numpys(tmp_path):
    tr.save(ARRAYS, tmp_path / "ours.npz")
    with np.load(tmp_path / "ours.npz", allow_pickle=False) as archive:
        assert_same_arrays({k: archive[k] for k in archive.files}, ARRAYS)
    np.savez(tmp_path / "plain.npz", a=ARRAYS["float32"], b=ARRAYS["int64"])
    assert_same_arrays(tr.load(tmp_path / "plain.npz"), {"a": ARRAYS["float32"], "b": ARRAYS["int64"]})
    np.savez_compressed(tmp_path / "packed.npz", zeros=np.zeros((50, 50)), s=ARRAYS["scalar"])
    assert_same_arrays(tr.load(tmp_path / "packed.npz"), {"zeros": np.zeros((50, 50)),
                                                         "s": ARRAYS["scalar"]})


def test_an_empty_state_dict_round_trips(tmp_path):
    tr.save({}, tmp_path / "empty.npz")
    assert tr.load(tmp_path / "empty.npz") == {}


def test_new_files_get_the_usual_permissions(tmp_path):
    tr.save({"a": np.zeros(1)}, tmp_path / "a.npz")
    (tmp_path / "b").write_bytes(b"")
    assert os.stat(tmp_path / "a.npz").st_mode == os.stat(tmp_path / "b").st_mode


# -------------------------------------------------------------- atomic writes

def failing_write_array(real):
    def write_array(file, array, **kwargs):
        if array.size > 3:
            file.write(b"\x93NUMPY partial")
            raise OSError("No space left on device")
        real(file, array, **kwargs)
    return write_array


def test_a_failed_write_keeps_the_old_checkpoint_and_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    tr.save({"old": np.ones(2)}, path)
    before = path.read_bytes()
    monkeypatch.setattr(np.lib.format, "write_array", failing_write_array(np.lib.format.write_array))
    with pytest.raises(OSError, match="No space left"):
        tr.save({"small": np.ones(2), "large": np.ones(10)}, path)
    assert path.read_bytes() == before
    assert only_file(tmp_path) == ["model.npz"]
    with pytest.raises(OSError, match="No space left"):
        tr.save({"large": np.ones(10)}, tmp_path / "new.npz")
    assert only_file(tmp_path) == ["model.npz"]


def test_saving_into_a_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="the folder .*nowhere' does not exist"):
        tr.save({"a": np.zeros(1)}, tmp_path / "nowhere" / "a.npz")


@pytest.mark.parametrize("state, error, message", [
    ({"x": np.array([object()], dtype=object)}, tr.CheckpointError, "dtype object.*would need pickle"),
    ({"x": np.array(["text"])}, tr.CheckpointError, "'x' has dtype <U4"),
    ({"x": np.zeros(2, dtype=[("a", "f8")])}, tr.CheckpointError, "'x' has dtype"),
    ({1: np.zeros(2)}, tr.CheckpointError, "names must be non-empty strings, got 1"),
    ({"": np.zeros(2)}, tr.CheckpointError, "names must be non-empty strings, got ''"),
    ([np.zeros(2)], TypeError, "expected a dict of name -> array, got list"),
])
def test_save_refuses_what_cannot_be_loaded_without_pickle(tmp_path, state, error, message):
    with pytest.raises(error, match=message):
        tr.save(state, tmp_path / "bad.npz")
    assert only_file(tmp_path) == []


def test_checkpoint_error_is_a_value_error_exported_at_top_level():
    assert issubclass(tr.CheckpointError, ValueError)
    assert "CheckpointError" in tr.__all__ and "save" in tr.__all__ and "load" in tr.__all__


# -------------------------------------------------------------------- refusals

class TouchOnUnpickle:
    """Unpickling this object creates the file ``target``: a stand-in for any code execution."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.target),)


def test_a_pickled_payload_inside_an_npz_is_never_run(tmp_path):
    proof, target = tmp_path / "proof", tmp_path / "pwned"
    np.savez(tmp_path / "live.npz", x=np.array([TouchOnUnpickle(proof)], dtype=object))
    with np.load(tmp_path / "live.npz", allow_pickle=True) as archive:
        archive["x"]
    assert proof.exists()  # the payload is live: unpickling runs it

    np.savez(tmp_path / "evil.npz", w=np.ones(2), x=np.array([TouchOnUnpickle(target)], dtype=object))
    with pytest.raises(tr.CheckpointError, match="'x.npy' holds dtype object"):
        tr.load(tmp_path / "evil.npz")
    assert not target.exists()


def test_a_pickle_file_is_never_run(tmp_path):
    target = tmp_path / "pwned"
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"w": TouchOnUnpickle(target)}, f)
    with pytest.raises(tr.CheckpointError, match="is a pickle file .* never loaded"):
        tr.load(tmp_path / "evil.pkl")
    assert not target.exists()


TORCH_RECIPE = (r"Convert it once in PyTorch: sd = torch.load\(path, weights_only=True\); "
                r"tr.save\(\{k: v.detach\(\).numpy\(\) for k, v in sd.items\(\)\}, 'model.npz'\)")


def test_a_zip_laid_out_as_torch_save_writes_it_is_refused_with_the_conversion_recipe(tmp_path):
    target = tmp_path / "pwned"
    with zipfile.ZipFile(tmp_path / "model.pt", "w") as archive:  # today's torch.save layout
        archive.writestr("model/data.pkl", pickle.dumps({"w": TouchOnUnpickle(target)}))
        archive.writestr("model/byteorder", "little")
        archive.writestr("model/data/0", b"\0" * 8)
        archive.writestr("model/version", "3\n")
    with pytest.raises(tr.CheckpointError, match="is a PyTorch checkpoint .* never loaded.* " + TORCH_RECIPE):
        tr.load(tmp_path / "model.pt")
    assert not target.exists()


@pytest.mark.parametrize("zip_format", [True, False])
def test_a_pytorch_checkpoint_is_refused_with_the_conversion_recipe(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.zeros(2)}, tmp_path / "model.pt", _use_new_zipfile_serialization=zip_format)
    with pytest.raises(tr.CheckpointError, match=TORCH_RECIPE):
        tr.load(tmp_path / "model.pt")


def write_zip(path, members, compression=zipfile.ZIP_STORED):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names made on purpose
        with zipfile.ZipFile(path, "w", compression=compression) as archive:
            for name, data in members:
                archive.writestr(name, data)


def npy_bytes(descr, shape, payload, version=(1, 0)):
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(buffer, header)
    else:
        np.lib.format.write_array_header_2_0(buffer, header)
    return buffer.getvalue() + payload


@pytest.mark.parametrize("members, message", [
    ([("x.npy", npy_bytes("<f8", (10 ** 12,), b"\0" * 8))],
     r"declares shape \(1000000000000,\) of float64 \(8000000000000 bytes\) but holds 8 bytes"),
    ([("x.npy", npy_bytes("<f8", (2 ** 40, 2 ** 40), b""))], "declares shape"),
    ([("x.npy", npy_bytes("<f8", (3,), b"\0" * 8))], r"\(24 bytes\) but holds 8 bytes"),
    ([("x.npy", npy_bytes("<f8", (-1, 2), b"\0" * 8))], r"impossible shape \(-1, 2\)"),
    ([("x.npy", npy_bytes("|O", (1,), b"\0" * 8))], "holds dtype object"),
    ([("x.npy", npy_bytes("<U2", (1,), b"\0" * 8))], "holds dtype <U2"),
    ([("x.npy", npy_bytes("<f8", (1,), b"\0" * 8, version=(2, 0))), ("x.npy", b"")], "'x' appears twice"),
    ([("x.npy", b"\x93NUMPY\x03\x00" + b"\0" * 20)], r"format \(3, 0\)"),
    ([("x.npy", b"not an array at all")], "corrupt or truncated"),
    ([("notes.txt", b"hello")], "'notes.txt' is not an .npy array"),
])
def test_crafted_archives_are_refused_before_allocating(tmp_path, members, message):
    write_zip(tmp_path / "crafted.npz", members)
    with pytest.raises(tr.CheckpointError, match=message):
        tr.load(tmp_path / "crafted.npz")


def test_a_member_declaring_more_bytes_than_stored_is_refused(tmp_path):
    path = tmp_path / "lying.npz"
    tr.save({"x": np.zeros(4)}, path)
    data = bytearray(path.read_bytes())
    directory = data.index(b"PK\x01\x02")
    data[directory + 24:directory + 28] = struct.pack("<I", 10 ** 9)  # its uncompressed size
    path.write_bytes(bytes(data))
    with pytest.raises(tr.CheckpointError, match="declares 1000000000 bytes"):
        tr.load(path)


@pytest.mark.parametrize("descr, shape, version", [
    ("<f8", (2,), (1, 0)), ("<f4", (2, 3), (2, 0)), ("<i8", (), (1, 0)), ("|u1", (0, 3), (1, 0))])
@pytest.mark.parametrize("extra", [1, 8, 4096])
@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED],
                         ids=["stored", "deflated"])
def test_a_member_holding_more_bytes_than_its_header_declares_is_refused(tmp_path, descr, shape, version,
                                                                         extra, compression):
    size = math.prod(shape) * np.dtype(descr).itemsize
    payload = bytes(range(256)) * 100
    exact = [("x.npy", npy_bytes(descr, shape, payload[:size], version))]
    write_zip(tmp_path / "exact.npz", exact, compression)
    assert tr.load(tmp_path / "exact.npz")["x"].shape == shape
    longer = [("x.npy", npy_bytes(descr, shape, payload[:size + extra], version))]
    write_zip(tmp_path / "longer.npz", longer, compression)
    with pytest.raises(tr.CheckpointError, match=rf"'x.npy' declares shape {re.escape(str(shape))} of "
                                                 rf"\w+ \({size} bytes\) but holds {size + extra} bytes"):
        tr.load(tmp_path / "longer.npz")


def test_a_header_whose_fortran_order_is_not_a_bool_is_refused(tmp_path):
    def member(fortran_order):
        header = b"{'descr': '<f8', 'fortran_order': %s, 'shape': (2, 3), }" % fortran_order
        header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + np.arange(6.0).tobytes()

    write_zip(tmp_path / "fortran.npz", [("x.npy", member(b"True"))])
    np.testing.assert_array_equal(tr.load(tmp_path / "fortran.npz")["x"], [[0, 2, 4], [1, 3, 5]])
    write_zip(tmp_path / "lying.npz", [("x.npy", member(b"1"))])
    with pytest.raises(tr.CheckpointError, match="fortran_order is not a valid bool: 1"):
        tr.load(tmp_path / "lying.npz")


def test_a_directory_that_hides_a_member_is_refused(tmp_path):
    path = tmp_path / "hiding.npz"
    tr.save({"a": np.zeros(2), "b": np.ones(2)}, path)
    data = bytearray(path.read_bytes())
    directory = data.index(b"PK\x01\x02")
    # A long comment length on the first entry swallows the second entry into that comment.
    data[directory + 32:directory + 34] = struct.pack("<H", 0xFF)
    path.write_bytes(bytes(data))
    with pytest.raises(tr.CheckpointError, match="declares 2 members but its directory lists 1"):
        tr.load(path)


def test_bytes_that_only_start_like_an_empty_archive_are_refused(tmp_path):
    path = tmp_path / "ok.npz"
    tr.save({"w": np.arange(6.0)}, path)
    # The end record's signature, then a local header read as the record's fields:
    # zipfile ignores its disk numbers and would return an empty archive.
    path.write_bytes((b"PK\x05\x06" + path.read_bytes())[:22])
    with pytest.raises(tr.CheckpointError, match="names other disks or disagrees with itself"):
        tr.load(path)


@pytest.mark.parametrize("tail", [b"\0", bytes(100), b"appended text"], ids=["1 byte", "100 zeros", "text"])
def test_bytes_after_the_archive_s_end_are_refused(tmp_path, tail):
    path = tmp_path / "model.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", npy_bytes("<f8", (2,), bytes(16)))
        archive.comment = b"a comment the end record declares"
    assert list(tr.load(path)) == ["w"]
    path.write_bytes(path.read_bytes() + tail)
    with pytest.raises(tr.CheckpointError, match=rf"{len(tail)} bytes follow the zip's end record "
                                                 "and its 33-byte comment"):
        tr.load(path)


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"hello, world", "is neither an .npz archive nor a .safetensors file"),
    (b"\x93NUMPY\x01\x00", "is neither"),
])
def test_files_that_are_not_checkpoints_are_refused(tmp_path, content, message):
    (tmp_path / "file.npz").write_bytes(content)
    with pytest.raises(tr.CheckpointError, match=message):
        tr.load(tmp_path / "file.npz")


def saved_bytes(tmp_path):
    tr.save({"w": np.arange(12, dtype=np.float32).reshape(3, 4), "n": np.array(5)}, tmp_path / "ok.npz")
    return (tmp_path / "ok.npz").read_bytes()


def test_truncated_and_bit_flipped_files_are_refused(tmp_path):
    data = saved_bytes(tmp_path)
    for cut in [len(data) - 1, len(data) // 2, 10, 4]:
        (tmp_path / "cut.npz").write_bytes(data[:cut])
        with pytest.raises(tr.CheckpointError, match="corrupt or truncated"):
            tr.load(tmp_path / "cut.npz")
    flipped = bytearray(data)
    flipped[data.index(b"\x93NUMPY") + 130] ^= 0x10  # inside the first array's data
    (tmp_path / "flip.npz").write_bytes(bytes(flipped))
    with pytest.raises(tr.CheckpointError, match="Bad CRC-32"):
        tr.load(tmp_path / "flip.npz")


def test_a_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        tr.load(tmp_path / "nowhere.npz")


def test_every_single_byte_corruption_loads_equal_or_is_refused(tmp_path):
    data = saved_bytes(tmp_path)
    original = tr.load(tmp_path / "ok.npz")
    path = tmp_path / "mutated.npz"
    for position in range(len(data)):
        mutated = bytearray(data)
        mutated[position] ^= 0xFF
        path.write_bytes(bytes(mutated))
        try:
            loaded = tr.load(path)
        except tr.CheckpointError:
            continue
        assert_same_arrays(loaded, original)


@given(flips=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(1, 255)), max_size=4),
       cut=st.one_of(st.none(), st.integers(0, 10 ** 6)))
def test_fuzz_mutated_and_truncated_checkpoints(tmp_path_factory, flips, cut):
    folder = tmp_path_factory.getbasetemp()
    data = bytearray(saved_bytes(folder))
    original = tr.load(folder / "ok.npz")
    for position, mask in flips:
        data[position % len(data)] ^= mask
    if cut is not None:
        data = data[:cut % len(data)]
    (folder / "fuzz.npz").write_bytes(bytes(data))
    try:
        loaded = tr.load(folder / "fuzz.npz")
    except tr.CheckpointError:
        return
    assert_same_arrays(loaded, original)


# ---------------------------------------------------------------- safetensors

def test_safetensors_without_the_package_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(ImportError, match="pip install safetensors.*npz checkpoints work without it"):
        tr.save({"w": np.zeros(2)}, tmp_path / "model.safetensors")
    assert only_file(tmp_path) == []
    header = b'{"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}'
    (tmp_path / "other.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    with pytest.raises(ImportError, match="pip install safetensors"):
        tr.load(tmp_path / "other.safetensors")


def test_safetensors_round_trip(tmp_path):
    pytest.importorskip("safetensors")
    arrays = {k: v for k, v in ARRAYS.items() if v.dtype.kind != "c"}
    tr.save(arrays, tmp_path / "model.safetensors")
    assert only_file(tmp_path) == ["model.safetensors"]
    loaded = tr.load(tmp_path / "model.safetensors")
    assert sorted(loaded) == sorted(arrays)
    for key, value in arrays.items():
        assert loaded[key].shape == value.shape and np.array_equal(loaded[key], value, equal_nan=True)
        assert loaded[key].dtype == value.dtype.newbyteorder("=")
    with pytest.raises(tr.CheckpointError, match="complex"):
        tr.save({"c": ARRAYS["complex"]}, tmp_path / "c.safetensors")
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-5])
    with pytest.raises(tr.CheckpointError, match="corrupt .safetensors"):
        tr.load(tmp_path / "cut.safetensors")


def safetensors_bytes(entries, buffer):
    """A .safetensors file: the header describing ``entries`` (name -> (dtype, shape, [begin,
    end])), then ``buffer``."""
    header = json.dumps({name: {"dtype": dtype, "shape": shape, "data_offsets": offsets}
                         for name, (dtype, shape, offsets) in entries.items()}).encode()
    return struct.pack("<Q", len(header)) + header + buffer


@pytest.mark.parametrize("entries, buffer", [
    ({"x": ("F64", [2], [0, 24])}, 24),                              # a range longer than 2 x F64
    ({"x": ("F32", [1], [0, 8])}, 8),                                # the dtype of half the bytes
    ({"x": ("F64", [2], [0, 16])}, 17),                              # a byte after the last tensor
    ({"a": ("F64", [1], [0, 8]), "b": ("F64", [1], [16, 24])}, 24),  # a gap between two tensors
    ({"a": ("F64", [2], [0, 16]), "b": ("F64", [2], [8, 24])}, 24),  # two overlapping ranges
    ({"a": ("F64", [1], [0, 8]), "b": ("F64", [1], [0, 8])}, 8),     # two tensors on one range
], ids=["longer range", "dtype of fewer bytes", "trailing byte", "gap", "overlap", "shared range"])
def test_safetensors_bytes_that_the_header_does_not_account_for_are_refused(tmp_path, entries, buffer):
    pytest.importorskip("safetensors")
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_bytes({"x": ("F64", [2], [0, 16])}, bytes(16)))
    assert tr.load(path)["x"].shape == (2,)
    path.write_bytes(safetensors_bytes(entries, bytes(buffer)))
    with pytest.raises(tr.CheckpointError, match="is a corrupt .safetensors file"):
        tr.load(path)

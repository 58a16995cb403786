"""Checkpoints: ``save(state_dict, path)`` and ``load(path)``, without pickle.

The file is an ``.npz`` archive (a zip of ``.npy`` arrays, readable by
``numpy.load``), or a ``.safetensors`` file when the path ends in
``.safetensors`` and the ``safetensors`` package is installed. Writing is
atomic: the bytes go to a temporary file in the same folder, which then
replaces ``path`` in one step, so a crash never leaves half a checkpoint.

Loading trusts nothing in the file. Pickle is never used (unpickling can run
any code), so object arrays, pickle files and PyTorch ``.pt`` files are
refused. Each ``.npy`` header is parsed and checked against the bytes the
archive really holds before any array is allocated, and zip checksums are
verified, so a truncated or corrupt file raises :class:`CheckpointError`
instead of loading garbage or exhausting memory.
"""
import io
import math
import os
import secrets
import struct
import zipfile
from collections.abc import Mapping

import numpy as np

from .tensor import Tensor

_NUMERIC_KINDS = "biufc"
_ZIP_MAGIC = b"PK\x03\x04"
_END_RECORD = b"PK\x05\x06"  # also the whole of an empty archive
_END_RECORD_SIZE = 22
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_LOCATOR_SIZE = 20
_PICKLE_PROTOCOL_MARK = b"\x80"
_NPY_MAX_HEADER = 10000
# Deflate cannot expand data by more than about 1032 times; a larger declared
# size is a lie that would make us allocate memory the data cannot fill.
_DEFLATE_MAX_RATIO = 1032
_TORCH_RECIPE = ("Convert it once in PyTorch: sd = torch.load(path, weights_only=True); "
                 "tr.save({k: v.detach().numpy() for k, v in sd.items()}, 'model.npz')")


class CheckpointError(ValueError):
    """A checkpoint file cannot be written or read safely: corrupt, truncated, or not numeric."""


# ---------------------------------------------------------------------- save

def save(state_dict, path):
    """Write ``state_dict`` (name -> ndarray or Tensor) to ``path``, atomically.

    ``.npz`` unless ``path`` ends in ``.safetensors``. Names must be non-empty
    strings; values must be numeric or bool arrays (object arrays are
    refused: they would need pickle to be read back). An ``.npz`` keeps the
    order of the names and every array bit for bit; a ``.safetensors`` file
    stores them in its own order, in native byte order, without complex
    numbers or floats wider than 64 bits, and without a checksum.
    """
    arrays = _arrays_to_save(state_dict)
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        module = _safetensors_module("save")
        for key, array in arrays.items():
            if array.dtype.kind == "c" or array.dtype.itemsize > 8:
                raise CheckpointError(f"save: '{key}' has dtype {array.dtype}, which .safetensors cannot "
                                      "hold (it holds bool, integers and floats of up to 64 bits); "
                                      "save to an .npz path instead")
        data = module.save({key: np.require(a, requirements="C") for key, a in arrays.items()})
        _write_atomically(path, lambda f: f.write(data))
    else:
        _write_atomically(path, lambda f: _write_npz(f, arrays))


def _arrays_to_save(state_dict):
    if not isinstance(state_dict, Mapping):
        hint = "; for a model pass model.state_dict()" if hasattr(state_dict, "state_dict") else ""
        raise TypeError(f"save: expected a dict of name -> array, got {type(state_dict).__name__}{hint}")
    arrays = {}
    for key, value in state_dict.items():
        if not isinstance(key, str) or not key:
            raise CheckpointError(f"save: names must be non-empty strings, got {key!r}")
        array = np.asarray(value.data if isinstance(value, Tensor) else value)
        if array.dtype.kind not in _NUMERIC_KINDS or array.dtype.fields is not None:
            raise CheckpointError(f"save: '{key}' has dtype {array.dtype}; only numeric and bool "
                                  "arrays can be saved (object arrays would need pickle to load)")
        arrays[key] = array
    return arrays


def _write_npz(file, arrays):
    """The layout ``numpy.savez`` writes: one uncompressed ``name.npy`` member per array."""
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, array in arrays.items():
            with archive.open(key + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def _write_atomically(path, write):
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``."""
    folder, name = os.path.split(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save: cannot write {path!r}: the folder {folder!r} does not exist")
    temporary = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    # os.open with mode 0o666 lets the umask decide the permissions, as for any new file.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


# ---------------------------------------------------------------------- load

def load(path):
    """Read a checkpoint written by :func:`save` (or ``numpy.savez``) -> dict of ndarrays.

    Raises FileNotFoundError for a missing file, and :class:`CheckpointError`
    for anything that is not a clean numeric checkpoint: a pickle file, an
    archive holding object arrays or other members, a truncated or corrupt
    file, an array holding more or fewer bytes than its header declares, or
    bytes after the archive's end.
    """
    path = os.fspath(path)
    with open(path, "rb") as file:
        data = file.read()
    where = f"load: {path!r}"
    if data.startswith(_ZIP_MAGIC) or data.startswith(_END_RECORD):
        return _read_npz(data, where)
    if data.startswith(_PICKLE_PROTOCOL_MARK):
        raise CheckpointError(f"{where} is a pickle file (e.g. from torch.save or pickle.dump); "
                              "it is never loaded, because unpickling can run arbitrary code. "
                              + _TORCH_RECIPE)
    if _looks_like_safetensors(data):
        return _read_safetensors(data, where)
    detail = "is empty" if not data else "is neither an .npz archive nor a .safetensors file"
    raise CheckpointError(f"{where} {detail}")


def _read_npz(data, where):
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if any(info.filename.split("/")[-1] == "data.pkl" for info in members):
                raise CheckpointError(f"{where} is a PyTorch checkpoint (the zip that torch.save "
                                      "writes, around a pickle); it is never loaded, because "
                                      "unpickling can run arbitrary code. " + _TORCH_RECIPE)
            declared = _declared_member_count(data, where)
            if len(members) != declared:
                raise CheckpointError(f"{where}: the archive declares {declared} members but its "
                                      f"directory lists {len(members)}; it is corrupt")
            arrays = {}
            for info in members:
                if not info.filename.endswith(".npy"):
                    raise CheckpointError(f"{where}: member '{info.filename}' is not an .npy array "
                                          "(not a checkpoint of tr.save or numpy.savez)")
                key = info.filename[:-len(".npy")]
                if key in arrays:
                    raise CheckpointError(f"{where}: the name '{key}' appears twice")
                arrays[key] = _read_member(archive, info, len(data), where)
            return arrays
    except CheckpointError:
        raise
    except Exception as error:  # any failure to parse untrusted bytes means a bad file
        raise CheckpointError(f"{where} is corrupt or truncated ({type(error).__name__}: {error})") \
            from error


def _declared_member_count(data, where):
    """The member count in the zip's end record (zipfile trusts the directory's byte size instead,
    so a corrupt directory could otherwise drop members without an error). The record must
    describe one archive on one disk, which every checkpoint is: zipfile ignores those fields,
    so bytes that merely start with the record's signature would read as an empty archive.
    The record and the comment it declares end the file: zipfile ignores bytes after them."""
    end = data.rfind(_END_RECORD, max(0, len(data) - _END_RECORD_SIZE - 0xFFFF))
    if end < 0 or len(data) < end + _END_RECORD_SIZE:
        raise CheckpointError(f"{where}: the zip end record is missing")
    (comment,) = struct.unpack("<H", data[end + 20:end + 22])
    extra = len(data) - (end + _END_RECORD_SIZE + comment)
    if extra > 0:
        raise CheckpointError(f"{where}: {extra} bytes follow the zip's end record and its "
                              f"{comment}-byte comment; the file is corrupt or was appended to")
    disk, directory_disk, count_on_disk, count = struct.unpack("<4H", data[end + 4:end + 12])
    if disk not in (0, 0xFFFF) or directory_disk not in (0, 0xFFFF) or count_on_disk != count:
        raise CheckpointError(f"{where}: the zip end record names other disks or disagrees with "
                              f"itself about the member count; it is corrupt")
    locator = end - _ZIP64_LOCATOR_SIZE
    if count == 0xFFFF and data[locator:locator + 4] == _ZIP64_LOCATOR:
        (record,) = struct.unpack("<Q", data[locator + 8:locator + 16])
        (count,) = struct.unpack("<Q", data[record + 32:record + 40])
    return count


def _read_member(archive, info, archive_size, where):
    """One ``.npy`` member: header checked against the member's size, then the data read."""
    name = info.filename
    limit = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED else _DEFLATE_MAX_RATIO)
    if info.compress_size > archive_size or info.file_size > limit + 64:
        raise CheckpointError(f"{where}: member '{name}' declares {info.file_size} bytes, more "
                              f"than its {info.compress_size} stored bytes can hold")
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            header = np.lib.format.read_array_header_1_0(member, max_header_size=_NPY_MAX_HEADER)
        elif version == (2, 0):
            header = np.lib.format.read_array_header_2_0(member, max_header_size=_NPY_MAX_HEADER)
        else:
            raise CheckpointError(f"{where}: member '{name}' uses .npy format {version}, "
                                  "which holds no plain numeric array")
        shape, fortran_order, dtype = header
        if dtype.hasobject or dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None:
            raise CheckpointError(f"{where}: '{name}' holds dtype {dtype}; only numeric arrays are "
                                  "loaded (object arrays would need pickle, which is never used)")
        if any(n < 0 for n in shape):
            raise CheckpointError(f"{where}: '{name}' declares the impossible shape {shape}")
        needed = math.prod(shape) * dtype.itemsize
        present = info.file_size - member.tell()
        if needed != present:
            raise CheckpointError(f"{where}: '{name}' declares shape {shape} of {dtype} "
                                  f"({needed} bytes) but holds {present} bytes")
        raw = member.read(needed)  # reading to the member's end also checks its CRC-32
        if len(raw) != needed:
            raise CheckpointError(f"{where}: '{name}' is truncated")
    flat = np.frombuffer(raw, dtype=dtype)
    if fortran_order:
        return flat.reshape(shape[::-1]).transpose().copy(order="F")
    return flat.reshape(shape).copy()


# ---------------------------------------------------------------- safetensors

def _looks_like_safetensors(data):
    """A safetensors file: 8-byte little-endian header length, then a JSON object."""
    if len(data) < 10:
        return False
    (header_length,) = struct.unpack("<Q", data[:8])
    return data[8:9] == b"{" and header_length <= len(data) - 8


def _safetensors_module(action):
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError(f"{action}: .safetensors files need the 'safetensors' package "
                          "(pip install safetensors); .npz checkpoints work without it") from None
    return safetensors.numpy


def _read_safetensors(data, where):
    module = _safetensors_module("load")
    try:
        arrays = module.load(data)
    except Exception as error:  # any failure to parse untrusted bytes means a bad file
        raise CheckpointError(f"{where} is a corrupt .safetensors file "
                              f"({type(error).__name__}: {error})") from error
    return {key: np.array(array) for key, array in arrays.items()}

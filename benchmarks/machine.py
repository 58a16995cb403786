"""What the figures were measured on: CPU, cores, library versions, BLAS threads, date."""
import ctypes
import datetime
import glob
import os
import platform
import subprocess
import sys

import numpy as np

# OpenBLAS's thread functions are named differently between builds: numpy's
# wheels ship scipy-openblas with a prefixed, 64-bit-integer interface.
_PREFIXES = ("scipy_openblas_", "openblas_")
_SUFFIXES = ("64_", "")
_GET_THREADS = [f"{p}get_num_threads{s}" for p in _PREFIXES for s in _SUFFIXES]
_SET_THREADS = [f"{p}set_num_threads{s}" for p in _PREFIXES for s in _SUFFIXES]


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def blas_threads():
    """(threads numpy's BLAS uses, how that was found).

    Asks the OpenBLAS library that numpy ships (``numpy.libs`` next to the
    package, or the scipy_openblas package it was built against) through
    ctypes; falls back to ``os.cpu_count()`` when there is none to ask.
    """
    query, where = _openblas_function(_GET_THREADS)
    if query is None:
        return os.cpu_count() or 1, "os.cpu_count() (no OpenBLAS library found to ask)"
    return int(query()), where


def set_blas_threads(threads):
    """Make numpy's OpenBLAS use ``threads`` threads from now on (the process's BLAS is shared)."""
    setter, _ = _openblas_function(_SET_THREADS)
    if setter is None:
        raise RuntimeError("set_blas_threads: no OpenBLAS library found to set numpy's BLAS threads; "
                           "set your BLAS's environment variable (e.g. OPENBLAS_NUM_THREADS) "
                           "before starting Python instead")
    setter(int(threads))
    if blas_threads()[0] != threads:
        raise RuntimeError(f"set_blas_threads: asked OpenBLAS for {threads} threads, "
                           f"it reports {blas_threads()[0]}")


def _openblas_function(symbols):
    """(the first of ``symbols`` found in numpy's OpenBLAS, where it was found), or (None, None)."""
    for path in _openblas_libraries():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in symbols:
            function = getattr(library, symbol, None)
            if function is not None:
                return function, f"{symbol}() in {os.path.basename(path)}"
    return None, None


def _openblas_libraries():
    numpy_dir = os.path.dirname(np.__file__)
    patterns = [os.path.join(numpy_dir, os.pardir, "numpy.libs", "*openblas*"),
                os.path.join(numpy_dir, ".dylibs", "*openblas*")]
    try:
        import scipy_openblas64
        patterns.append(os.path.join(os.path.dirname(scipy_openblas64.__file__), "lib", "*openblas*"))
    except ImportError:
        pass
    return [path for pattern in patterns for path in sorted(glob.glob(pattern))]


def blas_name():
    """The BLAS numpy was built against, e.g. "scipy-openblas 0.3.31"."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (KeyError, TypeError, ValueError):
        return "unknown"
    return f"{blas.get('name', 'unknown')} {blas.get('version', '')}".strip()


def engine_revision():
    """The git commit of the measured code, "+modified" if tinygrad_rnn/ has uncommitted changes."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, check=True,
                                capture_output=True, text=True).stdout.strip()
        changes = subprocess.run(["git", "status", "--porcelain", "--", "tinygrad_rnn"], cwd=repo,
                                 check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+modified" if changes else "")


def describe(torch=None):
    """A dict describing this machine and run, for the results file and the printed header."""
    threads, how = blas_threads()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "revision": engine_revision(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "blas": blas_name(),
        "blas_threads": threads,
        "blas_threads_from": how,
        "torch": torch.__version__ if torch is not None else None,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "malloc_settings": {name: value for name, value in sorted(os.environ.items())
                            if name.startswith("MALLOC_")},
        "load_average": [round(load, 2) for load in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }

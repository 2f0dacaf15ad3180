"""Thread limits for the probes.

The probes are small dense problems (Gram matrices of a few hundred rows, 300 x 300
eigendecompositions). With OpenBLAS's thread pool on a machine whose cores are busy with other work,
they were measured 50-150x slower than single-threaded (a 400 x 400 `eigh`: 2.5 s vs 0.017 s on the
shared 2-core machine), so `eval.probe_threads` (default 1) caps both numpy's OpenBLAS and torch
while protocols run. numpy exposes no setter, so the OpenBLAS library numpy loaded is found in the
process's memory map and its `*_set_num_threads*` symbol called through ctypes; where that is not
possible (another BLAS, another OS) the limit applies to torch only.
"""

from __future__ import annotations

import contextlib
import ctypes
from pathlib import Path
from typing import Callable, Iterator

import torch

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads_64_",
            "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads_64_",
            "openblas_get_num_threads64_", "openblas_get_num_threads")

_cached: tuple[Callable[[int], None], Callable[[], int]] | None | bool = False


def _openblas() -> tuple[Callable[[int], None], Callable[[], int]] | None:
    global _cached
    if _cached is not False:
        return _cached  # type: ignore[return-value]
    import numpy  # (make sure numpy's BLAS is loaded)

    _cached = None
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return None
    paths = sorted({line.split()[-1] for line in maps.read_text().splitlines()
                    if "openblas" in line.lower() and line.split()[-1].startswith("/")})
    # Other wheels bundle their own OpenBLAS (faiss's is an OpenMP build whose setter changes the
    # OpenMP thread count torch uses too): numpy's own copy first, the others only as a fallback.
    numpy_dir = str(Path(numpy.__file__).resolve().parent)
    paths.sort(key=lambda path: not path.startswith((numpy_dir, numpy_dir + ".libs")))
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, n) for n in _SETTERS if hasattr(lib, n)), None)
        getter = next((getattr(lib, n) for n in _GETTERS if hasattr(lib, n)), None)
        if setter is not None and getter is not None:
            setter.argtypes, setter.restype = [ctypes.c_int], None
            getter.argtypes, getter.restype = [], ctypes.c_int
            _cached = (setter, getter)
            break
    return _cached  # type: ignore[return-value]


def blas_threads() -> int | None:
    """OpenBLAS's current thread count, or None when it cannot be controlled."""
    lib = _openblas()
    return None if lib is None else int(lib[1]())


@contextlib.contextmanager
def limit_threads(n: int) -> Iterator[None]:
    """Run the block with at most `n` BLAS and torch threads (n <= 0: leave them alone)."""
    if n <= 0:
        yield
        return
    lib = _openblas()
    previous_blas = lib[1]() if lib is not None else None
    previous_torch = torch.get_num_threads()
    if lib is not None:
        lib[0](n)
    torch.set_num_threads(min(n, previous_torch))
    try:
        yield
    finally:
        torch.set_num_threads(previous_torch)
        if lib is not None and previous_blas is not None:
            lib[0](previous_blas)

"""Build a benchmark once per (name, build parameters) and reuse it from the cache afterwards."""

from __future__ import annotations

import os
from pathlib import Path

from paco_fr.eval import data as D
from paco_fr.eval.build import BuildContext
from paco_fr.eval.registry import Benchmark


def build_params(benchmark: Benchmark, ctx: BuildContext) -> dict:
    # The protocol key is part of the build: a new protocol version is a new build, never a stale cache.
    return {**ctx.cache_params(), "protocol": benchmark.protocol.key}


def cache_directory(benchmark: Benchmark, ctx: BuildContext, cache_dir: str | os.PathLike[str]) -> Path:
    return Path(cache_dir) / benchmark.name / D.cache_key(benchmark.name, build_params(benchmark, ctx))


def materialise(benchmark: Benchmark, ctx: BuildContext,
                cache_dir: str | os.PathLike[str]) -> tuple[D.BenchmarkData, str, Path, bool]:
    """(data, data version, its cache folder, whether it came from the cache).

    A cache folder is written atomically, so a folder that exists is complete; when two processes
    build the same benchmark at once, the second keeps the first one's folder."""
    directory = cache_directory(benchmark, ctx, cache_dir)
    if directory.exists():
        data, version = D.load(directory)
        if data.task != benchmark.task:
            raise D.BenchmarkDataError(f"{directory}: cached task {data.task!r}, benchmark says {benchmark.task!r}")
        return data, version, directory, True
    data = benchmark.loader(ctx)
    if data.task != benchmark.task:
        raise D.BenchmarkDataError(f"loader of {benchmark.name} returned task {data.task!r}, expected {benchmark.task!r}")
    if directory.exists():  # built meanwhile by another process
        cached, version = D.load(directory)
        return cached, version, directory, True
    version = D.save(data, directory, {"benchmark": benchmark.name, **build_params(benchmark, ctx)})
    return data, version, directory, False

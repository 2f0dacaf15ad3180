"""Readers of official dataset layouts (CelebA, LFW, RAF-DB, 300W, WFLW, LaPa, CelebAMask-HQ).

Each module exposes `build(ctx: BuildContext) -> BenchmarkData`: it reads the dataset from
`ctx.data_root` in its official layout, aligns the faces like the pre-training crops and maps its
labels onto ours. A missing or malformed file raises `BenchmarkDataError` naming the file and what
was expected.
"""

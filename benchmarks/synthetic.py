"""Procedural face generator speed on one core, per crop size, against PNG-encoding the same images
(measured in the same run). Prints a table, writes benchmarks/results/synthetic.json.

    .venv/bin/python benchmarks/synthetic.py [--sizes 112 192 256]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from paco_fr.data.synthetic.speed import measure  # noqa: E402
from paco_fr.io import write_json_atomic  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[112, 192, 256])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "synthetic.json"))
    args = parser.parse_args()
    rows = [measure(size) for size in args.sizes]
    print(f"{'size':>5} {'faces/s':>9} {'png enc/s':>10} {'gen/png':>8}")
    for row in rows:
        print(f"{row['size']:>5} {row['faces_per_s']:>9.1f} {row['png_encodes_per_s']:>10.1f} {row['generate_vs_png']:>8.2f}")
    write_json_atomic(args.out, {"machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                                 "results": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

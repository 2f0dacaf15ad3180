"""Measure the generator's speed on one core: faces per second, and where the time goes.

    python -m paco_fr.data.synthetic.speed [size]

Best-of-N batches of CPU time (the machine is shared; the best batch approximates an unloaded core).
The baseline measured in the same run is PNG-encoding the same images (what storing the corpus costs
anyway): `generate_vs_png` > 1 means drawing a face is cheaper than writing it.
"""

from __future__ import annotations

import io
import json
import sys
import time

from PIL import Image

from .api import generate_params, render_face
from .geometry import build_scene
from .raster import Projector, draw_details, draw_scene, shade_and_compose


def _best_rate(fn, n: int, repeats: int) -> float:
    best = float("inf")
    for r in range(repeats):
        t = time.process_time()
        fn(r)
        best = min(best, time.process_time() - t)
    return n / best


def measure(size: int = 192, n: int = 40, repeats: int = 5) -> dict:
    params = [list(generate_params(n, seed=100 + r)) for r in range(repeats)]
    for p in params[0][:3]:
        render_face(p, size)  # warm caches (pixel grids, noise bank)
    faces_per_s = _best_rate(lambda r: [render_face(p, size) for p in params[r]], n, repeats)
    params_per_s = _best_rate(lambda r: list(generate_params(n, seed=200 + r)), n, repeats)
    images = [render_face(p, size).image for p in params[0]]
    png_per_s = _best_rate(lambda r: [Image.fromarray(im).save(io.BytesIO(), format="PNG") for im in images], n, repeats)
    stages: dict[str, float] = {}
    for p in params[0]:
        proj = Projector(p, size)
        t0 = time.process_time()
        scene = build_scene(p)
        t1 = time.process_time()
        albedo, codes = draw_scene(scene, proj)
        t2 = time.process_time()
        details = draw_details(scene, proj)
        t3 = time.process_time()
        shade_and_compose(p, proj, albedo, codes, details)
        t4 = time.process_time()
        for k, v in (("scene_ms", t1 - t0), ("draw_ms", t2 - t1), ("details_ms", t3 - t2), ("compose_ms", t4 - t3)):
            stages[k] = stages.get(k, 0.0) + 1000 * v / n
    return {"size": size, "faces_per_s": round(faces_per_s, 1), "params_per_s": round(params_per_s, 1),
            "png_encodes_per_s": round(png_per_s, 1), "generate_vs_png": round(faces_per_s / png_per_s, 2),
            **{k: round(v, 2) for k, v in stages.items()}}


if __name__ == "__main__":
    sizes = [int(a) for a in sys.argv[1:]] or [192]
    for s in sizes:
        print(json.dumps(measure(s)))

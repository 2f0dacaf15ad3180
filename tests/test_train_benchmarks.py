"""The GPU throughput benchmark's CPU smoke mode: it runs, counts FLOPs and writes its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_pretrain_smoke_mode_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_pretrain.py"), "--device", "cpu", "--steps", "2",
           "--model", "test_vit", "--img-size", "32", "--patch-size", "8", "--batch", "4", "--decoder-dim", "32",
           "--decoder-depth", "1", "--decoder-heads", "4", "--codebook-size", "32", "--window", "1", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [r["preset"] for r in report["results"]] == ["paco_fr", "mae"]
    for r in report["results"]:
        assert r["flops_per_step"] > 0 and r["images_per_s"] > 0 and 0 < r["mfu"] < 1
    # paco_fr does more work than mae on the same encoder (codebook, heads).
    assert report["results"][0]["flops_per_step"] > report["results"][1]["flops_per_step"]
    assert report["peak_tflops_used"] == 989.0 and "MFU" in proc.stdout

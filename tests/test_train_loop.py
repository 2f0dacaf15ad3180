"""The pretrain stage end to end on a fixture corpus: outputs, incubation, resume (in process and
after SIGKILL, bit-identical), configuration errors, and DDP against one process."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from paco_fr.config import ConfigError, load_config
from paco_fr.lineage import content_hash
from paco_fr.model import load_encoder
from paco_fr.train.cli import main as pretrain_main
from paco_fr.train.loop import build_model
from paco_fr.train.stage import pretrain
from paco_fr.train.toydata import write_toy_corpus
from paco_fr.train.tracking import read_metrics

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"
TINY = ["model.img_size=32", "model.patch_size=8", "model.codebook_size=32", "model.decoder_dim=32",
        "model.decoder_depth=1", "model.belief_hidden=32", "model.relation_dim=16", "model.restart_every=3",
        "train.batch_size=8", "train.warmup_steps=2", "train.log_every=1", "train.image_every=4",
        "train.checkpoint_every=2", "train.num_workers=0", "train.val_batches=1",
        "train.epochs=100", "train.loader_groups=2", "train.loader_streams=2"]

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _no_wandb(monkeypatch):
    """wandb's mode comes from the environment; these tests run without it unless they ask."""
    monkeypatch.setenv("WANDB_MODE", "disabled")


def run_dir(out: Path) -> Path:
    """Where a run's checkpoints, progress log and wandb files go for an output outside a repository."""
    return out.with_name(out.name + ".run")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    # 48 faces: 38 train (4 batches of 8 per epoch), 5 val, 5 test.
    return write_toy_corpus(root / "corpus", root / "regions", n_faces=48, size=32, shard_size=20, seed=1)


def tiny_cfg(*extra: str, preset: str | None = None):
    return load_config(PARAMS, preset=preset, overrides=[*TINY, *extra])


def test_pretrain_cli_writes_the_documented_layout(corpus, tmp_path, monkeypatch, _isolated_lineage_log):
    corpus_dir, regions_dir = corpus
    out = tmp_path / "enc"
    monkeypatch.setenv("WANDB_MODE", "offline")
    code = pretrain_main(["--corpus", str(corpus_dir), "--regions", str(regions_dir), "--out", str(out),
                          "--params", str(PARAMS), "--no-progress", "--preset", "paco_fr",
                          *[a for kv in [*TINY, "train.max_steps=6"] for a in ("--set", kv)]])
    assert code == 0
    for name in ("encoder.safetensors", "model_card.json", "metrics.jsonl", "loss_curve.png", "reconstructions.png",
                 "images/step_000006.png"):
        assert (out / name).is_file(), name
    # Facts of the run live beside the artifact, never inside it.
    assert sorted(p.name for p in out.iterdir()) == ["encoder.safetensors", "images", "loss_curve.png",
                                                     "metrics.jsonl", "model_card.json", "reconstructions.png"]
    assert not (run_dir(out) / "checkpoints").exists(), "a finished run keeps no checkpoint"
    assert list((run_dir(out) / "wandb").glob("offline-run-*")), "the offline wandb run lives in the run folder"
    progress = [json.loads(line) for line in (run_dir(out) / "progress.jsonl").read_text().splitlines()]
    assert progress[-1]["step"] == 6 and progress[-1]["eta_s"] == 0 and progress[-1]["images_per_s"] > 0
    card = json.loads((out / "model_card.json").read_text())
    assert card["encoder"] == {**card["encoder"], "name": "vit_tiny_patch16_224", "img_size": 32, "patch_size": 8,
                               "embed_dim": 192}
    assert card["preset"] == "paco_fr" and card["method"] == "paco_fr"
    from paco_fr.lineage import content_hash

    assert card["data"]["corpus_manifest_md5"] == content_hash(corpus_dir / "manifest.parquet")
    assert card["metrics"]["steps"] == 6 and card["metrics"]["incubation_steps"] == 4
    assert "val" in card["metrics"] and "wall_time_s" not in card
    records = read_metrics(out)
    train = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5, 6]
    assert [r["incubation"] for r in train] == [True] * 4 + [False] * 2
    # Incubation steps log the codebook's terms; the main phase adds the encoder's.
    assert {"loss", "align", "perplexity", "dead_codes", "lr", "codebook_lr"} <= set(train[0])
    assert "images_per_s" not in train[0]  # throughput is a fact of the run: progress.jsonl
    assert "rec" not in train[0]
    assert {"rec", "tok", "tok_acc", "tok_chance", "spatial", "usage_gap"} <= set(train[-1])
    assert records[-1]["split"] == "val"
    from paco_fr.lineage import read_provenance

    provenance = read_provenance(out)
    assert provenance["key"] == content_hash(out)
    assert provenance["stage"] == "pretrain" and set(provenance["inputs"]) == {"corpus", "regions"}
    assert "preset=paco_fr" in provenance["overrides"] and provenance["run"]["wall_time_s"] > 0
    model, card2 = load_encoder(out)
    assert card2["preset"] == "paco_fr"
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 192)


def test_incubation_freezes_the_encoder_for_the_first_epoch(corpus, tmp_path):
    corpus_dir, regions_dir = corpus
    cfg = tiny_cfg("train.max_steps=4")  # one epoch = 4 steps = the incubation
    init = build_model(cfg.model, cfg.seed)
    result = pretrain(cfg, corpus_dir, regions_dir, tmp_path / "a", progress=False)
    trained = load_file(str(result.encoder_path))
    assert all(torch.equal(trained[k], v) for k, v in init.encoder.vit.state_dict().items())
    state = result.model.state_dict()
    assert not torch.equal(state["codebook.codes"], init.codebook.codes.detach())
    assert torch.equal(state["decoder.embed.weight"], init.decoder.embed.weight.detach())
    result = pretrain(tiny_cfg("train.max_steps=5"), corpus_dir, regions_dir, tmp_path / "b", progress=False)
    trained = load_file(str(result.encoder_path))
    assert any(not torch.equal(trained[k], v) for k, v in init.encoder.vit.state_dict().items())


def test_optimizer_groups_decay_and_codebook_learning_rate():
    from paco_fr.train.optim import build_optimizer, lr_at, set_lr

    cfg = tiny_cfg()
    model = build_model(cfg.model, 0)
    opt = build_optimizer(model, 1e-3, 0.05, (0.9, 0.95), torch.device("cpu"))
    by_param = {id(p): g for g in opt.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert by_param[id(named["codebook.codes"])]["weight_decay"] == 0.0
    assert by_param[id(named["encoder.vit.pos_embed"])]["weight_decay"] == 0.0
    assert by_param[id(named["encoder.vit.blocks.0.norm1.weight"])]["weight_decay"] == 0.0
    assert by_param[id(named["encoder.vit.blocks.0.attn.qkv.weight"])]["weight_decay"] == 0.05
    assert sum(len(g["params"]) for g in opt.param_groups) == len(named)
    set_lr(opt, 1e-3, 2e-4)
    assert by_param[id(named["codebook.belief.0.weight"])]["lr"] == pytest.approx(2e-4)
    assert by_param[id(named["code_to_pixel.net.0.weight"])]["lr"] == pytest.approx(2e-4)
    assert by_param[id(named["encoder.vit.blocks.0.attn.qkv.weight"])]["lr"] == pytest.approx(1e-3)
    # Warmup then cosine to min_lr.
    sched = [lr_at(s, base_lr=1.0, min_lr=0.1, warmup_steps=4, total_steps=20) for s in range(21)]
    assert sched[0] == pytest.approx(0.25) and sched[3] == pytest.approx(1.0)
    assert sched[4] == pytest.approx(1.0) and sched[20] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(sched[4:], sched[5:]))


def test_mae_preset_trains_without_codebook_terms(corpus, tmp_path):
    corpus_dir, regions_dir = corpus
    result = pretrain(tiny_cfg("train.max_steps=3", preset="mae"), corpus_dir, regions_dir, tmp_path, progress=False)
    assert result.metrics["incubation_steps"] == 0
    assert set(result.metrics["final"]) >= {"rec", "loss"} and "tok" not in result.metrics["final"]
    with pytest.raises(ConfigError, match="incubation"):
        pretrain(tiny_cfg("train.max_steps=3", "train.incubation_epochs=1", preset="mae"), corpus_dir, regions_dir,
                 tmp_path / "x", progress=False)


class _Crash(RuntimeError):
    pass


def test_resume_in_process_with_accumulation_and_workers_matches_a_straight_run(corpus, tmp_path, monkeypatch):
    corpus_dir, regions_dir = corpus
    extra = ("train.grad_accum=2", "train.batch_size=4", "train.num_workers=1", "train.checkpoint_every=3",
             "train.max_steps=7")
    pretrain(tiny_cfg(*extra), corpus_dir, regions_dir, tmp_path / "s", progress=False)
    # The same run dies at its first reconstruction grid (step 7: incubation has no reconstruction),
    # after the step-6 checkpoint.
    import paco_fr.train.loop as loop

    def crash(*args, **kwargs):
        raise _Crash("killed at step 4")

    with monkeypatch.context() as patch:
        patch.setattr(loop, "reconstruction_grid", crash)
        with pytest.raises(_Crash):
            pretrain(tiny_cfg(*extra), corpus_dir, regions_dir, tmp_path / "r", progress=False)
    # What a SIGKILL inside save_png leaves in the run's output: the temporary of an image never renamed.
    # It must not reach the published encoder folder (its DVC md5 would differ from the straight run's).
    leftover = run_dir(tmp_path / "r") / "output" / "images" / ".step_000008.png.k1ll3d.tmp"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.touch()
    resumed = pretrain(tiny_cfg(*extra), corpus_dir, regions_dir, tmp_path / "r", resume=True, progress=False)
    assert (tmp_path / "s" / "encoder.safetensors").read_bytes() == (tmp_path / "r" / "encoder.safetensors").read_bytes()
    assert resumed.run["resumed_from_step"] == 6
    assert content_hash(tmp_path / "r") == content_hash(tmp_path / "s")
    steps = [r["step"] for r in read_metrics(tmp_path / "r") if r["split"] == "train"]
    assert steps == list(range(1, 8))
    # A checkpoint of another configuration is not continued: that run starts at step 0.
    other = pretrain(tiny_cfg(*extra, "train.max_steps=8", "model.top_k=2"), corpus_dir, regions_dir, tmp_path / "r",
                     resume=True, progress=False)
    assert other.run["resumed_from_step"] is None


def _cli(corpus, out: Path, *extra: str) -> list[str]:
    corpus_dir, regions_dir = corpus
    args = [sys.executable, "-m", "paco_fr.train", "--corpus", str(corpus_dir), "--regions", str(regions_dir),
            "--out", str(out), "--params", str(PARAMS), "--no-progress"]
    # timm's test_vit (64-d, 6 blocks) keeps the subprocess runs short; any timm ViT behaves alike.
    for kv in [*TINY, "model.encoder=test_vit", "train.num_workers=1", "train.checkpoint_every=3", *extra]:
        args += ["--set", kv]
    return args


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), WANDB_MODE="disabled")
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


def _last_step(out: Path) -> int:
    path = run_dir(out) / "progress.jsonl"  # what a person watching the run reads
    if not path.exists():
        return 0
    steps = []
    for line in path.read_text().splitlines():
        try:  # the writer may be mid-line while we read
            steps.append(json.loads(line)["step"])
        except (json.JSONDecodeError, KeyError):
            continue
    return max(steps, default=0)


def test_sigkill_then_resume_is_bit_identical_to_an_uninterrupted_run(corpus, tmp_path):
    """The run to kill is a subprocess (python -m paco_fr.train); the uninterrupted reference and the
    resume run in this process with the same configuration and thread count (1)."""
    total = 16
    killed = tmp_path / "killed"
    kill_at = random.Random().randint(4, total - 5)
    proc = subprocess.Popen(_cli(corpus, killed, f"train.max_steps={total}"), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while _last_step(killed) < kill_at and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert not (killed / "encoder.safetensors").exists(), "the run finished before it could be killed"
    ckpt = torch.load(run_dir(killed) / "checkpoints" / "last.pt", weights_only=True)
    # The checkpoint is up to 3 steps behind the kill: the resumed run redoes those steps.
    assert kill_at - 4 <= ckpt["step"] < total and ckpt["step"] % 3 == 0
    # A kill during a save may leave its temporary file; last.pt is still the previous whole checkpoint
    # (loaded above), and the resume sweeps the leftover away.

    corpus_dir, regions_dir = corpus
    cfg = tiny_cfg("model.encoder=test_vit", "train.num_workers=1", "train.checkpoint_every=3",
                   f"train.max_steps={total}")
    straight = tmp_path / "straight"
    reference = pretrain(cfg, corpus_dir, regions_dir, straight, progress=False)
    resumed = pretrain(cfg, corpus_dir, regions_dir, killed, resume=True, progress=False)
    assert resumed.run["resumed_from_step"] == ckpt["step"]
    assert not (run_dir(killed) / "checkpoints").exists(), "a finished run keeps no checkpoint"
    a = load_file(str(straight / "encoder.safetensors"))
    b = load_file(str(killed / "encoder.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (straight / "encoder.safetensors").read_bytes() == (killed / "encoder.safetensors").read_bytes()
    # The whole model agrees too (codebook, decoder, heads), not only the exported encoder.
    sa, sb = reference.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    losses = lambda out: [(r["step"], r["loss"]) for r in read_metrics(out) if r["split"] == "train"]  # noqa: E731
    assert losses(straight) == losses(killed)


@pytest.mark.slow
def test_ddp_two_processes_follow_the_one_process_trajectory(corpus, tmp_path):
    # Incubation (4 steps), data-dependent code initialisation and dead-code restarts (every 3 steps;
    # the high threshold forces some) all happen within these 8 steps: each draws from the
    # embeddings of all ranks in global batch order.
    extra = ("train.max_steps=8", "train.num_workers=0", "train.checkpoint_every=8",
             "model.dead_code_threshold=0.04", "train.loader_groups=2")
    one = tmp_path / "one"
    subprocess.run(_cli(corpus, one, *extra), check=True, env=_env(), timeout=300, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    two = tmp_path / "two"
    cmd = _cli(corpus, two, *extra)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(torchrun + cmd[1:], env=_env(), timeout=300, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r1 = [r for r in read_metrics(one) if r["split"] == "train"]
    r2 = [r for r in read_metrics(two) if r["split"] == "train"]
    assert [r["step"] for r in r1] == [r["step"] for r in r2] == list(range(1, 9))
    for a, b in zip(r1, r2):
        # Measured: within ~1e-6 relative (float summation order); incubation steps included.
        assert set(a) == set(b)  # incubation steps have no rec / tok / spatial, in both runs
        for key in ("loss", "rec", "tok", "align", "spatial", "usage_gap"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (a["step"], key)
        assert b["code_restarts"] == a["code_restarts"]
    assert r1[-1]["code_restarts"] > 0
    from paco_fr.lineage import read_provenance

    assert read_provenance(two)["run"]["world_size"] == 2
    # Rank 0 alone wrote: one provenance record, one metrics file, no stray temporary files.
    assert not list(two.glob(".*.tmp"))

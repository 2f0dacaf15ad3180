"""Helpers that turn stage outputs into metadata a person wants to see in the Dagster UI."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Mapping

import dagster as dg

from paco_fr.lineage import git_state

# Images above this size are linked by path instead of embedded, to keep the event log small.
_MAX_EMBED_BYTES = 600_000


def image_md(path: Path, title: str) -> dg.MetadataValue:
    """A PNG shown inline in the asset's metadata panel (Markdown with a data URI)."""
    if not path.exists():
        return dg.MetadataValue.md(f"*{title}: not produced*")
    data = path.read_bytes()
    if len(data) > _MAX_EMBED_BYTES:
        return dg.MetadataValue.md(f"**{title}**: `{path}` ({len(data) // 1024} KiB)")
    encoded = base64.b64encode(data).decode()
    return dg.MetadataValue.md(f"**{title}**\n\n![{title}](data:image/png;base64,{encoded})")


def counts_table(counts: Mapping[str, Any], key: str = "reason", value: str = "count") -> dg.MetadataValue:
    rows = "\n".join(f"| {k} | {v} |" for k, v in sorted(counts.items(), key=lambda kv: (-_num(kv[1]), kv[0])))
    return dg.MetadataValue.md(f"| {key} | {value} |\n|---|---|\n{rows}" if rows else "*none*")


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def lineage_metadata(outs: Mapping[str, str]) -> dict[str, dg.MetadataValue]:
    git = git_state()
    return {
        "dvc_outs": dg.MetadataValue.json(dict(outs)),
        "git_commit": dg.MetadataValue.text(f"{git['commit'] or 'unknown'}{' (dirty)' if git['dirty'] else ''}"),
    }

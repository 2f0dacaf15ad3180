"""Helpers that turn stage outputs into metadata a person wants to see in the Dagster UI."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Mapping

import dagster as dg

from paco_fr.lineage import find_records

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


def lineage_metadata(root: Path, artifact: str, md5: str) -> dict[str, dg.MetadataValue]:
    """The version's identity (DVC md5 = this materialisation's data version = the lineage key) and
    the record of the run that built it, from the lineage log."""
    runs = find_records(artifact, md5, root=root)
    first = min(runs, key=lambda r: r["run"].get("created_at", "")) if runs else None
    out: dict[str, dg.MetadataValue] = {"dvc_md5": dg.MetadataValue.text(md5),
                                        "path": dg.MetadataValue.path(str(root / artifact))}
    if first is None:
        out["lineage"] = dg.MetadataValue.md("*no lineage record for this version*")
        return out
    latest = max(runs, key=lambda r: r["run"].get("created_at", ""))
    code = first.get("code", {})
    inputs = "\n".join(f"| {name} | `{info['path']}` | `{info['md5']}` |" for name, info in first["inputs"].items())
    out["lineage"] = dg.MetadataValue.md(
        f"built by stage **{first['stage']}** at git `{str(code.get('commit'))[:10]}`"
        f"{' (dirty)' if code.get('dirty') else ''}, first run {first['run'].get('created_at')}, "
        f"{len(runs)} run(s) of this version\n\n| input | path | md5 |\n|---|---|---|\n{inputs}"
        if inputs else f"built by stage **{first['stage']}**, {len(runs)} run(s) of this version")
    out["last_run"] = dg.MetadataValue.json({k: v for k, v in latest["run"].items() if not isinstance(v, dict)})
    return out

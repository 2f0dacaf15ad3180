"""Helpers that turn stage outputs into metadata a person wants to see in the Dagster UI."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Mapping

import dagster as dg

from paco_fr.lineage import find_records

# Dagster renders a Markdown value inline only when it is short (under 1,000 characters; longer ones sit
# behind a "[Show Markdown]" click), so a picture cannot travel inside the metadata. Each picture is
# written, scaled to fit the page of a laptop screen, to <instance home>/pictures/<artifact md5>/ and the
# metadata holds a short Markdown image pointing at it; `paco-fr-ui` serves that folder. A version's
# pictures live under its md5, so an old materialisation shows its own pictures, and erasure deletes
# the folders of the versions built from a forgotten image.
MAX_WIDTH = 900
MAX_BYTES = 350_000
PICTURES_DIR = "pictures"
PICTURES_URL_ENV = "PACO_FR_PICTURES_URL"
DEFAULT_PICTURES_URL = "http://127.0.0.1:3001"


def pictures_root(root: Path) -> Path:
    return root / ".dagster_home" / PICTURES_DIR


def image_md(path: Path, title: str, *, root: Path, version: str, max_width: int = MAX_WIDTH) -> dg.MetadataValue:
    """A picture shown inline in the asset's metadata: a scaled copy under the version's folder of the
    picture store, and a Markdown image of its URL (the full-size file is named beside it)."""
    if not path.exists():
        return dg.MetadataValue.md(f"*{title}: not produced*")
    data, suffix, (width, height) = _fitted(path, max_width)
    name = f"{path.stem}{suffix}"
    target = pictures_root(root) / version.replace(".dir", "") / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    base = os.environ.get(PICTURES_URL_ENV, DEFAULT_PICTURES_URL).rstrip("/")
    return dg.MetadataValue.md(f"![{title}]({base}/{target.parent.name}/{name})\n\n"
                               f"*{title}: {width}x{height} px, `{path.name}`*")


def _fitted(path: Path, max_width: int) -> tuple[bytes, str, tuple[int, int]]:
    """The picture at most `max_width` wide and MAX_BYTES large: PNG, else JPEG, else narrower."""
    from PIL import Image

    with Image.open(path) as image:
        size = image.size
        if image.format == "PNG" and size[0] <= max_width and path.stat().st_size <= MAX_BYTES:
            # Already fits: shown as written. Re-encoding every picture (PNG optimize) took 3 of the
            # 18 s a 31-partition recording spent.
            return path.read_bytes(), ".png", size
        image = image.convert("RGB")
        width = min(max_width, size[0])
        while True:
            shown = image.resize((width, max(1, round(size[1] * width / size[0]))), Image.LANCZOS) \
                if width < size[0] else image
            buffer = io.BytesIO()
            shown.save(buffer, format="PNG", optimize=True)
            if buffer.tell() <= MAX_BYTES:
                return buffer.getvalue(), ".png", size
            buffer = io.BytesIO()
            shown.save(buffer, format="JPEG", quality=85)
            if buffer.tell() <= MAX_BYTES or width <= 200:
                return buffer.getvalue(), ".jpg", size
            width = int(width * 0.75)


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

"""The ViSAGe paper's published results (Kim, Yun & Kim, ICLR 2025, Table 4 / appendix B: guidance schemes on the
YT-Ambigen test split, 11,166 clips, scored by the original scripts), for `visage evaluate` to print beside a
measured row of the same guidance setting. Quoted, never measured here; the model card has the full tables."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["PUBLISHED_GUIDANCE_ROWS", "published_row_for"]

_COLUMNS = (
    "fad_dec",
    "kld_dec",
    "fad_avg",
    "cc_all",
    "cc_1fps",
    "cc_5fps",
    "auc_all",
    "auc_1fps",
    "auc_5fps",
)

# (guidance, guidance scale, direction scale or None where it does not apply) -> Table 4's row.
PUBLISHED_GUIDANCE_ROWS: dict[tuple[str, float, float | None], dict[str, float]] = {
    key: dict(zip(_COLUMNS, values))
    for key, values in {
        ("joint", 2.5, None): (3.86, 1.71, 4.20, 0.635, 0.584, 0.531, 0.846, 0.819, 0.790),
        ("direction", 2.5, None): (5.56, 2.01, 4.76, 0.721, 0.671, 0.624, 0.890, 0.864, 0.839),
        ("visual", 2.5, None): (3.85, 1.71, 4.14, 0.488, 0.446, 0.406, 0.757, 0.736, 0.716),
        ("dual", 2.5, 2.5): (3.93, 1.72, 4.22, 0.549, 0.505, 0.459, 0.795, 0.772, 0.748),
        ("dual", 7.5, 2.5): (4.32, 1.76, 4.59, 0.596, 0.540, 0.487, 0.829, 0.798, 0.769),
    }.items()
}


def published_row_for(prediction_dir: str | Path) -> tuple[str, dict[str, float]] | None:
    """``(label, scores)`` of the published row matching the guidance recorded in ``prediction_dir``'s
    ``run_config.json`` (written by `visage generate-batch`), or None (no record, or no published setting).

    In Table 4, "directional only" and "visual only" use the direction / visual scale of 2.5; the guidance of a
    run is read from the values it used (``settings``), not from what was asked for.
    """
    path = Path(prediction_dir) / "run_config.json"
    try:
        settings = json.loads(path.read_text())["settings"]
        guidance = settings["guidance"]
        scale = float(settings["guidance_scale"])
        direction = float(settings["direction_guidance_scale"]) if guidance == "dual" else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if guidance == "direction":  # its scale is the direction scale
        scale = float(settings.get("direction_guidance_scale") or scale)
    row = PUBLISHED_GUIDANCE_ROWS.get((guidance, scale, direction))
    if row is None:
        return None
    detail = f"{guidance} {scale:g}" + (f" & {direction:g}" if direction is not None else "")
    return f"ViSAGe, {detail} (published, paper Table 4)", row

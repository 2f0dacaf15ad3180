"""The facial-region classes shared by every stage. Imports nothing beyond the standard library.

Left and right are as seen in the image: `left_eye` is the eye with the smaller x coordinate
(the subject's right eye), matching the InsightFace/ArcFace 5-point template.
"""

from __future__ import annotations

REGIONS: tuple[str, ...] = (
    "background",
    "head_other",  # hair, ears, neck: person mask minus the face oval
    "skin",
    "left_brow",
    "right_brow",
    "left_eye",
    "right_eye",
    "nose",
    "mouth",
)
REGION_INDEX: dict[str, int] = {name: i for i, name in enumerate(REGIONS)}

# Label permutation under a horizontal flip: flipped_label = FLIP_PERMUTATION[label].
FLIP_PERMUTATION: tuple[int, ...] = tuple(
    REGION_INDEX[name.replace("left_", "\0").replace("right_", "left_").replace("\0", "right_")]
    for name in REGIONS
)

# RGB colours for overlays and previews, one per class.
REGION_COLOURS: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),        # background
    (140, 90, 40),    # head_other
    (250, 200, 160),  # skin
    (200, 0, 200),    # left_brow
    (120, 0, 255),    # right_brow
    (0, 120, 255),    # left_eye
    (0, 220, 220),    # right_eye
    (0, 200, 0),      # nose
    (230, 20, 40),    # mouth
)

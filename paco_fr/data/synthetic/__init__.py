"""Procedural, exactly labelled faces: test and demo data for every stage of PaCo-FR.

    from paco_fr.data.synthetic import generate_faces
    for face in generate_faces(100, seed=0, n_identities=20):
        face.image, face.keypoints5, face.landmarks68, face.label_map, face.attributes, ...

See docs/synthetic_faces.md for what varies, the labels and the conventions.
"""

from __future__ import annotations

from .api import (
    SyntheticFace, face_to_record, generate_faces, generate_params, identity_params, identity_table,
    params_from_dict, render_face, validate_params,
)
from .params import (
    ATTRIBUTES, EXPRESSIONS, REGIONS, Background, FaceParams, IdentityParams, Occlusion,
    face_attributes, sample_face_params, sample_identity,
)

__all__ = [
    "ATTRIBUTES", "EXPRESSIONS", "REGIONS", "Background", "FaceParams", "IdentityParams", "Occlusion",
    "SyntheticFace", "face_attributes", "face_to_record", "generate_faces", "generate_params",
    "identity_params", "identity_table", "params_from_dict", "render_face", "sample_face_params",
    "sample_identity", "validate_params",
]

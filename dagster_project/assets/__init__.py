from dagster_project.assets.corpus import build_corpus_part, face_corpus
from dagster_project.assets.evaluation import build_evaluation_assets
from dagster_project.assets.raw import raw_faces
from dagster_project.assets.regions import face_regions
from dagster_project.assets.training import build_pretrained_encoder
from paco_fr.config import ProjectConfig


def build_assets(cfg: ProjectConfig) -> list:
    """The asset graph of a repository's committed configuration (its partitions are its DVC stages)."""
    encoder = build_pretrained_encoder(cfg)
    return [raw_faces, build_corpus_part(cfg), face_corpus, face_regions, encoder,
            *build_evaluation_assets(cfg, encoder)]


__all__ = ["raw_faces", "face_corpus", "face_regions", "build_assets"]

from dagster_project.assets.corpus import face_corpus, raw_faces
from dagster_project.assets.evaluation import BENCHMARK_PARTITIONS, benchmark_summary, eval_report
from dagster_project.assets.regions import face_regions
from dagster_project.assets.training import pretrained_encoder

__all__ = ["raw_faces", "face_corpus", "face_regions", "pretrained_encoder", "eval_report",
           "benchmark_summary", "BENCHMARK_PARTITIONS"]

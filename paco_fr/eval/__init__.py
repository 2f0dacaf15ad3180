"""Evaluation: benchmarks (embedded and official-layout adapters), probing protocols, metrics with
bootstrap intervals, per-benchmark reports and the cross-encoder comparison table.

Entry points (imported lazily here so that reading the configuration stays cheap):

- :func:`paco_fr.eval.stage.evaluate` - one encoder on one benchmark -> a report folder
- :func:`paco_fr.eval.compare.compare` - report folders -> one table
- :data:`paco_fr.eval.registry.REGISTRY` - the benchmarks

See docs/evaluation.md.
"""

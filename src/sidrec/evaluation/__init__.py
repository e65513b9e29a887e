"""Evaluation: ranks → HR/NDCG/MRR, full-ranking evaluation, bootstrap confidence intervals, paired comparison."""

from sidrec.evaluation.metrics import DEFAULT_KS, metrics_from_ranks, ranks_from_scores

__all__ = ["DEFAULT_KS", "metrics_from_ranks", "ranks_from_scores"]

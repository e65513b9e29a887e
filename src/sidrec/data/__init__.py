"""Datasets: the canonical on-disk format, importers, splits, filters, statistics, synthetic data."""

from sidrec.data.dataset import Dataset, DatasetInfo, EncodedSplit, FilterRecord

__all__ = ["Dataset", "DatasetInfo", "EncodedSplit", "FilterRecord"]

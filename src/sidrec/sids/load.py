"""The SID table a model trains on: one loader for the trainers, the semantics extractor and the benchmarks."""

from __future__ import annotations

from pathlib import Path

from sidrec.data.dataset import Dataset
from sidrec.errors import DataError
from sidrec.sids.table import SIDTable


def load_sid_table(dataset: Dataset, sids: str | Path | None) -> SIDTable:
    """The SID table for a dataset: a sids.json file, or the dataset's external SIDs, covering every
    item (a de-duplication level is added when two items share a SID)."""
    if sids is not None:
        table = SIDTable.load(sids)
        where = str(sids)
    else:
        from sidrec.sids.build import import_sids

        table = import_sids(dataset)
        where = f"{dataset.path}/external_sids.json"
    known = set(table.item_ids)
    missing = [i for i in dataset.item_ids if i not in known]
    if missing:
        raise DataError(f"{where}: {len(missing)} dataset items have no SID (e.g. {missing[:3]}); "
                        "build SIDs for this dataset with `sidrec sids build`")
    if not table.is_unique():
        table = table.with_dedup()
    return table

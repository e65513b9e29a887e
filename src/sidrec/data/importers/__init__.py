"""Importers: each reads one public layout and returns a canonical `Dataset` (see sidrec.data.dataset).

    IMPORTERS["recbole" | "lcrec" | "minionerec" | "amazon" | "movielens" | "tabular"](path, **options)
    detect_format(path)                      the format name guessed from the files present
    import_dataset(format, path, **options)  format "auto" guesses it
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sidrec.data.dataset import Dataset
from sidrec.data.importers.amazon import REVIEW_SUFFIXES, import_amazon
from sidrec.data.importers.lcrec import INTER_SUFFIX, import_lcrec
from sidrec.data.importers.minionerec import import_minionerec
from sidrec.data.importers.movielens import import_movielens
from sidrec.data.importers.recbole import import_recbole
from sidrec.data.importers.tabular import TABLE_SUFFIXES, import_tabular
from sidrec.errors import ConfigError, DataError

IMPORTERS: dict[str, Callable[..., Dataset]] = {
    "recbole": import_recbole,
    "lcrec": import_lcrec,
    "minionerec": import_minionerec,
    "amazon": import_amazon,
    "movielens": import_movielens,
    "tabular": import_tabular,
}

_MOVIELENS_FILES = ("u.data", "ratings.dat")

__all__ = [
    "IMPORTERS",
    "detect_format",
    "import_amazon",
    "import_dataset",
    "import_lcrec",
    "import_minionerec",
    "import_movielens",
    "import_recbole",
    "import_tabular",
]


def import_dataset(format: str, path: str | Path, **options: Any) -> Dataset:
    """Import `path` with the importer named `format` ("auto": `detect_format(path)`); `options`
    are that importer's keyword arguments. Returns the canonical Dataset (not yet saved)."""
    name = detect_format(path) if format == "auto" else format
    if name not in IMPORTERS:
        raise ConfigError(f"unknown dataset format '{format}': choose auto or one of {', '.join(IMPORTERS)}")
    return IMPORTERS[name](path, **options)


def detect_format(path: str | Path) -> str:
    """The importer name for a file or folder, guessed from the files present.

    Raises DataError, listing what was found, when no layout matches.
    """
    p = Path(path)
    if p.is_file():
        found = _format_of_file(p)
        if found is None:
            raise DataError(f"cannot tell the dataset format from the file name '{p.name}'", path=p,
                            hint=f"pass the format explicitly: one of {', '.join(IMPORTERS)}")
        return found
    if not p.is_dir():
        raise DataError("no such file or folder", path=p)
    found = _format_of_folder(p)
    if found is None:
        names = sorted(c.name + ("/" if c.is_dir() else "") for c in p.iterdir())
        raise DataError(f"cannot tell the dataset format from the files present: {names[:20]}", path=p,
                        hint=f"pass the format explicitly: one of {', '.join(IMPORTERS)}")
    return found


def _format_of_file(p: Path) -> str | None:
    """The format of a single file, from its name."""
    if p.suffix == ".inter":
        return "recbole"
    if p.name.endswith(INTER_SUFFIX):
        return "lcrec"
    if p.name in _MOVIELENS_FILES:
        return "movielens"
    if p.name.endswith(REVIEW_SUFFIXES) and not p.name.startswith("meta_"):
        return "amazon"
    if p.suffix in TABLE_SUFFIXES:
        return "tabular"
    return None


def _format_of_folder(p: Path) -> str | None:
    """The format of a folder, from the files and sub-folders it holds (first match wins)."""
    if any(p.glob("*.inter")):
        return "recbole"
    if any(p.glob(f"*{INTER_SUFFIX}")):
        return "lcrec"
    if any((p / split).is_dir() and any((p / split).glob("*.csv")) for split in ("train", "valid", "test")):
        return "minionerec"
    if any((p / name).is_file() for name in _MOVIELENS_FILES):
        return "movielens"
    if any(c.is_file() and c.name.endswith(REVIEW_SUFFIXES) and not c.name.startswith("meta_") for c in p.iterdir()):
        return "amazon"
    if any((p / f"interactions{s}").is_file() for s in TABLE_SUFFIXES):
        return "tabular"
    return None

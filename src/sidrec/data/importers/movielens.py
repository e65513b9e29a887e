"""MovieLens raw releases: ml-100k (`u.data`, `u.item`, `u.genre`) and ml-1m (`ratings.dat`, `movies.dat`).

ml-100k  u.data    user<TAB>item<TAB>rating<TAB>timestamp
         u.item    id|title|release date|video release date|IMDb URL|19 genre flags (latin-1)
         u.genre   name|index (optional: the standard 19 names otherwise)
ml-1m    ratings.dat  UserID::MovieID::Rating::Timestamp
         movies.dat   MovieID::Title::Genres (latin-1, genres separated by |)

Titles are kept as given ("Toy Story (1995)"); genres become `categories`; the ml-100k release
date is kept as an extra text column `release_date`. The movie file is part of both releases and
is required. User and movie ids are whole numbers, ratings finite numbers and timestamps unix
seconds between 1990 and now; anything else is a DataError naming the file, line and field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sidrec.data.build import Protocol, build_dataset
from sidrec.data.dataset import Dataset, FilterRecord
from sidrec.data.importers import reading
from sidrec.errors import DataError

ENCODING = "latin-1"
RATING_FIELDS = ("user_id", "item_id", "rating", "timestamp")
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
ML100K_ITEM_FIELDS = ("item_id", "title", "release_date", "video_release_date", "imdb_url")
_ID = re.compile(r"[0-9]+")


def import_movielens(
    path: str | Path,
    *,
    name: str | None = None,
    protocol: Protocol = "leave-one-out",
    max_history: int = 20,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    min_rating: float | None = None,
) -> Dataset:
    """Import an ml-100k or ml-1m folder (or the path of its `u.data` / `ratings.dat`).

    Takes the folder, an optional dataset name (default: the folder name), the split protocol and
    its history length, and an optional minimum rating (lower ratings are removed and counted).
    Returns the canonical Dataset. Raises DataError naming the file, line and field for a line
    with the wrong number of fields, an id that is not a whole number, a non-numeric or non-finite
    value, a time outside 1990..now, a repeated movie id or a rated movie that the movie file does
    not list; and naming the file for a missing movie file or an empty ratings or movie file.
    """
    ratings_path, movies_path, variant = _files(Path(path))
    sep = "\t" if variant == "ml-100k" else "::"
    inter, lines = read_ratings(ratings_path, sep)
    filters: list[FilterRecord] = []
    if min_rating is not None:
        keep = inter["rating"] >= min_rating
        filters.append(FilterRecord(name="min_rating", description=f"ratings below {min_rating}",
                                    removed_interactions=int((~keep).sum())))
        inter, lines = inter[keep], lines[keep.to_numpy()]
    notes: list[str] = [f"MovieLens {variant}"]
    if not movies_path.is_file():
        raise DataError(f"movie file not found: {movies_path.name} is part of the {variant} release",
                        path=movies_path, hint=f"unpack the whole {variant} archive into {movies_path.parent}")
    items = read_ml100k_items(movies_path) if variant == "ml-100k" else read_ml1m_movies(movies_path)
    if items.empty:
        raise DataError("no movies (the file is empty)", path=movies_path)
    _check_known(inter, lines, items, ratings_path, movies_path)
    return build_dataset(
        name=name or ratings_path.parent.name,
        source=str(ratings_path.parent),
        format="movielens",
        items=items,
        interactions=inter,
        protocol=protocol,
        max_history=max_history,
        ratios=ratios,
        filters=filters,
        time_kind="timestamp",
        notes=notes,
    )


# ---------------------------------------------------------------------- ratings
def read_ratings(path: Path, sep: str) -> tuple[pd.DataFrame, pd.Series]:
    """Read `u.data` (sep TAB) or `ratings.dat` (sep ::); returns user_id, item_id (str), rating
    (float), timestamp (int64) in file order, and the 1-based line number of each row. Raises
    DataError for a bad value (file, line, field), times outside 1990..now and an empty file."""
    users: list[str] = []
    items: list[str] = []
    ratings: list[float] = []
    times: list[float] = []
    line_numbers: list[int] = []
    for line_no, parts in delimited_lines(path, sep, RATING_FIELDS):
        users.append(_id(parts[0], path, line_no, "user_id"))
        items.append(_id(parts[1], path, line_no, "item_id"))
        ratings.append(_number(parts[2], path, line_no, "rating"))
        times.append(_number(parts[3], path, line_no, "timestamp", integer=True))
        line_numbers.append(line_no)
    if not users:
        raise DataError("no ratings (the file is empty)", path=path)
    seconds = reading.check_unix_seconds(
        times, path, "timestamp", lines=line_numbers, era_start=reading.ERA_1990,
        unit_hint="MovieLens times are unix seconds; these look like milliseconds (divide by 1000)"
        if float(np.median(times)) > 1e11 else None)
    df = pd.DataFrame({"user_id": users, "item_id": items, "rating": ratings, "timestamp": seconds})
    df = df.astype({"user_id": str, "item_id": str, "rating": "float64", "timestamp": "int64"})
    return df, pd.Series(line_numbers, dtype="int64")


# ---------------------------------------------------------------------- items
def read_ml100k_items(path: Path) -> pd.DataFrame:
    """Read `u.item` (genre names from `u.genre` beside it when present); returns item_id, title,
    categories (genre names whose flag is 1) and release_date, in file order."""
    genres = read_genres(path.with_name("u.genre"))
    fields = (*ML100K_ITEM_FIELDS, *genres)
    rows: list[tuple[str, str, list[str], str]] = []
    seen: dict[str, int] = {}
    for line_no, parts in delimited_lines(path, "|", fields):
        item_id = _id(parts[0], path, line_no, "item_id")
        _unique(item_id, seen, path, line_no)
        flags = parts[len(ML100K_ITEM_FIELDS) :]
        for genre, flag in zip(genres, flags, strict=True):
            if flag.strip() not in ("0", "1"):
                raise DataError(f"genre flag '{flag}' is not 0 or 1", path=path, line=line_no, field=genre)
        categories = [g for g, flag in zip(genres, flags, strict=True) if flag.strip() == "1"]
        rows.append((item_id, parts[1].strip(), categories, parts[2].strip()))
    return pd.DataFrame(rows, columns=["item_id", "title", "categories", "release_date"])


def read_genres(path: Path) -> tuple[str, ...]:
    """Genre names in index order from `u.genre` (`name|index` lines); the standard 19 if absent."""
    if not path.exists():
        return ML100K_GENRES
    by_index: dict[int, str] = {}
    for line_no, parts in delimited_lines(path, "|", ("genre", "index")):
        index = int(_number(parts[1], path, line_no, "index", integer=True))
        by_index[index] = _nonempty(parts[0], path, line_no, "genre")
    if sorted(by_index) != list(range(len(by_index))):
        raise DataError(f"genre indices {sorted(by_index)} are not 0..{len(by_index) - 1}", path=path,
                        field="index")
    return tuple(by_index[i] for i in range(len(by_index)))


def read_ml1m_movies(path: Path) -> pd.DataFrame:
    """Read `movies.dat` (MovieID::Title::Genres); returns item_id, title, categories in file order."""
    rows: list[tuple[str, str, list[str]]] = []
    seen: dict[str, int] = {}
    for line_no, parts in delimited_lines(path, "::", ("item_id", "title", "genres")):
        item_id = _id(parts[0], path, line_no, "item_id")
        _unique(item_id, seen, path, line_no)
        genres = [g.strip() for g in parts[2].split("|") if g.strip() and g.strip() != "(no genres listed)"]
        rows.append((item_id, parts[1].strip(), genres))
    return pd.DataFrame(rows, columns=["item_id", "title", "categories"])


# ---------------------------------------------------------------------- line helpers
def delimited_lines(path: Path, sep: str, fields: Sequence[str]) -> Iterator[tuple[int, list[str]]]:
    """Yield (1-based line number, fields) for each non-blank line (latin-1, plain or gzip); raises
    DataError with the file, line and the first missing field when a line has too few or too many
    fields."""
    with reading.open_text(path, encoding=ENCODING) as f:
        for line_no, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split(sep)
            if len(parts) != len(fields):
                field = fields[len(parts)] if len(parts) < len(fields) else None
                raise DataError(
                    f"{len(parts)} {sep!r}-separated fields, expected {len(fields)} ({', '.join(fields[:6])}"
                    f"{', …' if len(fields) > 6 else ''})",
                    path=path, line=line_no, field=field,
                )
            yield line_no, parts


def _nonempty(value: str, path: Path, line: int, field: str) -> str:
    value = value.strip()
    if not value:
        raise DataError("empty value", path=path, line=line, field=field)
    return value


def _id(value: str, path: Path, line: int, field: str) -> str:
    """A user or movie id: a whole number, kept as its text (surrounding spaces or tabs are refused:
    they are a stray separator)."""
    _nonempty(value, path, line, field)
    if not _ID.fullmatch(value):
        raise DataError(f"{value[:40]!r} is not a whole-number id", path=path, line=line, field=field,
                        hint="MovieLens ids are whole numbers; is a separator missing or doubled?")
    return value


def _number(value: str, path: Path, line: int, field: str, *, integer: bool = False) -> float:
    try:
        number = float(value)
    except ValueError as e:
        raise DataError(f"'{value.strip()}' is not a number", path=path, line=line, field=field) from e
    if not math.isfinite(number):
        raise DataError(f"'{value.strip()}' is not a finite number", path=path, line=line, field=field)
    if integer and not number.is_integer():
        raise DataError(f"'{value.strip()}' is not an integer", path=path, line=line, field=field)
    return number


def _unique(item_id: str, seen: dict[str, int], path: Path, line: int) -> None:
    if item_id in seen:
        raise DataError(f"item_id '{item_id}' repeats line {seen[item_id]}", path=path, line=line, field="item_id")
    seen[item_id] = line


def _check_known(inter: pd.DataFrame, lines: pd.Series, items: pd.DataFrame, ratings_path: Path,
                 movies_path: Path) -> None:
    unknown = ~inter["item_id"].isin(set(items["item_id"])).to_numpy()
    if unknown.any():
        i = int(unknown.nonzero()[0][0])
        raise DataError(f"item_id '{inter['item_id'].iloc[i]}' is not in {movies_path.name}", path=ratings_path,
                        line=int(lines.iloc[i]), field="item_id")


def _files(path: Path) -> tuple[Path, Path, str]:
    """The ratings file, the path of the movie file (it may be missing: the caller reports that
    after the ratings) and the variant ("ml-100k" or "ml-1m")."""
    if path.is_file():
        folder, name = path.parent, path.name
    elif path.is_dir():
        folder = path
        name = "u.data" if (path / "u.data").exists() else "ratings.dat" if (path / "ratings.dat").exists() else ""
        if not name:
            raise DataError("no u.data (ml-100k) or ratings.dat (ml-1m)", path=path,
                            hint="point at an unpacked MovieLens 100K or 1M folder")
    else:
        raise DataError("no such file or folder", path=path)
    variant = {"u.data": "ml-100k", "ratings.dat": "ml-1m"}.get(name)
    if variant is None:
        raise DataError("not a MovieLens ratings file (expected u.data or ratings.dat)", path=path)
    return folder / name, folder / ("u.item" if variant == "ml-100k" else "movies.dat"), variant

"""MovieLens raw releases: ml-100k (`u.data`, `u.item`, `u.genre`) and ml-1m (`ratings.dat`, `movies.dat`).

ml-100k  u.data    user<TAB>item<TAB>rating<TAB>timestamp
         u.item    id|title|release date|video release date|IMDb URL|19 genre flags (latin-1)
         u.genre   name|index (optional: the standard 19 names otherwise)
ml-1m    ratings.dat  UserID::MovieID::Rating::Timestamp
         movies.dat   MovieID::Title::Genres (latin-1, genres separated by |)

Titles are kept as given ("Toy Story (1995)"); genres become `categories`; the ml-100k release
date is kept as an extra text column `release_date`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from sidrec.data.build import Protocol, build_dataset
from sidrec.data.dataset import Dataset, FilterRecord
from sidrec.errors import DataError

ENCODING = "latin-1"
RATING_FIELDS = ("user_id", "item_id", "rating", "timestamp")
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
ML100K_ITEM_FIELDS = ("item_id", "title", "release_date", "video_release_date", "imdb_url")


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
    with the wrong number of fields, a non-numeric value, a repeated movie id or a rated movie
    that the movie file does not list.
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
    if movies_path is None:
        items = pd.DataFrame({"item_id": pd.unique(inter["item_id"])})
        notes.append("no movie file: items have no text")
    else:
        items = read_ml100k_items(movies_path) if variant == "ml-100k" else read_ml1m_movies(movies_path)
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
    (float), timestamp (int64) in file order, and the 1-based line number of each row."""
    users: list[str] = []
    items: list[str] = []
    ratings: list[float] = []
    times: list[int] = []
    line_numbers: list[int] = []
    for line_no, parts in delimited_lines(path, sep, RATING_FIELDS):
        users.append(_nonempty(parts[0], path, line_no, "user_id"))
        items.append(_nonempty(parts[1], path, line_no, "item_id"))
        ratings.append(_number(parts[2], path, line_no, "rating"))
        times.append(int(_number(parts[3], path, line_no, "timestamp", integer=True)))
        line_numbers.append(line_no)
    df = pd.DataFrame({"user_id": users, "item_id": items, "rating": ratings, "timestamp": times})
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
        item_id = _nonempty(parts[0], path, line_no, "item_id")
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
        item_id = _nonempty(parts[0], path, line_no, "item_id")
        _unique(item_id, seen, path, line_no)
        genres = [g.strip() for g in parts[2].split("|") if g.strip() and g.strip() != "(no genres listed)"]
        rows.append((item_id, parts[1].strip(), genres))
    return pd.DataFrame(rows, columns=["item_id", "title", "categories"])


# ---------------------------------------------------------------------- line helpers
def delimited_lines(path: Path, sep: str, fields: Sequence[str]) -> Iterator[tuple[int, list[str]]]:
    """Yield (1-based line number, fields) for each non-blank line (latin-1); raises DataError with
    the file, line and the first missing field when a line has too few or too many fields."""
    with open(path, encoding=ENCODING) as f:
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


def _number(value: str, path: Path, line: int, field: str, *, integer: bool = False) -> float:
    try:
        number = float(value)
    except ValueError as e:
        raise DataError(f"'{value.strip()}' is not a number", path=path, line=line, field=field) from e
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


def _files(path: Path) -> tuple[Path, Path | None, str]:
    """The ratings file, the movie file (None if absent) and the variant ("ml-100k" or "ml-1m")."""
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
    if name == "u.data":
        movies = folder / "u.item"
        return folder / name, movies if movies.exists() else None, "ml-100k"
    if name == "ratings.dat":
        movies = folder / "movies.dat"
        return folder / name, movies if movies.exists() else None, "ml-1m"
    raise DataError("not a MovieLens ratings file (expected u.data or ratings.dat)", path=path)

"""Importers on small real-format fixtures (tests/fixtures/): Amazon 2018/2023, MovieLens, tabular.

The fixtures hold the cases the filters must remove; errors must name the file, line and field.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pandas as pd
import pytest

from sidrec.data.dataset import Dataset
from sidrec.data.importers import IMPORTERS, detect_format, import_dataset
from sidrec.data.importers.amazon import import_amazon, to_unix_seconds
from sidrec.data.importers.movielens import import_movielens
from sidrec.data.importers.tabular import import_tabular
from sidrec.errors import ConfigError, DataError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
AMAZON = {"2018": FIXTURES / "amazon2018", "2023": FIXTURES / "amazon2023"}
AMAZON_FILES = {"2018": "Toys_and_Games.json", "2023": "Toys_and_Games.jsonl"}
CORE_ITEMS = ["B01", "B02", "B03", "B04", "B05"]


def filters_by_name(ds: Dataset) -> dict[str, dict[str, int]]:
    """name → counts of every filter record (the record must be unique by name)."""
    names = [f.name for f in ds.info.filters]
    assert len(names) == len(set(names)), names
    return {f.name: f.model_dump(exclude={"name", "description"}) for f in ds.info.filters}


def counts(removed_interactions: int = 0, removed_items: int = 0, removed_users: int = 0) -> dict[str, int]:
    return {"removed_interactions": removed_interactions, "removed_items": removed_items,
            "removed_users": removed_users, "removed_examples": 0}


def assert_k_core(ds: Dataset, user_k: int, item_k: int) -> None:
    assert ds.interactions.groupby("user_id").size().min() >= user_k
    assert ds.interactions.groupby("item_id").size().min() >= item_k


def as_lists(df: pd.DataFrame) -> pd.DataFrame:
    """Copy with list-like cells (parquet gives arrays back) as lists, for frame comparison."""
    out = df.copy()
    for col in out.columns:
        if len(out) and not isinstance(out[col].iloc[0], str) and hasattr(out[col].iloc[0], "__len__"):
            out[col] = out[col].map(list)
    return out


def assert_same_frames(a: Dataset, b: Dataset) -> None:
    pd.testing.assert_frame_equal(as_lists(a.items), as_lists(b.items))
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    assert a.splits.keys() == b.splits.keys()
    for name in a.splits:
        pd.testing.assert_frame_equal(as_lists(a.split(name)), as_lists(b.split(name)))


# ====================================================================== Amazon
@pytest.mark.parametrize("version", ["2018", "2023"])
def test_amazon_filters_and_counts(version: str) -> None:
    ds = import_amazon(AMAZON[version])
    assert ds.info.format == f"amazon{version}"
    assert (ds.info.stats["users"], ds.n_items, len(ds.interactions)) == (6, 5, 30)
    assert sorted(ds.item_ids) == CORE_ITEMS
    assert filters_by_name(ds) == {
        "duplicate_interactions": counts(removed_interactions=1),
        "duplicate_metadata": counts(removed_items=1),
        "missing_metadata": counts(removed_interactions=2, removed_items=1),  # B07
        "title_filter": counts(removed_items=1),  # B06, an HTML title
        "title_filter_interactions": counts(removed_interactions=5),
        "k_core": counts(removed_interactions=9, removed_items=2, removed_users=2),  # A7, A8 (cascade); B08, B10
        "items_without_interactions": counts(removed_items=3),  # B08, B10, B11
    }
    assert_k_core(ds, 5, 5)
    assert [len(ds.split(s)) for s in ("train", "valid", "test")] == [12, 6, 6]
    assert ds.info.protocol_params["max_history"] == 20


def test_amazon_2018_and_2023_give_the_same_items_and_times() -> None:
    a, b = import_amazon(AMAZON["2018"]), import_amazon(AMAZON["2023"])
    # 2023 times are milliseconds: converted to seconds
    assert a.interactions["timestamp"].tolist() == b.interactions["timestamp"].tolist()
    assert a.items["title"].tolist() == b.items["title"].tolist()
    row = b.items.set_index("item_id").loc["B01"]
    assert row["brand"] == "ToyCo"  # 2023 `store`
    assert list(row["categories"]) == ["Toys & Games", "Learning & Education"]
    assert row["features"] == "Safe materials Ages 3+" and row["main_category"] == "Toys & Games"
    assert a.items.set_index("item_id").loc["B01", "description"] == "Wooden Building Blocks Set, 100 Pieces. Ages 3+."


@pytest.mark.parametrize("version", ["2018", "2023"])
def test_amazon_gzipped_files_give_the_same_dataset(version: str, tmp_path: Path) -> None:
    for name in (AMAZON_FILES[version], "meta_" + AMAZON_FILES[version]):
        with open(AMAZON[version] / name, "rb") as src, gzip.open(tmp_path / f"{name}.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
    gz = import_amazon(tmp_path)
    assert_same_frames(gz, import_amazon(AMAZON[version]))
    assert filters_by_name(gz)["duplicate_metadata"]["removed_items"] == 1  # the .gz metadata was found


def test_amazon_time_window_runs_before_k_core() -> None:
    ds = import_amazon(AMAZON["2018"], start="2015-01-01")  # removes A6's 2014 review of B08
    f = filters_by_name(ds)
    assert f["time_window"]["removed_interactions"] == 1
    assert f["k_core"]["removed_interactions"] == 8
    assert ds.interactions["timestamp"].min() >= to_unix_seconds("2015-01-01")
    # the window makes a 5-core impossible: k-core runs after it, so the result is still a true core
    end = to_unix_seconds("2016-07-29")  # keeps the first four weeks: each core user keeps 4 items
    small = import_amazon(AMAZON["2018"], start=1420070400, end=end, user_k=3, item_k=3)
    assert_k_core(small, 3, 3)
    assert small.interactions["timestamp"].max() < end
    with pytest.raises(DataError, match="no interactions left"):
        import_amazon(AMAZON["2018"], end=end)


def test_amazon_k_core_is_a_true_core_for_several_k() -> None:
    for k in (1, 2, 3, 4, 5):
        ds = import_amazon(AMAZON["2023"], user_k=k, item_k=k)
        assert_k_core(ds, k, k)


def test_amazon_title_max_words() -> None:
    ds = import_amazon(AMAZON["2018"], title_max_words=10, user_k=1, item_k=1)
    assert filters_by_name(ds)["title_filter"]["removed_items"] == 2  # B06 (HTML) and B10 (16 words)
    assert "B10" not in ds.item_index and "B06" not in ds.item_index
    assert "B10" in import_amazon(AMAZON["2018"], user_k=1, item_k=1).item_index


def test_amazon_temporal_protocol() -> None:
    ds = import_amazon(AMAZON["2018"], protocol="temporal")
    assert ds.info.protocol == "temporal" and ds.info.protocol_params["max_history"] == 10
    assert sum(len(ds.split(s)) for s in ("train", "valid", "test")) == 30 - 6  # one sample per non-first item
    assert ds.split("train")["timestamp"].max() <= ds.split("test")["timestamp"].min()


def test_amazon_malformed_line_names_file_and_line() -> None:
    path = FIXTURES / "amazon2018_malformed"
    with pytest.raises(DataError) as err:
        import_amazon(path, user_k=1, item_k=1)
    assert err.value.line == 3 and err.value.path is not None and err.value.path.endswith("Toys_and_Games.json")
    assert "Toys_and_Games.json, line 3" in str(err.value) and "invalid JSON" in str(err.value)


def test_amazon_missing_key_names_the_field(tmp_path: Path) -> None:
    lines = (FIXTURES / "amazon2018_malformed" / "Toys_and_Games.json").read_text().splitlines()
    (tmp_path / "Toys.json").write_text("\n".join(lines[:2] + lines[3:]) + "\n")  # drop the broken line 3
    with pytest.raises(DataError) as err:
        import_amazon(tmp_path, user_k=1, item_k=1)
    assert (err.value.line, err.value.field) == (4, "reviewerID")
    assert "Toys.json, line 4, field 'reviewerID'" in str(err.value)


def test_amazon_skip_bad_lines_counts_them() -> None:
    ds = import_amazon(FIXTURES / "amazon2018_malformed", on_bad_line="skip", user_k=1, item_k=1)
    assert filters_by_name(ds)["bad_lines"]["removed_interactions"] == 2
    assert len(ds.interactions) == 6
    assert any("no metadata" in note for note in ds.info.notes)


def test_amazon_skip_bad_metadata_lines(tmp_path: Path) -> None:
    shutil.copy(AMAZON["2023"] / "Toys_and_Games.jsonl", tmp_path / "Toys_and_Games.jsonl")
    meta = (AMAZON["2023"] / "meta_Toys_and_Games.jsonl").read_text().splitlines()
    meta[7] = meta[7].replace('"parent_asin": "B08"', '"parent_asin": ""')  # line 8: empty item key
    (tmp_path / "meta_Toys_and_Games.jsonl").write_text("\n".join(meta) + "\n")
    with pytest.raises(DataError, match=r"meta_Toys_and_Games.jsonl, line 8, field 'parent_asin'"):
        import_amazon(tmp_path)
    ds = import_amazon(tmp_path, on_bad_line="skip")
    f = filters_by_name(ds)
    assert f["bad_metadata_lines"]["removed_items"] == 1
    assert f["missing_metadata"] == counts(removed_interactions=4, removed_items=2)  # B07 and now B08


def test_amazon_bad_options() -> None:
    with pytest.raises(ConfigError):
        import_amazon(AMAZON["2018"], on_bad_line="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        import_amazon(AMAZON["2018"], start="not a date")


def test_to_unix_seconds() -> None:
    assert to_unix_seconds(None) is None
    assert to_unix_seconds(1420070400) == to_unix_seconds("1420070400") == to_unix_seconds("2015-01-01")
    assert to_unix_seconds("2015-01-01T01:00:00+01:00") == 1420070400


# ====================================================================== MovieLens
ML100K = FIXTURES / "movielens100k"
ML1M = FIXTURES / "movielens1m"


def test_movielens_100k() -> None:
    ds = import_movielens(ML100K)
    assert (ds.info.stats["users"], ds.n_items, len(ds.interactions)) == (5, 8, 30)
    items = ds.items.set_index("item_id")
    assert items.loc["1", "title"] == "Toy Story (1995)"
    assert list(items.loc["1", "categories"]) == ["Animation", "Children's", "Comedy"]
    assert items.loc["6", "title"] == "Misérables, Les (1995)"  # latin-1
    assert items.loc["1", "release_date"] == "01-Jan-1995"
    assert ds.info.time_kind == "timestamp" and ds.info.protocol_params["max_history"] == 20
    assert [len(ds.split(s)) for s in ("train", "valid", "test")] == [15, 5, 5]


def test_movielens_1m_matches_100k_on_the_same_ratings() -> None:
    a, b = import_movielens(ML100K), import_movielens(ML1M)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(as_lists(a.items.drop(columns=["release_date"])), as_lists(b.items))


def test_movielens_standard_genres_without_u_genre(tmp_path: Path) -> None:
    for name in ("u.data", "u.item"):
        shutil.copy(ML100K / name, tmp_path / name)
    pd.testing.assert_frame_equal(as_lists(import_movielens(tmp_path).items), as_lists(import_movielens(ML100K).items))


def test_movielens_min_rating() -> None:
    raw = pd.read_csv(ML100K / "u.data", sep="\t", header=None, names=["u", "i", "r", "t"])
    ds = import_movielens(ML100K, min_rating=3)
    rec = filters_by_name(ds)["min_rating"]
    assert rec["removed_interactions"] == int((raw["r"] < 3).sum()) > 0


def test_movielens_malformed_line() -> None:
    with pytest.raises(DataError) as err:
        import_movielens(FIXTURES / "movielens100k_malformed")
    assert (err.value.line, err.value.field) == (4, "timestamp")
    assert "u.data, line 4, field 'timestamp'" in str(err.value)


def test_movielens_1m_bad_values(tmp_path: Path) -> None:
    shutil.copy(ML1M / "movies.dat", tmp_path / "movies.dat")
    lines = (ML1M / "ratings.dat").read_text(encoding="latin-1").splitlines()
    bad = lines.copy()
    bad[6] = "1::2::five::874965000"
    (tmp_path / "ratings.dat").write_text("\n".join(bad) + "\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"ratings.dat, line 7, field 'rating'"):
        import_movielens(tmp_path)
    unknown = lines.copy()
    unknown[9] = "1::99::4::874965000"
    (tmp_path / "ratings.dat").write_text("\n".join(unknown) + "\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"ratings.dat, line 10, field 'item_id'.*'99' is not in movies.dat"):
        import_movielens(tmp_path)
    movies = (ML1M / "movies.dat").read_text(encoding="latin-1").splitlines()
    (tmp_path / "movies.dat").write_text("\n".join([*movies, movies[1]]) + "\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"movies.dat, line 9, field 'item_id'.*repeats line 2"):
        import_movielens(tmp_path)


# ====================================================================== tabular
TABULAR = FIXTURES / "tabular"


def test_tabular_basic() -> None:
    ds = import_tabular(TABULAR)
    assert (ds.info.stats["users"], ds.n_items, len(ds.interactions)) == (3, 6, 12)
    items = ds.items.set_index("item_id")
    assert list(items.loc["sku1", "categories"]) == ["Clothing", "Tops"]
    assert list(items.loc["sku4", "categories"]) == ["Accessories", "Winter"]  # list literal
    assert items.loc["sku1", "description"] == "Soft cotton.\nMachine washable."
    assert items.loc["sku6", "color"] == "white"  # extra column kept
    assert "1 of 6 items in items.csv have an empty title" in ds.info.notes
    carol = ds.interactions[ds.interactions.user_id == "carol"]["item_id"].tolist()
    assert carol == ["sku6", "sku1", "sku2", "sku4"]  # sku1 and sku2 tie: file order kept
    assert ds.info.time_kind == "timestamp"


def test_tabular_require_text_names_file_line_field() -> None:
    with pytest.raises(DataError) as err:
        import_tabular(TABULAR, require_text=True)
    # header = line 1, sku1 spans lines 2-3 (a quoted line break), sku2 = 4, sku3 = 5
    assert (err.value.line, err.value.field) == (5, "title")
    assert "items.csv, line 5, field 'title'" in str(err.value)


def test_tabular_missing_column_lists_the_columns() -> None:
    with pytest.raises(DataError) as err:
        import_tabular(TABULAR, user_col="customer")
    text = str(err.value)
    assert "interactions.csv" in text and "field 'customer'" in text and "'user_id', 'item_id', 'timestamp'" in text


def test_tabular_unknown_items(tmp_path: Path) -> None:
    inter = (TABULAR / "interactions.csv").read_text().splitlines()
    inter.insert(5, "bob,sku9,1609545650")  # line 6
    (tmp_path / "interactions.csv").write_text("\n".join(inter) + "\n")
    shutil.copy(TABULAR / "items.csv", tmp_path / "items.csv")
    with pytest.raises(DataError, match=r"interactions.csv, line 6, field 'item_id'.*'sku9' has no row in items.csv"):
        import_tabular(tmp_path)
    ds = import_tabular(tmp_path, on_unknown_item="drop")
    assert filters_by_name(ds)["unknown_items"] == counts(removed_interactions=1, removed_items=1)
    assert len(ds.interactions) == 12


def test_tabular_duplicate_item_id(tmp_path: Path) -> None:
    items = (TABULAR / "items.csv").read_text().splitlines()
    (tmp_path / "items.csv").write_text("\n".join([*items, "sku2,Denim Jeans again,,,,"]) + "\n")
    with pytest.raises(DataError, match=r"items.csv, line 9, field 'item_id'.*'sku2' repeats line 4"):
        import_tabular(TABULAR / "interactions.csv", items_path=tmp_path / "items.csv")


def test_tabular_without_time_uses_order_and_iso_dates(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="time_col=None"):
        import_tabular(TABULAR, time_col="when")
    ordered = import_tabular(TABULAR, time_col=None)
    assert ordered.info.time_kind == "order"
    alice = ordered.interactions[ordered.interactions.user_id == "alice"]
    assert alice["timestamp"].tolist() == [0, 1, 2, 3]
    raw = pd.read_csv(TABULAR / "interactions.csv", dtype=str)
    raw["timestamp"] = pd.to_datetime(raw["timestamp"].astype(int), unit="s").dt.strftime("%Y-%m-%dT%H:%M:%S")
    raw.to_csv(tmp_path / "interactions.csv", index=False)
    shutil.copy(TABULAR / "items.csv", tmp_path / "items.csv")
    pd.testing.assert_frame_equal(import_tabular(tmp_path).interactions, import_tabular(TABULAR).interactions)
    raw.loc[4, "timestamp"] = "yesterday"
    raw.to_csv(tmp_path / "interactions.csv", index=False)
    with pytest.raises(DataError, match=r"interactions.csv, line 6, field 'timestamp'"):
        import_tabular(tmp_path)


def test_tabular_parquet_matches_csv(tmp_path: Path) -> None:
    inter = pd.read_csv(TABULAR / "interactions.csv", dtype={"user_id": str, "item_id": str})
    inter.to_parquet(tmp_path / "interactions.parquet")
    items = import_tabular(TABULAR).items
    items.to_parquet(tmp_path / "items.parquet")
    assert detect_format(tmp_path) == "tabular"
    assert_same_frames(import_tabular(tmp_path), import_tabular(TABULAR))


def test_tabular_temporal_needs_time() -> None:
    with pytest.raises(ConfigError):
        import_tabular(TABULAR, time_col=None, protocol="temporal")
    ds = import_tabular(TABULAR, protocol="temporal")
    assert sum(len(ds.split(s)) for s in ("train", "valid", "test")) == 12 - 3


# ====================================================================== registry and round trip
def test_registry_keys() -> None:
    assert set(IMPORTERS) == {"recbole", "lcrec", "minionerec", "amazon", "movielens", "tabular"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (AMAZON["2018"], "amazon"),
        (AMAZON["2023"] / "Toys_and_Games.jsonl", "amazon"),
        (ML100K, "movielens"),
        (ML1M / "ratings.dat", "movielens"),
        (TABULAR, "tabular"),
        (TABULAR / "interactions.csv", "tabular"),
    ],
)
def test_detect_format(path: Path, expected: str) -> None:
    assert detect_format(path) == expected


def test_detect_format_small_layouts(tmp_path: Path) -> None:
    (tmp_path / "lc").mkdir()
    (tmp_path / "lc" / "X.inter.json").write_text('{"u1": [1, 2, 3]}')
    assert detect_format(tmp_path / "lc") == "lcrec"
    (tmp_path / "mini" / "valid").mkdir(parents=True)
    (tmp_path / "mini" / "valid" / "X.csv").write_text("user_id\n")
    assert detect_format(tmp_path / "mini") == "minionerec"
    (tmp_path / "rb").mkdir()
    (tmp_path / "rb" / "X.inter").write_text("user_id:token\titem_id:token\n")
    assert detect_format(tmp_path / "rb") == "recbole"


def test_detect_format_unknown(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"cannot tell the dataset format.*notes.txt"):
        detect_format(tmp_path)
    with pytest.raises(DataError, match="cannot tell"):
        detect_format(tmp_path / "notes.txt")


def test_import_dataset() -> None:
    auto = import_dataset("auto", AMAZON["2023"], user_k=3, item_k=3)
    assert_same_frames(auto, import_amazon(AMAZON["2023"], user_k=3, item_k=3))
    assert import_dataset("movielens", ML1M).info.format == "movielens"
    with pytest.raises(ConfigError, match="unknown dataset format"):
        import_dataset("csv-ish", TABULAR)


def test_lcrec_small_with_item_text(tmp_path: Path) -> None:
    (tmp_path / "Toy.inter.json").write_text('{"0": [0, 1, 2, 3], "1": [2, 1, 0]}')
    (tmp_path / "Toy.item.json").write_text(
        '{"0": {"title": "A", "description": "d", "brand": "b", "categories": "Toys"},'
        ' "1": {"title": "B", "description": "", "brand": "", "categories": ""},'
        ' "2": {"title": "C", "description": "", "brand": "", "categories": ""},'
        ' "3": {"title": "D", "description": "", "brand": "", "categories": ""}}'
    )
    ds = import_dataset("auto", tmp_path)
    assert ds.info.format == "lcrec" and ds.titles() == ["A", "B", "C", "D"]
    assert list(ds.items.loc[0, "categories"]) == ["Toys"] and ds.external_sids is None
    (tmp_path / "Toy.index.json").write_text('{"0": ["<a_1>"], "1": ["<a_2>"], "2": ["<a_3>"]}')
    with pytest.raises(DataError, match=r"Toy.index.json, field '3'.*no SID"):
        import_dataset("lcrec", tmp_path)
    (tmp_path / "Toy.inter.json").write_text('{"0": [0, 1, 2, 3],\n "1": [2, 1, 0')
    with pytest.raises(DataError, match=r"Toy.inter.json, line 2"):
        import_dataset("lcrec", tmp_path)


def test_minionerec_given_splits_and_unknown_ids(tmp_path: Path) -> None:
    header = "user_id,history_item_title,item_title,history_item_id,item_id,history_item_sid,item_sid\n"
    (tmp_path / "info").mkdir()
    (tmp_path / "info" / "Toys_5.txt").write_text("".join(f"<a_{i}>\tItem {i}\t{i}\n" for i in range(5)))
    rows = {
        "train": ['u1,"[\'Item 0\']",Item 1,[0],1,"[]",x\n', 'u1,"[]",Item 2,"[0, 1]",2,"[]",x\n'],
        "valid": ['u1,"[]",Item 3,"[0, 1, 2]",3,"[]",x\n'],
        "test": ['u1,"[]",Item 4,"[0, 1, 2, 3]",4,"[]",x\n'],
    }
    for split, lines in rows.items():
        (tmp_path / split).mkdir()
        (tmp_path / split / "Toys_5.csv").write_text(header + "".join(lines))
    ds = import_dataset("auto", tmp_path)
    assert ds.info.protocol == "given" and [len(ds.split(s)) for s in ("train", "valid", "test")] == [2, 1, 1]
    assert ds.interactions["item_id"].tolist() == ["0", "1", "2", "3", "4"]
    assert ds.split("test")["timestamp"].tolist() == [4] and ds.titles()[0] == "Item 0"
    (tmp_path / "test" / "Toys_5.csv").write_text(header + rows["test"][0] + 'u2,"[]",Item 4,"[0, 7]",4,"[]",x\n')
    with pytest.raises(DataError, match=r"Toys_5.csv, line 3, field 'history_item_id'.*'7'"):
        import_dataset("minionerec", tmp_path)
    (tmp_path / "test" / "Toys_5.csv").write_text(header + 'u2,"[]",Item 4,"[0, __import__(\'os\')]",4,"[]",x\n')
    with pytest.raises(DataError, match=r"Toys_5.csv, line 2, field 'history_item_id'.*not a Python list literal"):
        import_dataset("minionerec", tmp_path)


@pytest.mark.parametrize("source", ["amazon2023", "tabular", "movielens100k"])
def test_dataset_round_trip(source: str, tmp_path: Path) -> None:
    ds = import_dataset("auto", FIXTURES / source)
    ds.save(tmp_path / "ds")
    loaded = Dataset.load(tmp_path / "ds")
    assert_same_frames(loaded, ds)
    assert loaded.info.filters == ds.info.filters and loaded.info.notes == ds.info.notes
    assert loaded.info.stats == ds.info.stats

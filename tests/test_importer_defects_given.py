"""Malformed LC-Rec, MiniOneRec and RecBole files: one DataError naming the file and the line / key /
field, or a counted filter; never a traceback, never a silent acceptance."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from sidrec.data.importers import import_dataset
from sidrec.errors import DataError
from tests.conftest import shared_path


def _error(fmt: str, path: Path) -> str:
    with pytest.raises(DataError) as info:
        import_dataset(fmt, path)
    message = str(info.value)
    assert "\n" not in message
    return message


# ====================================================================== RecBole
INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


def _recbole(tmp_path: Path, inter: str, item: str | None = None) -> Path:
    folder = tmp_path / "rb"
    folder.mkdir(exist_ok=True)
    (folder / "x.inter").write_text(inter, encoding="utf-8")
    if item is not None:
        (folder / "x.item").write_text(item, encoding="utf-8")
    return folder


def _rows(n_users: int = 3, n_items: int = 4) -> list[str]:
    return [f"u{u}\ti{k}\t4\t{880_000_000 + 100 * u + k}\n" for u in range(n_users) for k in range(n_items)]


def test_recbole_clean_small_folder_imports_without_an_item_file(tmp_path: Path) -> None:
    ds = import_dataset("recbole", _recbole(tmp_path, INTER_HEADER + "".join(_rows())))
    assert ds.info.stats["interactions"] == 12 and any("no x.item" in n for n in ds.info.notes)


def test_recbole_short_header_does_not_shift_columns(tmp_path: Path) -> None:
    header = "user_id:token\titem_id:token\ttimestamp:float\n"  # the rows have 4 fields
    message = _error("recbole", _recbole(tmp_path, header + "".join(_rows())))
    assert "x.inter, line 1:" in message and "3 fields" in message and "have 4" in message


@pytest.mark.parametrize(("row", "count"), [("u9\ti1\t4\t880000000\tsurplus\t7\n", 6), ("u9\ti1\n", 2)])
def test_recbole_row_of_the_wrong_width_names_its_line(tmp_path: Path, row: str, count: int) -> None:
    rows = _rows()
    rows.insert(5, row)
    message = _error("recbole", _recbole(tmp_path, INTER_HEADER + "".join(rows)))
    assert "x.inter, line 7:" in message and f"{count} tab-separated fields" in message


@pytest.mark.parametrize(
    ("value", "says"),
    [("noon", "not a number"), ("nan", "not a number"), ("inf", "not a finite number"), ("-1", "negative"),
     ("1e20", "future"), ("880000000000", "milliseconds")],
)
def test_recbole_bad_timestamp_names_file_line_and_field(tmp_path: Path, value: str, says: str) -> None:
    rows = _rows()
    rows[6] = f"u1\ti2\t4\t{value}\n"
    message = _error("recbole", _recbole(tmp_path, INTER_HEADER + "".join(rows)))
    assert "x.inter, line 8, field 'timestamp'" in message and says in message


def test_recbole_field_above_the_limit_names_its_line(tmp_path: Path) -> None:
    rows = _rows()
    rows[2] = f"u0\ti2\t4\t880000002{'x' * 200_000}\n"
    message = _error("recbole", _recbole(tmp_path, INTER_HEADER + "".join(rows)))
    assert "x.inter, line 4:" in message and "200,009 characters" in message


def test_recbole_empty_id_names_line_and_field(tmp_path: Path) -> None:
    rows = _rows()
    rows[3] = "u0\t\t4\t880000003\n"
    message = _error("recbole", _recbole(tmp_path, INTER_HEADER + "".join(rows)))
    assert "x.inter, line 5, field 'item_id': empty item_id" in message


def test_recbole_header_needs_known_distinct_types(tmp_path: Path) -> None:
    rows = "".join(_rows())
    unknown = INTER_HEADER.replace("float", "flot", 1)
    assert "line 1, field 'rating'" in _error("recbole", _recbole(tmp_path, unknown + rows))
    twice = "user_id:token\titem_id:token\titem_id:token\ttimestamp:float\n"
    assert "line 1, field 'item_id'" in _error("recbole", _recbole(tmp_path, twice + rows))


ITEM_HEADER = "item_id:token\tmovie_title:token_seq\tclass:token_seq\n"
ITEMS = [f"i{k}\tTitle {k}\tDrama\n" for k in range(4)]


def test_recbole_item_file_defects_are_errors(tmp_path: Path) -> None:
    inter = INTER_HEADER + "".join(_rows())
    ds = import_dataset("recbole", _recbole(tmp_path, inter, ITEM_HEADER + "".join(ITEMS)))
    assert ds.titles() == [f"Title {k}" for k in range(4)]
    duplicate = ITEM_HEADER + "".join([*ITEMS, "i2\tAgain\tDrama\n"])
    message = _error("recbole", _recbole(tmp_path, inter, duplicate))
    assert "x.item, line 6, field 'item_id': duplicate item_id 'i2' (first on line 4)" in message
    short = "item_id:token\tmovie_title:token_seq\n" + "".join(ITEMS)
    assert "x.item, line 1:" in _error("recbole", _recbole(tmp_path, inter, short))
    huge = ITEM_HEADER + "".join([*ITEMS[:2], f"i2\tTitle 2\t{'x' * 200_000}\n", ITEMS[3]])
    assert "x.item, line 4:" in _error("recbole", _recbole(tmp_path, inter, huge))


def test_recbole_bytes_that_are_not_utf8_name_the_line(tmp_path: Path) -> None:
    folder = _recbole(tmp_path, INTER_HEADER + "".join(_rows()))
    data = (folder / "x.inter").read_bytes().splitlines(keepends=True)
    data[3] = b"u0\ti2\t4\t88\xff0000002\n"
    (folder / "x.inter").write_bytes(b"".join(data))
    assert "x.inter, line 4:" in _error("recbole", folder)


def test_recbole_real_ml100k_in_milliseconds(tmp_path: Path) -> None:
    lines = shared_path("ml-100k", "ml-100k.inter").read_text(encoding="utf-8").splitlines(keepends=True)[:200]
    ms = [lines[0]] + [line.rstrip("\n") + "000\n" for line in lines[1:]]
    message = _error("recbole", _recbole(tmp_path, "".join(ms)))
    assert "x.inter, line 2, field 'timestamp'" in message and "divide by 1000" in message


# ====================================================================== LC-Rec
INDEX = {str(i): [f"<a_{i}>", f"<b_{i % 2}>"] for i in range(4)}
INTER = {"u0": [0, 1, 2, 3], "u1": [3, 2, 1, 0], "u2": [1, 2, 3]}


def _lcrec(tmp_path: Path, inter: str | dict | None = None, index: str | dict | None = None,
           item: str | dict | None = None) -> Path:
    folder = tmp_path / "lc"
    folder.mkdir(exist_ok=True)
    for suffix, content in ((".inter.json", INTER if inter is None else inter), (".index.json", index),
                            (".item.json", item)):
        if content is not None:
            (folder / f"X{suffix}").write_text(content if isinstance(content, str) else json.dumps(content))
    return folder


def test_lcrec_index_is_required_without_an_item_file(tmp_path: Path) -> None:
    message = _error("lcrec", _lcrec(tmp_path))
    assert f"{tmp_path / 'lc'}: no X.index.json" in message


def test_lcrec_duplicate_keys_name_the_key(tmp_path: Path) -> None:
    inter = '{"u0": [0, 1, 2], "u1": [3, 2, 1], "u0": [1, 2, 3]}'
    assert "X.inter.json: duplicate key 'u0'" in _error("lcrec", _lcrec(tmp_path, inter, INDEX))
    index = json.dumps(INDEX)[:-1] + ', "2": ["<a_9>", "<b_9>"]}'
    assert "X.index.json: duplicate key '2'" in _error("lcrec", _lcrec(tmp_path, INTER, index))


@pytest.mark.parametrize(("value", "says"), [("1,2,3", "a JSON string"), ([{"item": 1}, {"item": 2}], "a JSON object"),
                                             ([1, 3.5, 2], "a JSON number (3.5)"), ([1, True], "a JSON boolean")])
def test_lcrec_sequence_that_is_not_a_list_of_item_ids_names_the_user(tmp_path: Path, value: object, says: str) -> None:
    message = _error("lcrec", _lcrec(tmp_path, {**INTER, "u1": value}, INDEX))
    assert "X.inter.json, field 'u1'" in message and "user 'u1'" in message and says in message


def test_lcrec_empty_sequence_is_a_counted_filter(tmp_path: Path) -> None:
    ds = import_dataset("lcrec", _lcrec(tmp_path, {**INTER, "u3": []}, INDEX))
    (record,) = [f for f in ds.info.filters if f.name == "empty_sequences"]
    assert record.removed_users == 1 and ds.info.stats["users"] == 3


def test_lcrec_sid_of_another_length_or_type_names_the_item(tmp_path: Path) -> None:
    message = _error("lcrec", _lcrec(tmp_path, INTER, {**INDEX, "2": ["<a_2>"]}))
    assert "X.index.json, field '2'" in message and "1 tokens where 3 of the 4 items have 2" in message
    message = _error("lcrec", _lcrec(tmp_path, INTER, {**INDEX, "1": [1, 2]}))
    assert "X.index.json, field '1'" in message and "token strings" in message


def test_lcrec_item_missing_from_the_index(tmp_path: Path) -> None:
    message = _error("lcrec", _lcrec(tmp_path, INTER, {k: v for k, v in INDEX.items() if k != "3"}))
    assert "X.inter.json, field 'u0': item '3'" in message and "not in X.index.json" in message


@pytest.mark.parametrize(("title", "says"), [('{"x": 1}', "a JSON object"), ("12.5", "a JSON number"),
                                             ("NaN", "NaN is not a JSON value")])
def test_lcrec_item_text_of_the_wrong_type_names_item_and_field(tmp_path: Path, title: str, says: str) -> None:
    items = ", ".join(f'"{i}": {{"title": {title if i == 2 else json.dumps(f"T{i}")}}}' for i in range(4))
    message = _error("lcrec", _lcrec(tmp_path, INTER, INDEX, "{" + items + "}"))
    assert "X.item.json, field '2.title'" in message and says in message


def test_lcrec_deep_nesting_names_the_file(tmp_path: Path) -> None:
    inter = '{"u0": [0, 1, 2], "deep": ' + "[" * 10_000 + "]" * 10_000 + "}"
    assert "X.inter.json: JSON nested deeper than 64 levels" in _error("lcrec", _lcrec(tmp_path, inter, INDEX))


def test_lcrec_real_beauty_duplicate_user(tmp_path: Path) -> None:
    src = shared_path("amazon14-beauty")
    inter = json.loads((src / "Beauty.inter.json").read_text(encoding="utf-8"))
    users = list(inter.items())[:30]
    index = json.loads((src / "Beauty.index.json").read_text(encoding="utf-8"))
    used = {str(i) for _, seq in users for i in seq}
    body = json.dumps(dict(users), indent=4)
    repeated = body[:-2] + f',\n    "{users[0][0]}": {json.dumps(users[-1][1])}\n}}'
    folder = tmp_path / "beauty"
    folder.mkdir()
    (folder / "Beauty.inter.json").write_text(repeated, encoding="utf-8")
    (folder / "Beauty.index.json").write_text(json.dumps({k: v for k, v in index.items() if k in used}))
    assert f"Beauty.inter.json: duplicate key '{users[0][0]}'" in _error("lcrec", folder)


# ====================================================================== MiniOneRec
COLUMNS = ["user_id", "history_item_title", "item_title", "history_item_id", "item_id", "history_item_sid", "item_sid"]
SIDS = {str(i): [f"<a_{i}>", f"<b_{i % 3}>", f"<c_{i % 2}>"] for i in range(6)}
TITLES = {str(i): f"Item {i}" for i in range(6)}


def _row(user: str, history: list[int], target: int) -> list[str]:
    h = [str(i) for i in history]
    return [user, str([TITLES[i] for i in h]), TITLES[str(target)], str(history), str(target),
            str(["".join(SIDS[i]) for i in h]), "".join(SIDS[str(target)])]


VALID = [_row("u0", [0, 1, 2], 3), _row("u1", [4, 5], 0), _row("u2", [1, 2, 3, 4], 5)]
TEST = [_row("u0", [0, 1, 2, 3], 4), _row("u1", [4, 5, 0], 1), _row("u2", [1, 2, 3, 4, 5], 0)]


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([COLUMNS, *rows])


def _minionerec(tmp_path: Path, *, valid: list[list[str]] | None = None, info: str | None = None,
                index: str | None = None, item: str | None = None, with_index: bool = True) -> Path:
    folder = tmp_path / "mini"
    if folder.exists():
        shutil.rmtree(folder)
    _write_csv(folder / "valid" / "Toys_5.csv", VALID if valid is None else valid)
    _write_csv(folder / "test" / "Toys_5.csv", TEST)
    (folder / "info").mkdir()
    lines = "".join(f"{''.join(SIDS[i])}\t{TITLES[i]}\t{i}\n" for i in TITLES)
    (folder / "info" / "Toys_5.txt").write_text(lines if info is None else info, encoding="utf-8")
    if with_index:
        (folder / "index").mkdir()
        (folder / "index" / "Toys.index.json").write_text(json.dumps(SIDS) if index is None else index)
        texts = {i: {"title": t, "description": "['d']", "brand": "b", "categories": ""} for i, t in TITLES.items()}
        (folder / "index" / "Toys.item.json").write_text(json.dumps(texts) if item is None else item)
    return folder


def test_minionerec_clean_small_folder_imports(tmp_path: Path) -> None:
    ds = import_dataset("minionerec", _minionerec(tmp_path))
    assert ds.info.protocol == "industrial-partial" and ds.external_sids == SIDS
    assert len(ds.split("valid")) == 3 and ds.titles()[0] == "Item 0"


def test_minionerec_d3_layout_without_index_still_imports(tmp_path: Path) -> None:
    ds = import_dataset("minionerec", _minionerec(tmp_path, with_index=False))
    assert ds.external_sids is None and any("D3 layout" in n for n in ds.info.notes)


def test_minionerec_field_above_the_limit_names_its_line(tmp_path: Path) -> None:
    rows = [list(r) for r in VALID]
    rows[1][2] += "x" * 200_000
    message = _error("minionerec", _minionerec(tmp_path, valid=rows))
    assert "valid/Toys_5.csv, line 3:" in message and "131,072" in message


@pytest.mark.parametrize(
    ("column", "value", "field", "says"),
    [("item_sid", "<a_1><b_2><c_3>", "item_sid", "index/Toys.index.json gives item '0' the SID '<a_0><b_0><c_0>'"),
     ("item_title", "Item 0 (other)", "item_title", "info/Toys_5.txt gives item '0' the title 'Item 0'"),
     ("history_item_sid", "['<a_4><b_1><c_0>', '<a_9><b_9><c_9>']", "history_item_sid[1]",
      "gives item '5' the SID '<a_5><b_2><c_1>'"),
     ("history_item_title", "['Item 4']", "history_item_title", "1 entries for a history of 2 items")],
)
def test_minionerec_columns_that_disagree_with_index_or_info(tmp_path: Path, column: str, value: str, field: str,
                                                             says: str) -> None:
    rows = [list(r) for r in VALID]
    rows[1][COLUMNS.index(column)] = value
    message = _error("minionerec", _minionerec(tmp_path, valid=rows))
    assert f"valid/Toys_5.csv, line 3, field '{field}'" in message and says in message


@pytest.mark.parametrize("value", ["[1, 2", "__import__('os').getcwd()", "[1.5, 2]", "{'a': 1}"])
def test_minionerec_malformed_list_literal_names_line_and_field(tmp_path: Path, value: str) -> None:
    rows = [list(r) for r in VALID]
    rows[2][COLUMNS.index("history_item_id")] = value
    message = _error("minionerec", _minionerec(tmp_path, valid=rows))
    assert "valid/Toys_5.csv, line 4, field 'history_item_id'" in message


@pytest.mark.parametrize(("remove", "expected"), [("info/Toys_5.txt", "no info/Toys_5.txt"),
                                                  ("index/Toys.index.json", "no index/Toys.index.json"),
                                                  ("index/Toys.item.json", "no index/Toys.item.json")])
def test_minionerec_missing_info_or_index_file_names_the_expected_file(tmp_path: Path, remove: str,
                                                                        expected: str) -> None:
    folder = _minionerec(tmp_path)
    (folder / remove).unlink()
    assert expected in _error("minionerec", folder)


def test_minionerec_item_json_duplicate_key_and_wrong_types(tmp_path: Path) -> None:
    texts = ", ".join(f'"{i}": {{"title": "{t}"}}' for i, t in TITLES.items())
    message = _error("minionerec", _minionerec(tmp_path, item="{" + texts + ', "3": {"title": "Other"}}'))
    assert "Toys.item.json: duplicate key '3'" in message
    for title, says in (('{"x": 1}', "a JSON object"), ("NaN", "NaN is not a JSON value"), ("7", "a JSON number")):
        bad = texts.replace('"title": "Item 3"', f'"title": {title}')
        message = _error("minionerec", _minionerec(tmp_path, item="{" + bad + "}"))
        assert "Toys.item.json, field '3.title'" in message and says in message
    bad = texts.replace('"title": "Item 3"', '"title": "Item 3", "description": {"d": 1}')
    assert "field '3.description'" in _error("minionerec", _minionerec(tmp_path, item="{" + bad + "}"))


def test_minionerec_index_sid_of_another_length_and_info_sid_disagreement(tmp_path: Path) -> None:
    short = json.dumps({**SIDS, "4": SIDS["4"][:2]})
    assert "Toys.index.json, field '4'" in _error("minionerec", _minionerec(tmp_path, index=short))
    info = "".join(f"{''.join(SIDS[i]) if i != '2' else '<a_7>'}\t{TITLES[i]}\t{i}\n" for i in TITLES)
    message = _error("minionerec", _minionerec(tmp_path, info=info))
    assert "info/Toys_5.txt, line 3, field 'sid'" in message and "'<a_2><b_2><c_0>'" in message


def test_minionerec_real_industrial_sid_disagreement(tmp_path: Path) -> None:
    src = shared_path("amazon18-industrial")
    folder = tmp_path / "industrial"
    shutil.copytree(src, folder, ignore=shutil.ignore_patterns("semantics"))
    for split in ("valid", "test"):
        path = next((folder / split).glob("*.csv"))
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)[:40]
        if split == "valid":
            fields = next(csv.reader(lines[10:11]))
            fields[-1] = "<a_1><b_2><c_3>"
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerow(fields)
            lines[10] = buf.getvalue()
        path.write_text("".join(lines), encoding="utf-8")
    message = _error("minionerec", folder)
    assert "Industrial_and_Scientific_5_2016-10-2018-11.csv, line 11, field 'item_sid'" in message
    assert "index/Industrial_and_Scientific.index.json gives item" in message

"""Reading raw dataset files so that every defect becomes one DataError naming the file and line.

Every importer reads through these helpers:
- `open_text(path)`: text of a plain or gzip file, recognised by its bytes (a `.gz` name on plain
  text, or gzip bytes under a plain name, is named as such); truncated or corrupt gzip data and
  bytes that are not valid in the file's encoding raise DataError with the line where they occur.
- `load_json(path)` / `parse_json_line(...)`: JSON that refuses duplicate keys (the last would
  silently win), `NaN` / `Infinity` (not JSON), and nesting deeper than `MAX_JSON_DEPTH`.
- `csv_rows(path)`: csv rows with a field-size limit that names the line (a huge field is almost
  always a stray quote that swallowed the lines after it) and stray-quote detection.
- `check_unix_seconds(...)`: times that are finite, non-negative, not in the future and, for
  releases of a known era, not before `era_start` (a 2023 file read in the wrong unit lands in 1970).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import gzip
import io
import json
import math
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from sidrec.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
MAX_JSON_DEPTH = 64
CSV_FIELD_LIMIT = 131_072  # the csv module's default: a longer field is reported, not read
ERA_1990 = 631_152_000     # 1990-01-01: no public interaction log of our layouts starts earlier


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


@contextlib.contextmanager
def open_text(path: Path, encoding: str = "utf-8") -> Iterator[TextIO]:
    """The file's text (gzip recognised by its first bytes); read errors become DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    gz = is_gzip(path)
    if path.name.endswith(".gz") and not gz:
        raise DataError("named .gz but not gzip-compressed", path=path,
                        hint="remove the .gz from its name, or compress it with gzip")
    raw: Any = gzip.open(path, "rb") if gz else open(path, "rb")
    try:
        yield _CheckedText(raw, path, encoding)  # type: ignore[misc]
    finally:
        raw.close()


class _CheckedText(io.TextIOBase):
    """Line iteration over binary data that names the line of a decoding or gzip error."""

    def __init__(self, raw: Any, path: Path, encoding: str) -> None:
        self.raw, self.path, self._encoding, self.line = raw, path, encoding, 0

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        while True:
            try:
                data = self.raw.readline()
            except (EOFError, OSError, zlib.error) as e:
                raise DataError(f"truncated or corrupt gzip data after line {self.line} ({_first_line(e)})",
                                path=self.path, hint="download the file again") from None
            if not data:
                return
            self.line += 1
            yield decode_line(data, self.path, self.line, self._encoding)

    def read(self, size: int | None = -1) -> str:  # type: ignore[override]
        return "".join(self)

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        return next(iter(self), "")


def decode_line(data: bytes, path: Path, line: int, encoding: str = "utf-8") -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        if b"\x00" in data or line == 1 and sum(b < 9 for b in data[:64]) > 4:
            raise DataError("binary data, not a text file", path=path, line=line,
                            hint="is it compressed or the wrong file?") from None
        raise DataError(f"bytes that are not {encoding.upper()} at column {e.start + 1} ({data[e.start:e.start + 4]!r})",
                        path=path, line=line, hint=f"re-encode the file as {encoding.upper()}") from None


def read_text(path: Path, encoding: str = "utf-8") -> str:
    with open_text(path, encoding) as f:
        return f.read()


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


# ----------------------------------------------------------------------------- JSON
class _Refused(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"duplicate key '{key}' (JSON keeps only the last, so the first value would be lost)")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise _Refused(f"'{name}' is not a JSON value")


def _depth_exceeded(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def parse_json(text: str, path: Path, line: int | None = None) -> Any:
    """JSON text → value; DataError (file, line) for invalid JSON, duplicate keys, NaN / Infinity
    and nesting deeper than MAX_JSON_DEPTH."""
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _depth_exceeded(text):
        raise DataError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", path=path, line=line)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _Refused as e:
        raise DataError(str(e), path=path, line=line) from None
    except json.JSONDecodeError as e:
        where = (line if line is not None else e.lineno)
        raise DataError(f"invalid JSON ({e.msg}, column {e.colno})", path=path, line=where) from None
    except RecursionError:
        raise DataError("JSON nested too deeply", path=path, line=line) from None


def load_json(path: Path) -> Any:
    """A whole JSON document (plain or gzip), checked as `parse_json`."""
    text = read_text(path)
    if not text.strip():
        raise DataError("empty file", path=path)
    return parse_json(text, path)


# ----------------------------------------------------------------------------- delimited text
def csv_rows(path: Path, *, delimiter: str = ",", encoding: str = "utf-8") -> Iterator[tuple[int, list[str]]]:
    """(1-based line of the row's start, fields) for each csv row; a field above CSV_FIELD_LIMIT
    raises DataError naming the line (a stray quote usually merged the lines after it)."""
    with open_text(path, encoding) as f:
        reader = csv.reader(f, delimiter=delimiter, strict=True)
        line = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                msg = str(e)
                if "field larger than field limit" in msg:
                    msg = (f"a field longer than {CSV_FIELD_LIMIT:,} characters (a stray quote may have merged the "
                           "lines after it)")
                raise DataError(msg, path=path, line=line) from None
            yield line, row
            line = reader.line_num + 1


def check_field_lengths(rows: Sequence[Sequence[str]], path: Path, first_line: int = 2) -> None:
    for k, row in enumerate(rows):
        for value in row:
            if isinstance(value, str) and len(value) > CSV_FIELD_LIMIT:
                raise DataError(f"a field of {len(value):,} characters (limit {CSV_FIELD_LIMIT:,}; a stray quote or a "
                                "missing line break merged lines)", path=path, line=first_line + k)


# ----------------------------------------------------------------------------- times
def check_unix_seconds(seconds: Any, path: Path, field: str, *, lines: Sequence[int] | None = None,
                       era_start: int | None = None, unit_hint: str | None = None) -> np.ndarray:
    """Times as int64 unix seconds, checked: finite, ≥ 0 (≥ era_start when given), ≤ tomorrow.
    DataError names the first bad line and says what the value looks like."""
    values = np.asarray(seconds, dtype="float64")
    now = dt.datetime.now(dt.timezone.utc).timestamp() + 86_400
    low = float(era_start) if era_start is not None else 0.0
    bad = ~np.isfinite(values) | (values < low) | (values > now)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        v = float(values[i])
        line = int(lines[i]) if lines is not None else None
        if not math.isfinite(v):
            raise DataError(f"time {v} is not a finite number", path=path, line=line, field=field)
        when = _date(v)
        if v > now:
            hint = unit_hint or ("milliseconds? divide by 1000" if 1e11 < v <= now * 1000 else None)
            raise DataError(f"time {v:.0f} lies in the future ({when}); {int(bad.sum())} such value(s)",
                            path=path, line=line, field=field, hint=hint)
        if v < 0:
            raise DataError(f"time {v:.0f} is negative; {int(bad.sum())} such value(s)", path=path, line=line,
                            field=field, hint="unix seconds are ≥ 0")
        raise DataError(f"time {v:.0f} ({when}) lies before {_date(low)}, implausible for this release; "
                        f"{int(bad.sum())} such value(s)", path=path, line=line, field=field,
                        hint=unit_hint or "the file's times may be in another unit (seconds vs milliseconds)")
    return values.astype("int64")


def _date(seconds: float) -> str:
    try:
        return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).date().isoformat()
    except (OverflowError, OSError, ValueError):
        return "beyond year 9999"

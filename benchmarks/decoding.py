"""Constrained decoding: sidrec's trie beam search vs transformers' `generate(prefix_allowed_tokens_fn=...)`.

The same SmolLM2 model, the same prompts (Industrial test histories, sidrec's seqrec prompt), beam 20,
on the real Industrial dataset with its own SIDs (3 levels + a de-duplication level = 4 SID tokens):

* ours            `beam_search(CausalLMStepper(model), rec.token_trie, ...)`: one prefill per prompt,
                  then one single-token forward per level for all prompts × beams, allowed tokens
                  gathered from the tensor trie.
* hf_prefix_fn    `model.generate(num_beams=20, prefix_allowed_tokens_fn=fn)`, fn a Python dict trie
                  (generated prefix tuple → allowed token ids), as LC-Rec / MiniOneRec decode; it
                  returns the 20 sequences and their scores (`output_scores`, as LC-Rec asks for them).
* hf_plain        the same `generate` call without the prefix function: plain beam search's cost.
* ours_no_trie    our search loop with the trie removed (full-vocabulary top-k; optional reference).

Each batch of prompts is timed with every method, interleaved (the order rotates per batch and
repeat), `--repeats` times after one warm-up; a batch's time is its median over the repeats and a
method's time is the sum over batches. Forward hooks on the model split each call into time in the
model's forward and everything else (the decoding overhead). Agreement: ours vs hf_prefix_fn top-10
and top-20 item lists (identical lists, overlap, score differences); ours (beam 20) vs the exact
ranking of every item (`rec.exact_scores`) on the first `--n-exact` prompts.

    python benchmarks/decoding.py                                  # base SmolLM2, 30 layers, 64 prompts
    python benchmarks/decoding.py --num-layers 4 --n-prompts 16 --n-exact 2 --repeats 1   # quick look
    python benchmarks/decoding.py --model runs/sft/model           # a trained sidrec model
    python benchmarks/decoding.py --profile                        # + cProfile of one call per method

The dataset is imported once into benchmarks/.cache/industrial (git-ignored via `.cache/`).
Writes benchmarks/results/decoding.json (summary + raw per-batch figures + machine) and prints tables.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from _common import ROOT, SHARED_DATA, write_result
from sidrec.data.dataset import Dataset
from sidrec.llm.decoding import CausalLMStepper, beam_search, exact_item_scores
from sidrec.llm.recommender import GenerativeRecommender

console = Console()
SOURCE = SHARED_DATA / "amazon18-industrial"
CACHE = ROOT / "benchmarks" / ".cache" / "industrial"
METHODS = ("ours", "hf_prefix_fn", "hf_plain", "ours_no_trie")
LABELS = {"ours": "ours (tensor trie)", "hf_prefix_fn": "HF generate + prefix_allowed_tokens_fn",
          "hf_plain": "HF generate, unconstrained", "ours_no_trie": "ours, trie removed"}


# ------------------------------------------------------------------------------------------ setup
def load_dataset(cache: Path) -> Dataset:
    """The Industrial dataset, imported from the shared MiniOneRec files into `cache` once."""
    if not (cache / "dataset.json").is_file():
        from sidrec.data.importers import import_dataset

        if not SOURCE.exists():
            raise SystemExit(f"{SOURCE} not found: the benchmark needs the shared amazon18-industrial files")
        console.print(f"importing {SOURCE} → {cache} (once)")
        import_dataset("minionerec", SOURCE).save(cache)
    return Dataset.load(cache, validate=False)


def load_recommender(args: argparse.Namespace, dataset: Dataset) -> tuple[GenerativeRecommender, dict[str, Any]]:
    """A trained sidrec model folder, or the base SmolLM2 with the dataset's SID tokens added."""
    if args.model is not None:
        from sidrec.llm.recommender import resolve_model_dir

        rec = GenerativeRecommender.load(resolve_model_dir(args.model))
        info = {"source": str(args.model), "trained": True}
    else:
        from sidrec.llm.backbone import BackboneConfig, load_backbone
        from sidrec.llm.sft_data import SFTDataConfig
        from sidrec.sids.load import load_sid_table

        table = load_sid_table(dataset, None)
        cfg = BackboneConfig(num_layers=args.num_layers, dtype="float32")
        model, tokenizer, sid_tokens = load_backbone(cfg, table.vocab(), for_training=False)
        if args.sid_init == "random":
            randomise_sid_rows(model, sid_tokens.all_ids, args.seed)
        rec = GenerativeRecommender(model, tokenizer, table, sid_tokens, SFTDataConfig())
        info = {"source": cfg.name_or_path, "trained": False, "sid_init": args.sid_init,
                "note": "base model, not fine-tuned: rankings are not meaningful recommendations; the comparison "
                        "is of decoders on identical logits"}
    rec.model.eval()
    config = rec.model.config
    n_params = sum(p.numel() for p in rec.model.parameters())
    info.update({"layers": int(config.num_hidden_layers), "hidden": int(config.hidden_size),
                 "vocab": int(rec.model.get_output_embeddings().weight.shape[0]), "parameters": int(n_params),
                 "dtype": str(next(rec.model.parameters()).dtype)})
    return rec, info


def randomise_sid_rows(model: torch.nn.Module, sid_ids: list[int], seed: int) -> None:
    """Redraw the SID token rows ~ N(mean, std) of the pretrained rows (per dimension, seeded).

    transformers' resize initialises new rows at the mean embedding plus ~1e-6 noise, so on the base
    model every SID token gets (almost) the same logit and both decoders rank near-exact ties: top-K
    agreement would measure float round-off. Distinct rows give distinct, realistic logit gaps.
    """
    weights = [model.get_input_embeddings().weight]
    out = model.get_output_embeddings().weight
    if out.data_ptr() != weights[0].data_ptr():
        weights.append(out)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for w in weights:
            ids = torch.tensor(sorted(set(sid_ids)), dtype=torch.long)
            keep = torch.ones(w.shape[0], dtype=torch.bool)
            keep[ids] = False
            old = w[keep].float()
            new = old.mean(0) + old.std(0) * torch.randn(len(ids), w.shape[1], generator=gen)
            w[ids] = new.to(w.dtype)


def sample_prompts(rec: GenerativeRecommender, dataset: Dataset, n: int, seed: int) -> tuple[list[list[str]], np.ndarray]:
    """`n` test histories (a fixed random sample) and their row numbers in the test split."""
    test = dataset.split("test")
    rows = np.sort(np.random.default_rng(seed).choice(len(test), size=min(n, len(test)), replace=False))
    histories = [rec.check_history(list(map(str, test["history"].iloc[r])), "test history") for r in rows]
    return histories, rows


# ------------------------------------------------------------------------------------------ methods
class DictTrie:
    """LC-Rec-style constraint: generated prefix (tuple of token ids) → allowed next token ids."""

    def __init__(self, rec: GenerativeRecommender) -> None:
        self.allowed: dict[tuple[int, ...], list[int]] = {}
        children: dict[tuple[int, ...], set[int]] = {}
        self.item_of: dict[tuple[int, ...], int] = {}
        for index, iid in enumerate(rec.item_ids):
            toks = tuple(rec.sid_ids[iid])
            self.item_of[toks] = index
            for depth in range(len(toks)):
                children.setdefault(toks[:depth], set()).add(toks[depth])
        self.allowed = {k: sorted(v) for k, v in children.items()}
        self.prompt_width = 0  # set per batch: prompts are left-padded to one width

    def __call__(self, batch_id: int, sent: torch.Tensor) -> list[int]:
        return self.allowed.get(tuple(sent[self.prompt_width:].tolist()), [])


def hf_generate(rec: GenerativeRecommender, ids: torch.Tensor, mask: torch.Tensor, num_beams: int, levels: int,
                prefix_fn: DictTrie | None) -> Any:
    if prefix_fn is not None:
        prefix_fn.prompt_width = ids.shape[1]
    return rec.model.generate(
        input_ids=ids, attention_mask=mask, num_beams=num_beams, num_return_sequences=num_beams, do_sample=False,
        max_new_tokens=levels, prefix_allowed_tokens_fn=prefix_fn, early_stopping=True, length_penalty=1.0,
        pad_token_id=rec.tokenizer.pad_token_id, eos_token_id=None, output_scores=True, return_dict_in_generate=True)


def hf_items(out: Any, dict_trie: DictTrie, batch: int, num_beams: int, width: int, levels: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """(item indices [B, beams], summed log-probs [B, beams]) from a constrained generate output."""
    gen = out.sequences[:, width:].reshape(batch, num_beams, -1).tolist()
    items = np.array([[dict_trie.item_of.get(tuple(s), -1) for s in row] for row in gen], dtype=np.int64)
    # sequences_scores = sum of log-probs / generated length ** length_penalty (1.0); every SID has `levels` tokens
    scores = (out.sequences_scores.float() * levels).view(batch, num_beams).numpy()
    return items, scores


@torch.no_grad()
def beam_search_no_trie(stepper: CausalLMStepper, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
                        num_beams: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`beam_search`'s loop with the trie removed: full-vocabulary log-softmax + one topk per step."""
    batch = input_ids.shape[0]
    logits, state = stepper.prefill(input_ids, attention_mask)
    scores = torch.zeros(batch, 1)
    width, tokens = 1, None
    for depth in range(steps):
        if depth > 0:
            logits, state = stepper.step(tokens, state)
        vocab = logits.shape[-1]
        cand = (scores.reshape(-1, 1) + torch.log_softmax(logits.float(), dim=-1)).view(batch, width * vocab)
        scores, pos = cand.topk(num_beams, dim=1)
        src = torch.div(pos, vocab, rounding_mode="floor")
        tokens = (pos % vocab).reshape(-1)
        if depth + 1 < steps:
            state = stepper.select(state, (torch.arange(batch).unsqueeze(1) * width + src).reshape(-1))
        width = num_beams
    return tokens.view(batch, num_beams), scores


class ForwardClock:
    """Forward hooks on the top-level model: seconds spent inside model forward calls, and their count."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._t0 = 0.0
        self._handles = [model.register_forward_pre_hook(self._pre), model.register_forward_hook(self._post)]

    def _pre(self, *_: Any) -> None:
        self._t0 = time.perf_counter()

    def _post(self, *_: Any) -> None:
        self.seconds += time.perf_counter() - self._t0
        self.calls += 1

    def reset(self) -> None:
        self.seconds, self.calls = 0.0, 0

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


# ------------------------------------------------------------------------------------------ metrics
def agreement(ours_items: np.ndarray, ours_scores: np.ndarray, hf_items_: np.ndarray, hf_scores: np.ndarray
              ) -> dict[str, Any]:
    """Per-prompt comparison of two top-20 lists (item indices, best first) and their scores."""
    per: dict[str, list[float]] = {k: [] for k in ("top10_equal", "top20_equal", "top10_set_equal", "top20_set_equal",
                                                   "overlap10", "overlap20")}
    diff_same_item: list[float] = []
    diff_by_position: list[float] = []
    for a, sa, b, sb in zip(ours_items, ours_scores, hf_items_, hf_scores, strict=True):
        for k in (10, 20):
            per[f"top{k}_equal"].append(float(list(a[:k]) == list(b[:k])))
            per[f"top{k}_set_equal"].append(float(set(a[:k]) == set(b[:k])))
            per[f"overlap{k}"].append(len(set(a[:k]) & set(b[:k])) / k)
        pos_b = {int(i): j for j, i in enumerate(b)}
        diff_same_item += [abs(float(sa[j]) - float(sb[pos_b[int(i)]])) for j, i in enumerate(a) if int(i) in pos_b]
        diff_by_position += list(np.abs(np.asarray(sa, dtype=np.float64) - np.asarray(sb, dtype=np.float64)))
    out: dict[str, Any] = {k: float(np.mean(v)) for k, v in per.items()}
    out["max_abs_score_diff_same_item"] = float(max(diff_same_item)) if diff_same_item else None
    out["max_abs_score_diff_by_position"] = float(max(diff_by_position))
    out["invalid_hf_items"] = int((hf_items_ < 0).sum())
    out["invalid_ours_items"] = int((ours_items < 0).sum())
    out["per_prompt_top10_equal"] = per["top10_equal"]
    return out


def first_difference_gap(ours_items: np.ndarray, ours_scores: np.ndarray, hf_items_: np.ndarray) -> list[float | None]:
    """For prompts whose top-20 lists differ: the score gap between our items at the first differing rank
    and the next one (a near-tie there explains a swap)."""
    gaps: list[float | None] = []
    for a, sa, b in zip(ours_items, ours_scores, hf_items_, strict=True):
        diff = [j for j in range(len(a)) if a[j] != b[j]]
        if not diff:
            continue
        j = diff[0]
        gaps.append(float(abs(sa[j] - sa[j + 1])) if j + 1 < len(sa) else None)
    return gaps


# ------------------------------------------------------------------------------------------ main
def rotate(seq: tuple[str, ...], k: int) -> list[str]:
    k %= len(seq)
    return list(seq[k:] + seq[:k])


def profile_call(fn: Callable[[], Any], top: int = 15) -> dict[str, Any]:
    pr = cProfile.Profile()
    t0 = time.perf_counter()
    pr.enable()
    fn()
    pr.disable()
    total = time.perf_counter() - t0
    stream = io.StringIO()
    stats = pstats.Stats(pr, stream=stream)
    rows = []
    for (filename, line, func), (_, ncalls, tottime, cumtime, _) in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]:
        rows.append({"function": f"{Path(filename).name}:{line}({func})", "calls": ncalls,
                     "tottime_s": round(tottime, 4), "cumtime_s": round(cumtime, 4)})
    return {"seconds": round(total, 3), "top_tottime": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="a trained sidrec model folder (default: base SmolLM2)")
    ap.add_argument("--num-layers", type=int, default=None, help="keep the first N of SmolLM2's 30 layers (base only)")
    ap.add_argument("--n-prompts", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8, help="prompts per decoding call")
    ap.add_argument("--num-beams", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--n-exact", type=int, default=16, help="prompts ranked exactly over every item (slow; 0: skip)")
    ap.add_argument("--exact-batch", type=int, default=1, help="prompts per exact-ranking call")
    ap.add_argument("--node-chunk", type=int, default=256, help="trie nodes per exact-ranking forward")
    ap.add_argument("--no-trie-baseline", action=argparse.BooleanOptionalAction, default=True,
                    help="also time our search loop with the trie removed")
    ap.add_argument("--profile", action="store_true", help="cProfile one call of each method (first batch)")
    ap.add_argument("--seed", type=int, default=0, help="which test prompts are sampled (and the SID rows' seed)")
    ap.add_argument("--sid-init", choices=["random", "library"], default="random",
                    help="base model only: random = redraw the SID token embeddings ~ N(mean, std) of the "
                         "pretrained rows; library = keep transformers' resize init (near-identical rows → ties)")
    ap.add_argument("--warmup-prompts", type=int, default=None,
                    help="prompts of the first batch used for the one warm-up call per method (default: all)")
    ap.add_argument("--data", type=Path, default=CACHE, help="where the Industrial dataset is imported (once)")
    ap.add_argument("--name", default="decoding")
    args = ap.parse_args()
    if args.model is not None and args.num_layers is not None:
        ap.error("--num-layers applies to the base model only")

    wall0 = time.perf_counter()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    dataset = load_dataset(args.data)
    rec, model_info = load_recommender(args, dataset)
    trie = rec.token_trie.trie
    levels = int(trie.depth)
    beams = args.num_beams
    dict_trie = DictTrie(rec)
    histories, test_rows = sample_prompts(rec, dataset, args.n_prompts, args.seed)
    batches = [histories[s:s + args.batch_size] for s in range(0, len(histories), args.batch_size)]
    encoded = [rec.encode_prompts(h) for h in batches]
    prompt_tokens = [int(m.sum()) for _, m in encoded]
    console.print(f"[bold]Industrial[/]: {trie.n_items:,} items, SID of {levels} tokens "
                  f"(trie nodes per depth {[trie.num_nodes(d) for d in range(levels + 1)]}); "
                  f"model {model_info['source']} ({model_info['layers']} layers, {model_info['parameters'] / 1e6:.0f}M "
                  f"parameters); {len(histories)} prompts in {len(batches)} batches of {args.batch_size}, "
                  f"beam {beams}, {args.threads} threads")

    stepper = CausalLMStepper(rec.model)
    methods = [m for m in METHODS if m != "ours_no_trie" or args.no_trie_baseline]

    def call(method: str, ids: torch.Tensor, mask: torch.Tensor) -> Any:
        with torch.no_grad():
            if method == "ours":
                return beam_search(stepper, rec.token_trie, ids, mask, num_beams=beams, top_k=beams)
            if method == "hf_prefix_fn":
                return hf_generate(rec, ids, mask, beams, levels, dict_trie)
            if method == "hf_plain":
                return hf_generate(rec, ids, mask, beams, levels, None)
            return beam_search_no_trie(stepper, ids, mask, num_beams=beams, steps=levels)

    from sidrec.llm.backbone import quiet_transformers

    clock = ForwardClock(rec.model)
    raw_batches: list[dict[str, Any]] = [{"batch": b, "prompts": len(batches[b]), "prompt_tokens": prompt_tokens[b],
                                          "padded_width": int(encoded[b][0].shape[1]),
                                          **{m: {"seconds": [], "forward_seconds": [], "forward_calls": []} for m in methods}}
                                         for b in range(len(batches))]
    outputs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"ours": [], "hf_prefix_fn": []}
    with quiet_transformers():
        # warm-up: every method once on the first batch
        t0 = time.perf_counter()
        warm = encoded[0] if args.warmup_prompts is None else rec.encode_prompts(batches[0][:args.warmup_prompts])
        for m in methods:
            call(m, *warm)
        console.print(f"warm-up {time.perf_counter() - t0:.1f} s")
        for r in range(args.repeats):
            t_rep = time.perf_counter()
            for b, (ids, mask) in enumerate(encoded):
                for m in rotate(tuple(methods), r + b):
                    clock.reset()
                    t0 = time.perf_counter()
                    out = call(m, ids, mask)
                    dt = time.perf_counter() - t0
                    row = raw_batches[b][m]
                    row["seconds"].append(round(dt, 5))
                    row["forward_seconds"].append(round(clock.seconds, 5))
                    row["forward_calls"].append(clock.calls)
                    if r == 0 and m == "ours":
                        outputs["ours"].append((out[0].numpy(), out[1].float().numpy()))
                    elif r == 0 and m == "hf_prefix_fn":
                        outputs["hf_prefix_fn"].append(hf_items(out, dict_trie, ids.shape[0], beams, ids.shape[1], levels))
            console.print(f"repeat {r + 1}/{args.repeats}: {time.perf_counter() - t_rep:.1f} s")
        profiles: dict[str, Any] = {}
        if args.profile:
            for m in methods:
                profiles[m] = profile_call(lambda m=m: call(m, *encoded[0]))
    clock.remove()

    # ---------------------------------------------------------------- timing figures
    timing: dict[str, Any] = {}
    for m in methods:
        per_batch = [statistics.median(rb[m]["seconds"]) for rb in raw_batches]
        fwd = [statistics.median(rb[m]["forward_seconds"]) for rb in raw_batches]
        total, fwd_total = sum(per_batch), sum(fwd)
        timing[m] = {"seconds_total": total, "seconds_per_batch_median": per_batch,
                     "prompts_per_s": len(histories) / total, "forward_seconds_total": fwd_total,
                     "non_forward_seconds_total": total - fwd_total, "non_forward_share": (total - fwd_total) / total,
                     "forward_calls_per_batch": raw_batches[0][m]["forward_calls"][0]}
    ratio = lambda a, b: [x / y for x, y in zip(timing[a]["seconds_per_batch_median"], timing[b]["seconds_per_batch_median"], strict=True)]  # noqa: E731
    speedup = timing["hf_prefix_fn"]["seconds_total"] / timing["ours"]["seconds_total"]
    overhead = timing["ours"]["seconds_total"] / timing["hf_plain"]["seconds_total"] - 1
    comparisons = {
        "speedup_vs_prefix_fn": speedup,
        "speedup_vs_prefix_fn_median_of_batches": statistics.median(ratio("hf_prefix_fn", "ours")),
        "overhead_vs_hf_unconstrained": overhead,
        "prefix_fn_overhead_vs_hf_unconstrained": timing["hf_prefix_fn"]["seconds_total"] / timing["hf_plain"]["seconds_total"] - 1,
    }
    if "ours_no_trie" in timing:
        comparisons["overhead_vs_ours_no_trie"] = timing["ours"]["seconds_total"] / timing["ours_no_trie"]["seconds_total"] - 1

    # ---------------------------------------------------------------- agreement with HF
    ours_items = np.concatenate([o[0] for o in outputs["ours"]])
    ours_scores = np.concatenate([o[1] for o in outputs["ours"]])
    hf_it = np.concatenate([o[0] for o in outputs["hf_prefix_fn"]])
    hf_sc = np.concatenate([o[1] for o in outputs["hf_prefix_fn"]])
    agree = agreement(ours_items, ours_scores, hf_it, hf_sc)
    agree["score_gap_at_first_difference"] = first_difference_gap(ours_items, ours_scores, hf_it)

    # ---------------------------------------------------------------- beam vs exact
    exact: dict[str, Any] = {"n": 0}
    n_exact = min(args.n_exact, len(histories))
    if n_exact > 0:
        exact_top, exact_seconds, exact_scores_at_beam = [], [], []
        for s in range(0, n_exact, args.exact_batch):
            h = histories[s:s + args.exact_batch]
            ids, mask = rec.encode_prompts(h)
            t0 = time.perf_counter()
            scores = exact_item_scores(stepper, rec.token_trie, ids, mask, node_chunk=args.node_chunk).float()
            exact_seconds.append(time.perf_counter() - t0)
            exact_top.append(scores.topk(10, dim=1).indices.numpy())
            exact_scores_at_beam.append(scores.gather(1, torch.as_tensor(ours_items[s:s + len(h)]).clamp(min=0)).numpy())
            console.print(f"exact ranking {min(s + len(h), n_exact)}/{n_exact}: {exact_seconds[-1]:.1f} s")
        ex = np.concatenate(exact_top)
        beam10 = ours_items[:n_exact, :10]
        list_eq = [float(list(a) == list(b)) for a, b in zip(beam10, ex, strict=True)]
        set_eq = [float(set(a) == set(b)) for a, b in zip(beam10, ex, strict=True)]
        overlap = [len(set(a) & set(b)) / 10 for a, b in zip(beam10, ex, strict=True)]
        in_beam20 = [len(set(b) & set(ours_items[i, :20])) / 10 for i, b in enumerate(ex)]
        exact = {"n": n_exact, "batch": args.exact_batch, "node_chunk": args.node_chunk,
                 "seconds_total": sum(exact_seconds), "seconds_per_prompt": sum(exact_seconds) / n_exact,
                 "seconds_per_call": exact_seconds,
                 "top10_list_agreement": float(np.mean(list_eq)), "top10_set_agreement": float(np.mean(set_eq)),
                 "top10_mean_overlap": float(np.mean(overlap)), "exact_top10_recall_in_beam20": float(np.mean(in_beam20)),
                 "top1_agreement": float(np.mean([a[0] == b[0] for a, b in zip(beam10, ex, strict=True)])),
                 "max_abs_beam_vs_exact_score_same_item": float(np.abs(np.concatenate(exact_scores_at_beam)
                                                                       - ours_scores[:n_exact]).max()),
                 "per_prompt_top10_list_equal": list_eq,
                 "forwards_per_prompt_tokens": int(sum(trie.num_nodes(d) * d for d in range(1, levels)) + 1)}

    wall = time.perf_counter() - wall0
    summary = {
        "decoding.speedup_vs_prefix_fn": round(speedup, 3),
        "decoding.overhead_vs_unconstrained": round(overhead, 4),
        "decoding.topk_agreement": agree["top10_equal"],
        "decoding.topk_agreement_k": 10,
        "decoding.top20_agreement": agree["top20_equal"],
        "decoding.max_abs_score_diff": agree["max_abs_score_diff_same_item"],
        "decoding.beam_vs_exact_top10_agreement": exact.get("top10_list_agreement"),
        "decoding.beam_vs_exact_top10_set_agreement": exact.get("top10_set_agreement"),
        "decoding.ours_prompts_per_s": round(timing["ours"]["prompts_per_s"], 4),
        "decoding.prefix_fn_prompts_per_s": round(timing["hf_prefix_fn"]["prompts_per_s"], 4),
        "decoding.hf_unconstrained_prompts_per_s": round(timing["hf_plain"]["prompts_per_s"], 4),
    }
    if "overhead_vs_ours_no_trie" in comparisons:
        summary["decoding.overhead_vs_ours_no_trie"] = round(comparisons["overhead_vs_ours_no_trie"], 4)
    config = {
        "dataset": {"name": dataset.name, "source": str(SOURCE), "items": trie.n_items, "sid_levels": levels,
                    "sid": "the dataset's own SIDs (3 levels) + a de-duplication level",
                    "trie_nodes_per_depth": [trie.num_nodes(d) for d in range(levels + 1)]},
        "model": model_info,
        "prompts": {"split": "test", "n": len(histories), "seed": args.seed, "test_rows": test_rows.tolist(),
                    "format": "SFTDataConfig() seqrec prompt, left-padded", "mean_prompt_tokens":
                        float(np.mean([int(m.sum()) / m.shape[0] for _, m in encoded]))},
        "batch_size": args.batch_size, "num_beams": beams, "top_k_compared": [10, 20], "repeats": args.repeats,
        "warmup": f"every method once on the first batch ({args.warmup_prompts or 'all'} prompts)", "threads": args.threads,
        "timing": "per batch: median over repeats (methods interleaved, order rotated per batch and repeat); "
                  "per method: sum over batches; prompts_per_s = prompts / that sum",
        "hf_generate": {"num_beams": beams, "num_return_sequences": beams, "do_sample": False,
                        "max_new_tokens": levels, "early_stopping": True, "eos_token_id": None, "length_penalty": 1.0,
                        "output_scores": True, "return_dict_in_generate": True,
                        "prefix_allowed_tokens_fn": "dict: generated-prefix tuple → sorted allowed token ids "
                                                     "(built once, outside timing)"},
        "definitions": {
            "decoding.speedup_vs_prefix_fn": "HF-constrained total time / ours total time",
            "decoding.overhead_vs_unconstrained": "ours total time / HF unconstrained generate total time - 1",
            "decoding.overhead_vs_ours_no_trie": "ours / our own search loop with the trie removed - 1",
            "decoding.topk_agreement": "fraction of prompts whose top-10 item lists (ordered) are identical, ours vs HF",
            "decoding.top20_agreement": "same for the top-20 lists",
            "decoding.max_abs_score_diff": "max |score ours - score HF| over items in both top-20 lists",
            "decoding.beam_vs_exact_top10_agreement": "fraction of the first n_exact prompts whose beam-20 top-10 "
                                                      "list equals the exact top-10 list",
            "decoding.beam_vs_exact_top10_set_agreement": "same, as sets"},
        "targets": {"speedup_vs_prefix_fn": ">= 3 on CPU", "overhead_vs_unconstrained": "<= 0.15"},
    }
    machine = {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "processor": platform.processor(),
               "load_average_before": load_before, "load_average_after": os.getloadavg(), "wall_seconds": round(wall, 1)}
    raw = {"batches": raw_batches, "timing": timing, "comparisons": comparisons, "agreement": agree, "exact": exact}
    if profiles:
        raw["profiles"] = profiles
    path = write_result(args.name, summary=summary, config=config, raw=raw, machine=machine)
    print_tables(timing, comparisons, agree, exact, len(histories), beams)
    console.print(f"wall {wall:.0f} s; load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    console.print(f"wrote [bold]{path}[/]")


def print_tables(timing: dict[str, Any], comparisons: dict[str, Any], agree: dict[str, Any], exact: dict[str, Any],
                 n: int, beams: int) -> None:
    t = Table(title=f"constrained beam search, beam {beams}: {n} Industrial test prompts (median of repeats)")
    for c in ("method", "total s", "prompts/s", "× ours time", "in model forward s", "outside forward s",
              "forward calls/batch"):
        t.add_column(c, justify="right")
    ours = timing["ours"]["seconds_total"]
    for m, r in timing.items():
        t.add_row(LABELS[m], f"{r['seconds_total']:.2f}", f"{r['prompts_per_s']:.3f}", f"{r['seconds_total'] / ours:.2f}",
                  f"{r['forward_seconds_total']:.2f}", f"{r['non_forward_seconds_total']:.2f} "
                  f"({r['non_forward_share']:.1%})", str(r["forward_calls_per_batch"]))
    console.print(t)
    c = Table(title="comparisons")
    c.add_column("figure")
    c.add_column("value", justify="right")
    c.add_column("target", justify="right")
    c.add_row("speedup vs prefix_allowed_tokens_fn", f"{comparisons['speedup_vs_prefix_fn']:.2f}×", "≥ 3×")
    c.add_row("  (median of per-batch ratios)", f"{comparisons['speedup_vs_prefix_fn_median_of_batches']:.2f}×", "")
    c.add_row("ours vs HF unconstrained generate", f"{comparisons['overhead_vs_hf_unconstrained']:+.1%}", "≤ +15%")
    c.add_row("HF prefix_fn vs HF unconstrained", f"{comparisons['prefix_fn_overhead_vs_hf_unconstrained']:+.1%}", "")
    if "overhead_vs_ours_no_trie" in comparisons:
        c.add_row("ours vs ours with the trie removed", f"{comparisons['overhead_vs_ours_no_trie']:+.1%}", "")
    c.add_row("identical top-10 lists (ours vs HF)", f"{agree['top10_equal']:.1%}", "")
    c.add_row("identical top-20 lists (ours vs HF)", f"{agree['top20_equal']:.1%}", "")
    c.add_row("mean overlap @10 / @20", f"{agree['overlap10']:.3f} / {agree['overlap20']:.3f}", "")
    c.add_row("max |score diff| same item", f"{agree['max_abs_score_diff_same_item']:.2e}", "~1e-4")
    c.add_row("invalid items ours / HF", f"{agree['invalid_ours_items']} / {agree['invalid_hf_items']}", "0")
    if exact.get("n"):
        c.add_row(f"beam top-10 == exact top-10 (list), {exact['n']} prompts", f"{exact['top10_list_agreement']:.1%}", "")
        c.add_row("beam top-10 == exact top-10 (set)", f"{exact['top10_set_agreement']:.1%}", "")
        c.add_row("exact top-10 found in beam top-20", f"{exact['exact_top10_recall_in_beam20']:.1%}", "")
        c.add_row("max |beam − exact score| same item", f"{exact['max_abs_beam_vs_exact_score_same_item']:.2e}", "")
        c.add_row("exact ranking s/prompt", f"{exact['seconds_per_prompt']:.1f}", "")
    console.print(c)


if __name__ == "__main__":
    main()

"""`TSRecTrainer`: SFT with TS-Rec's SA-Init and TS-Align (settings in `sidrec.methods.tsrec.config`).

    config = SFTConfig(method="tsrec", dataset="data/industrial",
                       tsrec={"semantics": "semantics.json", "sa_init": {"enabled": True},
                              "align": {"enabled": True}})
    SFTTrainer subclass: TSRecTrainer(config, RunDir("runs/tsrec")).train()

Everything else (loop, evaluation, checkpoints, resume) is the SFT trainer's. With both parts off
it trains exactly like `method: sft` (the "neither" arm of the ablation). What SA-Init did (tokens
per level, target norm) goes to RUN/tsrec.json and the log.
"""

from __future__ import annotations

from typing import Any

from sidrec.data.dataset import Dataset
from sidrec.llm.backbone import SIDTokens, load_backbone
from sidrec.llm.sft_data import SFTCorpus, build_corpus
from sidrec.llm.sid_init import SAInitReport, resolve_levels, sa_init
from sidrec.llm.trainer import SFTTrainer
from sidrec.methods.tsrec.align import ALIGN_TASKS, add_examples, align_examples
from sidrec.semantics.format import TokenSemantics, coverage, load_semantics
from sidrec.sids.table import SIDTable
from sidrec.utils.io import write_json
from sidrec.utils.progress import console


class TSRecTrainer(SFTTrainer):
    """SFT + SA-Init (before training) + TS-Align (extra tasks in the mixture)."""

    semantics: dict[str, TokenSemantics]
    sa_init_report: SAInitReport | None = None

    def _load_semantics(self, table: SIDTable) -> dict[str, TokenSemantics]:
        ts = self.config.tsrec
        if ts.semantics is None:
            return {}
        semantics = load_semantics(ts.semantics, table)
        cov = coverage(semantics, table)
        self._log(f"semantics {ts.semantics}: {cov.covered}/{cov.used} used tokens covered; {cov.per_level}")
        if self.is_main:
            console.print(f"[bold]semantics[/bold] {cov.covered}/{cov.used} used SID tokens covered "
                          + ", ".join(f"{p}: {v['with_semantics']}/{v['used_tokens']}" for p, v in cov.per_level.items()))
        return semantics

    def load_model(self, table: SIDTable) -> tuple[Any, Any, Any]:
        ts = self.config.tsrec
        self.semantics = self._load_semantics(table)
        def write_sid_rows(model: Any, tokenizer: Any, sid_tokens: SIDTokens) -> None:
            self.sa_init_report = sa_init(model, tokenizer, sid_tokens, self.semantics,
                                          levels=resolve_levels(ts.sa_init.levels, table.prefixes),
                                          init_output=ts.sa_init.init_output)

        if ts.sa_init.enabled:
            init = write_sid_rows
        else:  # no TS-Rec SA-Init: the model's own sid_init (tfidf included) applies
            init = self.tfidf_init_rows(table) if self.config.model.sid_init == "tfidf" else None
        loaded = load_backbone(self.config.model, table.vocab(), device=self.device, init_sid_rows=init)
        if self.sa_init_report is not None:
            info = self.sa_init_report.to_dict()
            self._log(f"SA-Init: {info}")
            if self.is_main:
                console.print(f"[bold]SA-Init[/bold] initialised {info['initialised']} (left at default init: "
                              f"{info['without_semantics']}), norm {info['target_norm']:.4f}")
                write_json(self.run.path / "tsrec.json", {"sa_init": info})
        return loaded

    def build_corpus(self, dataset: Dataset, table: SIDTable) -> SFTCorpus:
        builder = self.prompt_builder(table)
        corpus = build_corpus(builder, dataset.split("train"), dataset.items)
        align = self.config.tsrec.align
        if align.enabled:
            tokens = [t for level in self.sid_tokens.strings for t in level]
            corpus = add_examples(corpus, align_examples(builder, self.semantics, tokens,
                                                         max_description_tokens=align.max_description_tokens))
        return corpus

    def task_weights(self) -> dict[str, float]:
        weights = super().task_weights()
        if self.config.tsrec.align.enabled:
            weights.update({task: self.config.tsrec.align.weight for task in ALIGN_TASKS})
        return weights

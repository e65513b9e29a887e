"""TS-Align (methods.md §4): two extra SFT tasks per SID token with semantics, mixed into the task
mixture with weight `tsrec.align.weight`: token → description ("what do items containing <b_17>
have in common?") and description → token."""

from __future__ import annotations

from collections.abc import Sequence

from sidrec.errors import ConfigError
from sidrec.llm.sft_data import PromptBuilder, SFTCorpus, TokenizedExample
from sidrec.semantics.format import TokenSemantics

ALIGN_TASKS = ("token2desc", "desc2token")
ALIGN_TEMPLATES: dict[str, list[str]] = {
    "token2desc": [
        "What do items containing {token} have in common?\nAnswer:",
        "Describe the items whose identifier contains {token}.\nAnswer:",
    ],
    "desc2token": [
        "Which identifier token stands for items like this: {description}\nAnswer:",
        "Items described as follows share one identifier token. {description} Which token is it?\nAnswer:",
    ],
}
ALIGN_COMPACT_TEMPLATES: dict[str, str] = {
    "token2desc": "Token: {token}\nMeaning:",
    "desc2token": "Meaning: {description}\nToken:",
}


def align_template(builder: PromptBuilder, task: str, i: int) -> str:
    if builder.cfg.compact:
        return ALIGN_COMPACT_TEMPLATES[task]
    options = ALIGN_TEMPLATES[task]
    return options[i % len(options)]


def align_examples(builder: PromptBuilder, semantics: dict[str, TokenSemantics], tokens: Sequence[str],
                   *, max_description_tokens: int = 96) -> dict[str, list[TokenizedExample]]:
    """token → description and description → token examples for every token with semantics."""
    tok = builder.tokenizer
    have = [t for t in tokens if t in semantics]
    descriptions = [tok.convert_tokens_to_string(tok.tokenize(semantics[t].description)[:max_description_tokens]).strip()
                    for t in have]
    token_ids = {t: tok.convert_tokens_to_ids(t) for t in have}
    out: dict[str, list[TokenizedExample]] = {}
    prompts = builder.encode([builder.wrap(align_template(builder, "token2desc", k).format(token=t))
                              for k, t in enumerate(have)])
    responses = builder.title_response(descriptions)  # " description" + EOS
    out["token2desc"] = [TokenizedExample("token2desc", p + r, len(p)) for p, r in zip(prompts, responses, strict=True)]
    prompts = builder.encode([builder.wrap(align_template(builder, "desc2token", k).format(description=d))
                              for k, d in enumerate(descriptions)])
    out["desc2token"] = [TokenizedExample("desc2token", p + [int(token_ids[t]), builder.eos], len(p))
                         for p, t in zip(prompts, have, strict=True)]
    return out


def add_examples(corpus: SFTCorpus, extra: dict[str, list[TokenizedExample]]) -> SFTCorpus:
    """The corpus with more tasks appended (their indices continue after the existing examples)."""
    import numpy as np

    for task, examples in extra.items():
        if task in corpus.task_index:
            raise ConfigError(f"task {task} is already in the corpus")
        start = len(corpus.examples)
        corpus.examples.extend(examples)
        corpus.task_index[task] = np.arange(start, start + len(examples), dtype=np.int64)
    return corpus

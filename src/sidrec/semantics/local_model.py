"""A local HF causal LM as a TS-Rec teacher, and the chat model behind `sidrec semantics serve`.

    lm = LocalChatModel("smollm2-135m")
    lm.complete(messages, json_mode=True, max_tokens=256)   # '{"description": "...", "keywords": [...]}'
    teacher = HFTeacher("smollm2-135m")                      # same prompt and validator as OpenAITeacher

`LocalChatModel` runs a local HF causal LM greedily. Small instruct models rarely write valid
JSON on their own, so its JSON mode writes the JSON skeleton itself and lets the model fill in
the values: the assistant turn is opened and prefilled with `{"description": "`, the model
writes until it closes the string with `"`; then `", "keywords": ["` is appended and the model
writes until `]`. The pieces are assembled into one JSON object, which goes through the same
`parse_reply` as every other teacher's reply. `HFTeacher` (and the chat server of
`sidrec.semantics.server`) use it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sidrec.semantics.teacher import MIN_KEYWORDS, Messages, Outcome, TeacherFailure, TeacherReply, parse_reply


class LocalChatModel:
    """A local HF causal LM answering chat messages greedily, with a JSON mode (module docstring).

        lm = LocalChatModel("smollm2-135m")
        lm.complete(messages, json_mode=True, max_tokens=256)   # '{"description": "...", "keywords": [...]}'

    Thread-safe (one generation at a time). Generation is explicit: greedy, one beam, the
    model's own generation_config is not used."""

    def __init__(self, name_or_path: str = "smollm2-135m", *, device: str = "auto", dtype: str = "float32",
                 keyword_penalty: float = 1.5) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        from sidrec.llm.backbone import (
            load_tokenizer,
            neutralise_generation_config,
            quiet_transformers,
            resolve_pretrained,
            resolve_torch_dtype,
        )
        from sidrec.utils.device import resolve_device

        self.name_or_path = name_or_path
        self.path = resolve_pretrained(name_or_path)
        self.device = resolve_device(device)
        self.tokenizer = load_tokenizer(self.path)
        with quiet_transformers():
            self.model = AutoModelForCausalLM.from_pretrained(self.path, dtype=resolve_torch_dtype(dtype, self.device))
        self.model.to(self.device).eval()
        neutralise_generation_config(self.model, self.tokenizer)
        # generation holds `_lock` (one at a time, waiting at most `lock_timeout` s, each call cut at
        # `max_time` s); tokenising holds only `_tokenizer_lock`, so it never waits on a generation
        self._lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()
        self.lock_timeout: float | None = None
        self.max_time: float | None = None
        self._torch = torch
        self._closers: list[int] | None = None
        self._separators: list[int] | None = None
        self.keyword_penalty = keyword_penalty

    # prompt ----------------------------------------------------------------------
    def prompt_text(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """The chat template applied with the assistant turn opened (a plain transcript without one)."""
        msgs = [{"role": str(m.get("role", "user")), "content": _content_text(m.get("content"))} for m in messages]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in msgs) + "Assistant: "

    def _generate(self, text: str, max_new_tokens: int, stop: Callable[[str], int | None] | None = None,
                  processor: Any = None) -> tuple[str, bool]:
        """Greedy continuation of `text`: (new text, cut where `stop` says, and whether it said so).

        `stop(new_text)` returns the index at which the new text ends, or None to go on;
        `processor(start)` builds a LogitsProcessor for a prompt of `start` tokens."""
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        torch = self._torch
        with self._tokenizer_lock:
            enc = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        input_ids = enc["input_ids"].to(self.device)
        start = input_ids.shape[1]
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit and start + max_new_tokens > limit:
            raise ValueError(f"the prompt has {start} tokens and {max_new_tokens} more were asked for, but "
                             f"{self.name_or_path} takes at most {limit} positions (show fewer items)")
        config = GenerationConfig(max_new_tokens=max(1, int(max_new_tokens)), do_sample=False, num_beams=1,
                                  pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id,
                                  max_time=self.max_time)
        criteria = StoppingCriteriaList([_stop_on_text(self.tokenizer, start, stop)]) if stop else None
        processors = LogitsProcessorList([processor(start)]) if processor else None
        if not self._lock.acquire(timeout=self.lock_timeout if self.lock_timeout is not None else -1):
            raise ModelBusy(f"the model was busy for {self.lock_timeout:g} s; retry later")
        try:
            with torch.inference_mode():
                out = self.model.generate(input_ids=input_ids, attention_mask=enc["attention_mask"].to(self.device),
                                          generation_config=config, stopping_criteria=criteria,
                                          logits_processor=processors)
        finally:
            self._lock.release()
        with self._tokenizer_lock:
            new = self.tokenizer.decode(out[0, start:], skip_special_tokens=True)
        if stop:
            cut = stop(new)
            if cut is not None:
                return new[:cut], True
        return new, False

    def complete(self, messages: Sequence[Mapping[str, Any]], *, json_mode: bool = False, max_tokens: int = 256) -> str:
        """The assistant's reply; with `json_mode`, a JSON object {"description", "keywords"}.

        ValueError when the prompt does not fit the model's context."""
        with self._tokenizer_lock:
            prompt = self.prompt_text(messages)
        if not json_mode:
            return self._generate(prompt, max_tokens)[0].strip()
        return self._json_reply(prompt, max_tokens)

    def count_tokens(self, text: str) -> int:
        with self._tokenizer_lock:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _token_sets(self) -> tuple[list[int], list[int]]:
        """(ids whose text closes the keyword list or the turn, separator ids exempt from the repetition penalty)."""
        if self._closers is None:
            with self._tokenizer_lock:
                texts = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
            self._closers = [i for i, t in enumerate(texts) if "]" in t or "\n" in t or "}" in t]
            self._closers += [int(i) for i in {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id} if i is not None]
            self._separators = [i for i, t in enumerate(texts) if not t.strip(' "\',') or '"' in t]
        return self._closers, self._separators  # type: ignore[return-value]

    def _json_reply(self, prompt: str, max_tokens: int) -> str:
        head = '{"description": "'
        budget = max(8, int(max_tokens) // 2)  # half for the description, half for the keywords
        description, closed = self._generate(prompt + head, budget, _description_end)
        description = description.strip()
        if not closed:  # ran out of tokens mid-sentence: keep whole sentences when there are any
            sentences = _sentences(description)
            if sentences and sentences[-1][1] < len(description):
                description = description[:sentences[-1][1]].strip()
        mid = '", "keywords": ["'
        rest = max(8, int(max_tokens) - budget)
        closers, separators = self._token_sets()

        def processor(start: int) -> Any:
            return _keyword_processor(self.tokenizer, start, closers, separators, MIN_KEYWORDS + 2,
                                      self.keyword_penalty)

        kw_text, _ = self._generate(prompt + head + description + mid, rest, _keywords_end, processor)
        keywords = _quoted_strings('"' + kw_text)
        return json.dumps({"description": description, "keywords": keywords}, ensure_ascii=False)


class ModelBusy(RuntimeError):
    """The model lock could not be had within `lock_timeout` seconds."""


def _content_text(content: Any) -> str:
    """OpenAI message content: a string or a list of {"type": "text", "text": ...} parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _find_stop(text: str, stop: str) -> int | None:
    """Index of the first `stop` not escaped by a backslash, or None."""
    k = text.find(stop)
    while k != -1:
        if k == 0 or text[k - 1] != "\\":
            return k
        k = text.find(stop, k + 1)
    return None


def _sentences(text: str) -> list[tuple[str, int]]:
    """(normalised sentence, end index) for each complete sentence of `text`."""
    return [(" ".join(m.group(0).lower().split()), m.end()) for m in re.finditer(r'[^.!?]*[.!?](?=\s|$|")', text)]


def _description_end(text: str) -> int | None:
    """Where the JSON description string ends: its closing quote, a blank line, or the start of a
    sentence the model already wrote (greedy decoding of small models loops)."""
    ends = [k for k in (_find_stop(text, '"'), _find_stop(text, "\n\n")) if k is not None]
    seen: set[str] = set()
    start = 0
    for sentence, end in _sentences(text):
        if sentence in seen:
            ends.append(start)
            break
        seen.add(sentence)
        start = end
    return min(ends) if ends else None


def _keywords_end(text: str) -> int | None:
    """Where the JSON keyword list ends: its `]`, a newline, or the start of a repeated keyword.

    `text` continues a prefilled `["`, e.g. `drill", "cordless", "drill`."""
    ends = [k for k in (_find_stop(text, "]"), _find_stop(text, "\n")) if k is not None]
    seen: set[str] = set()
    for m in _QUOTED_RE.finditer('"' + text):
        word = " ".join(m.group(1).split()).lower()
        if not word:
            continue
        if word in seen:
            ends.append(max(0, m.start() - 1))
            break
        seen.add(word)
    return min(ends) if ends else None


_QUOTED_RE = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _quoted_strings(text: str) -> list[str]:
    """The complete "..." strings in a JSON-array-like fragment (an unterminated last one is dropped)."""
    out = []
    for m in _QUOTED_RE.finditer(text):
        try:
            out.append(json.loads(f'"{m.group(1)}"'))
        except json.JSONDecodeError:
            out.append(m.group(1))
    return [s for s in (" ".join(x.split()) for x in out) if s and s not in {",", ", "}]


_STOP_CLASS: type | None = None


def _stop_on_text(tokenizer: Any, start: int, stop: Callable[[str], int | None]) -> Any:
    """A StoppingCriteria that ends a (batch-1) generation once `stop(new_text)` finds an end."""
    global _STOP_CLASS
    if _STOP_CLASS is None:
        import torch
        from transformers import StoppingCriteria

        class StopOnText(StoppingCriteria):
            def __init__(self, tokenizer: Any, start: int, stop: Callable[[str], int | None]) -> None:
                self.tokenizer, self.start, self.stop = tokenizer, start, stop

            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                text = self.tokenizer.decode(input_ids[0, self.start:], skip_special_tokens=True)
                done = self.stop(text) is not None
                return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

        _STOP_CLASS = StopOnText
    return _STOP_CLASS(tokenizer, start, stop)


_KW_CLASS: type | None = None


def _keyword_processor(tokenizer: Any, start: int, closers: list[int], separators: list[int], min_keywords: int,
                       penalty: float) -> Any:
    """A LogitsProcessor for the keyword list: no closing `]` (nor end of turn) before `min_keywords`
    keywords are complete, and a presence penalty (HF-style: positive logits ÷ penalty, negative ×
    penalty) on the word tokens already written in the list, so that greedy decoding moves on
    instead of repeating one keyword forever. Deterministic."""
    global _KW_CLASS
    if _KW_CLASS is None:
        import torch
        from transformers import LogitsProcessor

        class KeywordLogits(LogitsProcessor):
            def __init__(self, tokenizer: Any, start: int, closers: list[int], separators: list[int],
                         min_keywords: int, penalty: float) -> None:
                self.tokenizer, self.start, self.min_keywords, self.penalty = tokenizer, start, min_keywords, penalty
                self.closers = torch.tensor(closers, dtype=torch.long)
                self.separators = set(separators)

            def __call__(self, input_ids: Any, scores: Any) -> Any:
                new = input_ids[0, self.start:]
                if self.penalty != 1.0 and len(new):
                    ids = torch.tensor(sorted({int(i) for i in new.tolist()} - self.separators), dtype=torch.long,
                                       device=scores.device)
                    if len(ids):
                        picked = scores[:, ids]
                        scores[:, ids] = torch.where(picked > 0, picked / self.penalty, picked * self.penalty)
                done = len(_QUOTED_RE.findall('"' + self.tokenizer.decode(new, skip_special_tokens=True)))
                if done < self.min_keywords:
                    scores[:, self.closers.to(scores.device)] = -float("inf")
                return scores

        _KW_CLASS = KeywordLogits
    return _KW_CLASS(tokenizer, start, closers, separators, min_keywords, penalty)


class HFTeacher:
    """A local HF causal LM as teacher: same prompt, same validator, JSON mode (module docstring).

    Greedy decoding is deterministic, so a malformed reply is not retried: it is a failure."""

    name = "hf"

    def __init__(self, name_or_path: str = "smollm2-135m", *, max_new_tokens: int = 320, device: str = "auto",
                 model: LocalChatModel | None = None) -> None:
        self.name_or_path = name_or_path
        self.max_new_tokens = int(max_new_tokens)
        self.device = device
        self._model = model

    @property
    def model(self) -> LocalChatModel:
        if self._model is None:
            self._model = LocalChatModel(self.name_or_path, device=self.device)
        return self._model

    def identity(self) -> dict[str, Any]:
        return {"teacher": self.name, "model": self.name_or_path, "max_new_tokens": self.max_new_tokens,
                "decoding": "greedy-json-mode"}

    def describe(self, messages: Messages) -> Outcome:
        t0 = time.perf_counter()
        try:
            text = self.model.complete(messages, json_mode=True, max_tokens=self.max_new_tokens)
            description, keywords = parse_reply(text)
        except ValueError as e:
            return TeacherFailure(f"malformed reply: {e}", attempts=1, seconds=time.perf_counter() - t0)
        return TeacherReply(description, keywords, attempts=1, seconds=time.perf_counter() - t0)

    def run(self, prompts: Mapping[str, Messages]) -> Iterator[tuple[str, Outcome]]:
        for token, messages in prompts.items():
            yield token, self.describe(messages)

    def close(self) -> None:
        self._model = None

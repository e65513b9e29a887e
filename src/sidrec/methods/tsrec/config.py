"""TS-Rec (arXiv 2602.22632, methods.md §4): give every SID token a meaning the LM can use.

Settings: `TSRecConfig` (`method: tsrec`, an SFT config with a `tsrec:` section). The SA-Init
arithmetic is the core's (`sidrec.llm.sid_init`), TS-Align's tasks are in `.align`, the trainer in
`.trainer`.

Two parts, each switched on by one config flag (`method: tsrec`):

    tsrec:
      semantics: runs/x/semantics.json     # from `sidrec semantics extract` (or a released file)
      sa_init: {enabled: true, levels: null, init_output: true}
      align: {enabled: true, weight: 1.0}

- **SA-Init** (`sa_init`): after the embeddings are resized, each SID token's input embedding is
  the mean of the pretrained embedding rows of its keyword string's sub-tokens (keywords joined by
  spaces, tokenized by the LM's own tokenizer), rescaled to the mean L2 norm of the pretrained rows.
  With an untied LM head and `init_output`, the head row gets the same arithmetic on the head's own
  rows. Tokens without semantics keep the default initialisation (and are counted).
- **TS-Align** (`align`): two extra SFT tasks per token with semantics, mixed into the task mixture
  with weight `align.weight`: token → description ("what do items containing <b_17> have in
  common?") and description → token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sidrec.llm.config import SFTConfig


class SAInitSettings(BaseModel):
    """Semantic-anchored initialisation of the SID token embeddings."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    levels: list[int | str] | None = Field(
        None, description="SID levels to initialise: 0-based indices or prefixes ('a', 'b'); None: all with semantics")
    init_output: bool = Field(True, description="also the LM-head rows when the head is untied from the embeddings")


class AlignSettings(BaseModel):
    """Token ↔ description alignment tasks mixed into SFT."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    weight: float = Field(1.0, gt=0, description="examples per epoch = weight × tokens with semantics, per task")
    max_description_tokens: int = Field(96, ge=8, description="descriptions are cut to this many tokens")


class TSRecSettings(BaseModel):
    """`tsrec:` in an SFT config (used by `method: tsrec`)."""

    model_config = ConfigDict(extra="forbid")

    semantics: Path | None = Field(None, description="semantics.json: [{token, description, keywords}]")
    sa_init: SAInitSettings = Field(default_factory=SAInitSettings)
    align: AlignSettings = Field(default_factory=AlignSettings)

    @property
    def any_enabled(self) -> bool:
        return self.sa_init.enabled or self.align.enabled


class TSRecConfig(SFTConfig):
    """An SFT config with TS-Rec's parts (`method: tsrec`); with both parts off it trains as SFT."""

    method: Literal["tsrec"] = "tsrec"  # type: ignore[assignment]
    tsrec: TSRecSettings = Field(default_factory=TSRecSettings, description="TS-Rec parts")

    @model_validator(mode="after")
    def _semantics_given(self) -> TSRecConfig:
        if self.tsrec.any_enabled and self.tsrec.semantics is None:
            raise ValueError("tsrec needs tsrec.semantics (a semantics.json from `sidrec semantics extract`)")
        return self

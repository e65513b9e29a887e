"""TIGER's settings: the T5's size and the history length (`tiger:` in a `method: tiger` config)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sidrec.errors import validated
from sidrec.llm.config import SFTConfig


class TigerSettings(BaseModel):
    """The T5's size and the history length (`SFTConfig.tiger`); defaults are the TIGER paper's."""

    model_config = ConfigDict(extra="forbid")

    d_model: int = Field(128, ge=8, description="hidden size")
    d_ff: int = Field(1024, ge=8, description="feed-forward inner size")
    num_layers: int = Field(4, ge=1, description="encoder layers")
    num_decoder_layers: int = Field(4, ge=1, description="decoder layers")
    num_heads: int = Field(6, ge=1)
    d_kv: int = Field(64, ge=4, description="size of each attention head")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    feed_forward_proj: Literal["relu", "gated-gelu", "gated-relu"] = "relu"
    relative_attention_num_buckets: int = Field(32, ge=2)
    relative_attention_max_distance: int = Field(128, ge=2)
    max_history: int = Field(20, ge=1, description="most recent history items in the encoder input")
    init_seed: int | None = Field(None, description="seed of the random initialisation (None: training.seed)")


def tiger_settings(values: dict[str, Any]) -> TigerSettings:
    """Validate `SFTConfig.tiger`; errors become ConfigError naming the field."""
    return validated(TigerSettings, values, field_prefix="tiger.")


class TigerConfig(SFTConfig):
    """A `method: tiger` run: the SFT loop's settings plus the T5's size (`tiger:`)."""

    method: Literal["tiger"] = "tiger"  # type: ignore[assignment]
    tiger: dict[str, Any] = Field(default_factory=dict, description="TIGER model size (TigerSettings)")

    @model_validator(mode="after")
    def _tiger_sizes(self) -> TigerConfig:
        tiger_settings(self.tiger)  # fails early, naming the field
        return self

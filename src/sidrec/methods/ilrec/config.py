"""ILRec's settings: `ILRecConfig` (`method: ilrec`), an SFT config with an `ilrec:` section."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sidrec.llm.config import SFTConfig


class ILRecSettings(BaseModel):
    """Every ILRec hyper-parameter (methods.md §5); each loss term can be switched off."""

    model_config = ConfigDict(extra="forbid")

    layers: list[int] = Field(default_factory=lambda: [-2, -3, -4, -5],
                              description="intermediate layers: 1-based numbers, negative from the end (-1 = last)")
    candidates: Literal["level", "trie"] = Field("level", description="level: all tokens of the target's level; "
                                                 "trie: only valid next codes under the gold prefix")
    aggregate: Literal["sum", "mean"] = "sum"
    phi: float = Field(1.0, description="negative threshold: ž(v) ≥ φ·z(y)")
    alpha: float = Field(0.1, ge=0, description="CPO strength")
    lam: float = Field(1.0, ge=0, description="CPD weight λ")
    beta: float = Field(0.1, ge=0, description="CRR weight β")
    temperature: float = Field(1.0, gt=0, description="CRR temperature T on the CF scores")
    use_cpo: bool = True
    use_cpd: bool = True
    use_crr: bool = True
    cf_run: Path | None = Field(None, description="a trained SASRec run (or its model/ folder) for CRR")
    from_run: Path | None = Field(None, description="stage 2: the SFT run this training continues (informational)")


class ILRecConfig(SFTConfig):
    """A `method: ilrec` run: CPO / CPD / CRR on the SID targets of prompt → response examples."""

    prompt_only: ClassVar[bool] = True  # its losses read one prompt → response per example, full vocabulary

    method: Literal["ilrec"] = "ilrec"  # type: ignore[assignment]
    ilrec: ILRecSettings = Field(default_factory=ILRecSettings, description="ILRec losses")

    @model_validator(mode="after")
    def _cf_run_given(self) -> ILRecConfig:
        if self.ilrec.use_crr and self.ilrec.cf_run is None:
            raise ValueError("ilrec.use_crr needs ilrec.cf_run, a trained SASRec run (`sidrec train sasrec`); "
                             "or set ilrec.use_crr: false")
        return self

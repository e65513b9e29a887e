"""What a method registers: `Method` (its settings class, its trainer, how it continues a run, how it
resolves its inputs) and `RunInputs` (what a run's surroundings offer its `prepare` step).

    METHOD = Method("ilrec", "…", ILRecConfig, ILRecTrainer, section="ilrec",
                    from_inputs={"cf_run": "cf_run"}, records_source="from_run")

Each method's folder under `sidrec.methods` ends its `__init__.py` with such a registration;
`sidrec.methods.registry` lists them. docs/adding-a-method.md walks through one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sidrec.llm.config import SFTConfig


@dataclass
class RunInputs:
    """What the command or pipeline around a run offers the method's `prepare` step.

    `out` is the run folder; `source` the finished run this one continues (`--from`, `from:`);
    `semantics` a token-semantics file the pipeline extracted; `cf_run` a trained SASRec run the
    pipeline (or `--cf-run`) offers. A prepare step that writes into `out` calls `claim()` first.
    """

    out: Path
    source: Path | None = None
    semantics: Path | None = None
    cf_run: Path | None = None
    resume: bool = False
    overwrite: bool = False
    device: str = "auto"
    claimed: bool = field(default=False, init=False)

    def claim(self) -> None:
        """Before writing an input into the run folder: a finished run there is refused unless
        `overwrite` (then cleared); the training that follows overwrites the folder, keeping the input."""
        if self.claimed or self.resume:
            return
        from sidrec.utils.runs import RunDir

        RunDir(self.out, overwrite=self.overwrite).close()
        self.claimed = True


def section_of(values: dict[str, Any], name: str) -> dict[str, Any]:
    """A config section as a dict (empty when absent)."""
    section = values.get(name)
    return dict(section) if isinstance(section, dict) else {}


@dataclass(frozen=True)
class Method:
    """One registered training method.

    - `config`: its settings class (an `SFTConfig` subclass holding its own `section`, or SFTConfig);
    - `trainer`: its trainer class (an `SFTTrainer` subclass), built as `trainer(config, run)`;
    - `continuable`: whether a finished run of this method can be continued by a stage-2 method
      (`--from RUN`); TIGER's T5 cannot;
    - `from_inputs`: {setting in its section: `RunInputs` field} — settings left unset are filled from
      what the command or pipeline offers (TS-Rec's semantics file, ILRec's SASRec run);
    - `prepare(values, inputs) → values`: any further step that resolves its inputs (DPO samples
      negatives); raises `ConfigError` naming what is missing;
    - `keeps_section`: whether its section carries over when a run is continued with this method
      (TS-Rec's does not: SA-Init / TS-Align shaped the model already); `records_source`: the setting
      that records the continued run (ILRec's `from_run`).
    """

    name: str
    summary: str
    config: type[SFTConfig]
    trainer: type
    section: str | None = None
    continuable: bool = True
    from_inputs: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[dict[str, Any], RunInputs], dict[str, Any]] | None = None
    keeps_section: bool = True
    records_source: str | None = None

    @property
    def reads(self) -> frozenset[str]:
        """The `RunInputs` fields it fills settings from (`sidrec run` keys its cache on them)."""
        return frozenset(self.from_inputs.values())

    def resolve_inputs(self, values: dict[str, Any], inputs: RunInputs) -> dict[str, Any]:
        """`values` with the settings it leaves unset filled from `inputs`, then the prepare step."""
        if self.section is not None:
            section = section_of(values, self.section)
            offered = {key: getattr(inputs, name) for key, name in self.from_inputs.items()}
            filled = {key: str(v) for key, v in offered.items() if v is not None and not section.get(key)}
            if filled:
                values = {**values, self.section: {**section, **filled}}
        return self.prepare(values, inputs) if self.prepare is not None else values

    def continued_section(self, values: dict[str, Any], source: Path) -> dict[str, Any] | None:
        """Its section in a config that continues `source` with this method (None: none)."""
        if self.section is None or not self.keeps_section:
            return None
        section = section_of(values, self.section)
        if self.records_source is not None:
            section[self.records_source] = str(source)
        return section or None

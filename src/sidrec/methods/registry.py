"""The registered training methods, and the one way the CLI, `sidrec run` and the configs reach them.

    method = get_method("ilrec")               # → Method(config=ILRecConfig, trainer=ILRecTrainer, …)
    config = method_config(values)             # the settings class chosen by values["method"]
    metrics = method.trainer(config, RunDir("runs/x")).train()

Adding a method: a folder under `sidrec/methods/` whose `__init__.py` ends with a `Method(...)`
registration, and one entry in `METHODS` below (docs/adding-a-method.md).
"""

from __future__ import annotations

from typing import Any

from sidrec.errors import ConfigError, validated
from sidrec.llm.config import SFTConfig
from sidrec.llm.trainer import SFTTrainer
from sidrec.methods import grpo, ilrec, preference, tiger, tsrec
from sidrec.methods.method import Method

SFT = Method(name="sft", summary="supervised fine-tuning on the SFT task mixture (the core recipe)",
             config=SFTConfig, trainer=SFTTrainer)

METHODS: dict[str, Method] = {m.name: m for m in (SFT, tiger.METHOD, tsrec.METHOD, ilrec.METHOD, *preference.METHODS,
                                                grpo.METHOD)}


def get_method(name: str) -> Method:
    """The registered method `name`; a ConfigError lists the others."""
    if name not in METHODS:
        raise ConfigError(f"method '{name}' is not registered; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def method_of(values: dict[str, Any]) -> Method:
    """The registered method a config names (`method:`, default sft)."""
    return get_method(str(values.get("method") or "sft"))


def sections() -> set[str]:
    """The config sections that belong to some method."""
    return {m.section for m in METHODS.values() if m.section}


def without_other_sections(values: dict[str, Any]) -> dict[str, Any]:
    """`values` without the sections of other methods that hold only their defaults.

    Configs written before each method had its own config class held every method's section (with
    defaults); those sections are dropped. A section that sets something another method would use
    is refused with the fix, never ignored."""
    method = method_of(values)
    out = dict(values)
    for other in METHODS.values():
        name = other.section
        if name is None or name == method.section or name not in out:
            continue
        given = out[name]
        defaults = other.config.model_fields[name].default_factory()  # type: ignore[misc]
        default_dump = defaults.model_dump(mode="json") if hasattr(defaults, "model_dump") else defaults
        if given in (None, {}) or _matches(given, default_dump):
            del out[name]
            continue
        raise ConfigError(f"{name}: this section belongs to method {other.name}, but method is '{method.name}'; "
                          f"set method: {other.name}, or delete the {name} section")
    return out


def _matches(given: Any, defaults: Any) -> bool:
    """A (possibly partial) settings dict whose every value equals the default."""
    if isinstance(given, dict) and isinstance(defaults, dict):
        return all(k in defaults and _matches(v, defaults[k]) for k, v in given.items())
    return given == defaults or (given is None and defaults is None)


def method_config(values: dict[str, Any]) -> SFTConfig:
    """Validate a run config with its method's settings class (errors name the field)."""
    values = without_other_sections(values)
    return validated(method_of(values).config, values)


__all__ = ["METHODS", "Method", "get_method", "method_config", "method_of", "sections", "without_other_sections"]

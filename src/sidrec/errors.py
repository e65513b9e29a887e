"""Errors that tell the user which file, line and field is wrong and what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class SidrecError(Exception):
    """Base class of every error sidrec raises on purpose (the CLI prints these without a traceback)."""


class DataError(SidrecError):
    """Bad input data: names the file, the line (1-based) and the field, and says what to do."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        self.hint = hint
        self.message = message
        where = []
        if self.path:
            where.append(self.path)
        if line is not None:
            where.append(f"line {line}")
        if field:
            where.append(f"field '{field}'")
        text = (", ".join(where) + ": " if where else "") + message
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class ConfigError(SidrecError):
    """A configuration value is missing or invalid."""


def validated(model_cls: Any, values: Any, where: str = "config", field_prefix: str = "") -> Any:
    """`model_cls.model_validate(values)`, with pydantic's errors turned into one ConfigError that
    names the first bad field (`where: field 'training.lr': …`) and how many there are."""
    from pydantic import ValidationError

    try:
        return model_cls.model_validate(values)
    except ValidationError as e:
        errors = e.errors()
        field = field_prefix + ".".join(str(p) for p in errors[0]["loc"])
        more = f" ({len(errors)} errors in all)" if len(errors) > 1 else ""
        raise ConfigError(f"{where}: field '{field}': {errors[0]['msg']}{more}") from None

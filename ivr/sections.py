"""A config section (a mapping from the YAML file) read into a frozen dataclass: every key must be one of the
dataclass's fields, an unknown one (a typo) is named in the error, and the dataclass's own ``__post_init__``
checks the values. The policies of admission, callbacks, web callbacks and voicemail are read this way."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def section_from_dict(cls: type[T], d: Mapping[str, Any] | None, *, section: str, error: type[Exception],
                      exclude: Collection[str] = (), **extra: Any) -> T:
    """``cls(**d, **extra)``; a key of `d` that is not a field of `cls` (or is in `exclude`: fields that never
    come from the file) raises `error` naming the section, the unknown keys and the known ones."""
    data = dict(d or {})
    known = {f.name for f in fields(cls)} - set(exclude)     # type: ignore[arg-type]
    unknown = sorted(map(str, set(data) - known))
    if unknown:
        raise error(f"{section}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**data, **extra)

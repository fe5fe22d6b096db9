"""``FrozenDict``: the immutable mapping used inside frozen config dataclasses.

A ``dict`` subclass (so ``dataclasses.asdict``, ``json.dumps``, pickling and ``copy`` keep working, which
``types.MappingProxyType`` breaks) whose mutators raise ``TypeError``; hashable when its values are.
"""

from __future__ import annotations

from typing import Any, NoReturn


class FrozenDict(dict):
    __slots__ = ()

    def _readonly(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("this mapping is read-only (part of a frozen config)")

    __setitem__ = __delitem__ = __ior__ = _readonly  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple:
        return (type(self), (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict) -> FrozenDict:
        return self

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"

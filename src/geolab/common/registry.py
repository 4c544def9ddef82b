"""Registries of swappable parts (models, matchers, backbones, tuners) looked up by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> factory mapping that fails loudly, listing the valid names.

    Example:
        >>> MODELS = Registry("cls model")
        >>> @MODELS.register("tiny")
        ... def tiny(width: int = 8): ...
        >>> MODELS.build("tiny", width=4)
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator that registers a factory (class or function) under ``name``."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = factory
            return factory

        return deco

    def get(self, name: str) -> Callable[..., T]:
        """Return the factory for ``name``.

        Raises:
            KeyError: unknown name; the message lists the valid names.
        """
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items)) or "(none registered)"
            raise KeyError(f"unknown {self.kind} '{name}'; valid names: {valid}") from None

    def build(self, name: str, **kwargs: Any) -> T:
        """Call the factory registered under ``name`` with ``kwargs``.

        Raises:
            KeyError: unknown name (lists the valid names).
            TypeError: a keyword the factory does not take (lists the ones it does).
        """
        factory = self.get(name)
        accepted = inspect.signature(factory).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
            unknown = sorted(set(kwargs) - set(accepted))
            if unknown:
                raise TypeError(
                    f"{self.kind} '{name}' takes no argument '{unknown[0]}'; "
                    f"it takes: {', '.join(accepted) or '(none)'}"
                )
        return factory(**kwargs)

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

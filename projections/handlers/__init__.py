"""Event handlers of the batch builder, one module per area, each keyed by event class.

A handler is registered with the class of the events it handles (``@table.on(Wallet.Credited)``)
and takes that class as its event parameter, so mypy checks that the two agree and that the
handler reads only fields the event declares. The builder dispatches on ``type(event)``: the
classes are final (the library makes one class per topic, and the mapper decodes a stored event
to exactly that class), so an exact lookup is both correct and the cheapest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

if TYPE_CHECKING:
    from projections.builder import BatchBuilder

E = TypeVar("E")
Handler: TypeAlias = Callable[["BatchBuilder", int, E], None]
"""Applies one event (at its log position) to the builder's rows."""


class HandlerTable:
    """The handlers of one area's events, by event class."""

    def __init__(self) -> None:
        self.handlers: dict[type[Any], Handler[Any]] = {}

    def on(self, event_class: type[E]) -> Callable[[Handler[E]], Handler[E]]:
        """Register the decorated function as the handler of ``event_class``."""

        def register(handler: Handler[E]) -> Handler[E]:
            if event_class in self.handlers:
                raise TypeError(f"{event_class.__qualname__} already has a handler")
            self.handlers[event_class] = handler
            return handler

        return register


def merged(tables: Iterable[HandlerTable]) -> dict[type[Any], Handler[Any]]:
    """One dispatch table of several areas; an event class handled twice is a bug."""
    handlers: dict[type[Any], Handler[Any]] = {}
    for table in tables:
        for event_class, handler in table.handlers.items():
            if event_class in handlers:
                raise TypeError(f"{event_class.__qualname__} is handled twice")
            handlers[event_class] = handler
    return handlers

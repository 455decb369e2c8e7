"""A console sign-in: the one use of a one-time login link.

Its id is derived from the link's id, so a link used twice (or by two browsers at the same
instant) collides on the event store's primary key and only one of them signs in. The events
are also the console's sign-in audit trail: who was let in, for which company, with which scopes.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger_service.domain.ids import console_sign_in_id


class ConsoleSignIn(Aggregate):
    class Created(Aggregate.Created):
        link_id: str
        subject: str
        company_id: str | None
        scopes: list[str]
        session_id: str

    @staticmethod
    def create_id(link_id: str, **_: Any) -> UUID:
        return console_sign_in_id(link_id)

    @event(Created)
    def __init__(
        self, link_id: str, subject: str, company_id: str | None, scopes: list[str], session_id: str
    ) -> None:
        self.link_id = link_id
        self.subject = subject
        self.company_id = company_id
        self.scopes = scopes
        self.session_id = session_id

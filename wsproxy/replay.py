"""The one-use rule: a ticket opens one session."""
from __future__ import annotations

import time
from collections.abc import Callable

from ovcommon.ticket import Ticket, TicketError


class ReplayCache:
    """Remembers used tickets until they expire, so each ticket opens one session."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._seen: dict[bytes, float] = {}
        self._clock = clock
        self._purge_at = 1024

    def use(self, ticket: Ticket) -> None:
        """Mark the ticket used, or raise TicketError('replayed')."""
        now = self._clock()
        if len(self._seen) >= self._purge_at:
            self.purge(now)
            self._purge_at = max(1024, 2 * len(self._seen))
        expires = self._seen.get(ticket.ident)
        if expires is not None and expires >= now:
            raise TicketError("replayed", "ticket already used")
        self._seen[ticket.ident] = ticket.valid_to

    def purge(self, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        self._seen = {k: v for k, v in self._seen.items() if v >= now}

    def __len__(self) -> int:
        return len(self._seen)

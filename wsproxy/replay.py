"""The one-use rule: a ticket opens one session, whichever process of the proxy serves it.

Used tickets are files in one directory (the unit's RuntimeDirectory, kept across restarts, or a private
temporary one): every worker, and a successor after a hand-over, sees the same memory, and creating a
file with O_EXCL is atomic between processes. A name is `<expiry>-<sha256 of the signature>`, so an
expired entry is found by its name alone.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

from ovcommon.ticket import Ticket, TicketError

_CREATE = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC


class ReplayCache:
    """Remembers used tickets until they expire, so each ticket opens one session."""

    def __init__(self, directory: Path, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self._clock = clock

    def use(self, ticket: Ticket) -> None:
        """Mark the ticket used, or raise TicketError('replayed')."""
        path = self.directory / f"{math.ceil(ticket.valid_to)}-{ticket.ident.hex()}"
        try:
            os.close(os.open(path, _CREATE, 0o600))
        except FileExistsError:
            raise TicketError("replayed", "ticket already used") from None

    def purge(self) -> None:
        """Forget the tickets that expired (they are refused as expired anyway)."""
        now = self._clock()
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return
        for name in names:
            expiry, _, _ = name.partition("-")
            if expiry.isdigit() and int(expiry) < now:
                try:
                    os.unlink(self.directory / name)
                except FileNotFoundError:  # another worker purged it first
                    pass

    def __len__(self) -> int:
        return len(os.listdir(self.directory))

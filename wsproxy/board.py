"""The counters every worker adds to and every worker reads: one shared memory page set, one row each.

Created by the supervisor before it forks the workers (an anonymous shared mapping), so `/metrics`,
MAX_SESSIONS and the status line see the whole proxy whichever worker answers. A row is written only by
its worker; 8-byte aligned words, so a reader never sees half a value.
"""
from __future__ import annotations

import mmap

OPEN, TOTAL, TO_TARGET, TO_CLIENT = range(4)
REFUSAL_REASONS = (
    "bad-request", "bad-handshake", "method", "plain-http", "busy", "origin", "internal-error",
    "ticket-malformed", "ticket-signature", "ticket-signed-fields", "ticket-unsupported", "ticket-expired",
    "ticket-not-yet-valid", "ticket-replayed", "target-unresolved", "target-not-allowed", "target-unreachable",
    "target-vencrypt", "target-tls-name", "target-tls-chain", "other",
)
_FIRST_REASON = 4
ROW = _FIRST_REASON + len(REFUSAL_REASONS)


class Board:
    """`rows` rows of counters; `row(i)` is a worker's own, `total(field)` sums every row."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self._map = mmap.mmap(-1, max(8 * ROW * rows, 1), flags=mmap.MAP_SHARED)
        self._words = memoryview(self._map).cast("Q")

    def row(self, index: int) -> Row:
        return Row(self._words, index * ROW)

    def total(self, field: int) -> int:
        words = self._words
        return sum(words[i * ROW + field] for i in range(self.rows))

    def refusals(self) -> dict[str, int]:
        """Refusals by reason, only the reasons seen."""
        out = {}
        for offset, reason in enumerate(REFUSAL_REASONS):
            count = self.total(_FIRST_REASON + offset)
            if count:
                out[reason] = count
        return out


class Row:
    """One worker's counters (only that worker writes them)."""

    __slots__ = ("_words", "_base")

    def __init__(self, words: memoryview, base: int) -> None:
        self._words, self._base = words, base

    def get(self, field: int) -> int:
        return self._words[self._base + field]

    def add(self, field: int, amount: int = 1) -> None:
        self._words[self._base + field] += amount

    def set(self, field: int, value: int) -> None:
        self._words[self._base + field] = value

    def refused(self, reason: str) -> None:
        index = REFUSAL_REASONS.index(reason) if reason in REFUSAL_REASONS else len(REFUSAL_REASONS) - 1
        self.add(_FIRST_REASON + index)

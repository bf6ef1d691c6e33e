"""`engine-setup --dry-run`: the report of what a real run would change, from the record-only transaction's
`Change`s and what the events that act outside it said they would do (`planned`).

One line a file, `<action> <mode> <path>` (action create, change or remove; the mode it has afterwards,
or had before a removal), then a unified diff for a text file, or `: <summary>` for keys, certificates,
PKCS#12 stores, SQLite files and files named by a pattern (timestamped). Secrets are masked as in the log.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ovcommon import paths

from .core.log import scrub
from .core.transaction import Change
from .pki import common_name

if TYPE_CHECKING:
    from .core.context import Context

HEADER = "--== DRY RUN: what engine-setup would change ==--"
FOOTER = "--== END OF DRY RUN: nothing was changed ==--"
FILE_ACTIONS = ("create", "change", "remove")


def file_line(change: Change) -> str:
    return f"{change.action:6} {change.mode or 0:04o} {change.target}"


def summary(change: Change) -> str | None:
    """One line instead of a diff for content that is not readable text (or not known before the run)."""
    if change.summary is not None:
        return change.summary
    content = change.new if change.new is not None else change.old
    if content is None:
        return "content known only after the run"
    if b"PRIVATE KEY-----" in content:
        try:
            key = load_pem_private_key(content, password=None)
            return f"private key ({type(key).__name__.lstrip('_').removesuffix('PrivateKey')} {key.key_size} bits)"
        except (ValueError, TypeError, AttributeError):
            return "private key"
    if content.startswith(b"-----BEGIN CERTIFICATE-----"):
        cert = x509.load_pem_x509_certificate(content)
        return (f"certificate CN={common_name(cert)}, issued by CN={_issuer(cert)}, "
                f"valid until {cert.not_valid_after_utc:%Y-%m-%d}")
    if change.target.endswith(".p12"):
        return f"PKCS#12 key store ({len(content)} bytes)"
    if content.startswith(b"SQLite format 3\0"):
        return "SQLite database"
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return f"binary ({len(content)} bytes)"
    return None


def _issuer(cert: x509.Certificate) -> str:
    names = cert.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def diff(change: Change) -> str:
    """The unified diff of a text file's change (old and new lines, labelled with its path)."""
    old = (change.old or b"").decode().splitlines(keepends=True)
    new = (change.new or b"").decode().splitlines(keepends=True)
    lines = difflib.unified_diff(old, new, fromfile="/dev/null" if change.old is None else change.target,
                                 tofile="/dev/null" if change.new is None else change.target)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def render(changes: Iterable[Change], actions: Iterable[str]) -> str:
    """The report's text (before masking)."""
    out = [HEADER]
    changes = list(changes)
    files = [c for c in changes if c.action in FILE_ACTIONS]
    for change in files:
        said = summary(change)
        if said is not None:
            out.append(f"{file_line(change)}: {said}")
        else:
            out.append(file_line(change))
            out.append(diff(change).rstrip("\n"))
    if not files:
        out.append("no file would change")
    out += [f"option {c.target}: {c.summary}" for c in changes if c.action == "option"]
    out += [f"would apply {c.target}" for c in changes if c.action == "apply"]
    out += [f"would {action}" for action in actions]
    out.append(FOOTER)
    return "\n".join(line for line in out if line) + "\n"


def log_change(context: Context) -> list[Change]:
    """A real run without --log writes its log below the root."""
    if context.log_file is not None:
        return []
    pattern = str(paths.LOG_DIR / f"ovirt-engine-{context.action}-*.log")
    return [Change(pattern, "create", 0o600, summary="this run's log")]


def report(context: Context, stream: TextIO) -> None:
    """Print what a real run would change, with every current secret masked."""
    planned = context.planned
    changes = [*context.transaction.changes, *(p for p in planned if isinstance(p, Change)), *log_change(context)]
    actions = [p for p in planned if isinstance(p, str)]
    stream.write(scrub(render(changes, actions), context.secrets))
    stream.flush()

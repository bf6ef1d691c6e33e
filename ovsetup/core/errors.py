"""Setup's branch of the one exception tree (rooted in `ovcommon.errors.Error`): each error carries a
message a user can act on and an exit code."""
from __future__ import annotations

from ovcommon.errors import Error


class SetupError(Error):
    """A failure reported to the user as one line."""

    exit_code = 1


class UsageError(SetupError):
    """Malformed command line, environment value or answer file: nothing was started."""

    exit_code = 2


class PluginError(SetupError):
    """A plugin or its metadata is broken (duplicate event name, bad before/after, cycle)."""

    exit_code = 2


class MissingAnswerError(SetupError):
    """A question has no answer and there is no terminal (or input ended)."""


class Aborted(SetupError):
    """The user declined to go on (for example Cancel at the configuration preview)."""


class IncompleteError(SetupError):
    """A failure after the changes were committed, whose changes are kept on purpose: a re-run finishes the job."""


class Interrupted(SetupError):
    """A signal (SIGTERM, SIGHUP, SIGINT) arrived while an event ran."""

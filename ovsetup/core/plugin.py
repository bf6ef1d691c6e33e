"""The plugin base class. A plugin declares its keys in `KEYS` and its events with `@event`."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .environment import EnvKey

if TYPE_CHECKING:
    from .context import Context
    from .dialog import Dialog
    from .environment import Environment
    from .transaction import Transaction


class Plugin:
    KEYS: tuple[EnvKey, ...] = ()

    def __init__(self, context: Context) -> None:
        self.context = context
        self.log = logging.getLogger(type(self).__module__)

    @property
    def env(self) -> Environment:
        return self.context.env

    @property
    def dialog(self) -> Dialog:
        return self.context.dialog

    @property
    def transaction(self) -> Transaction:
        return self.context.transaction

"""otopi's stages, in otopi's order, and its priority numbers."""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


@dataclass(frozen=True)
class StageInfo:
    id: str
    description: str
    if_success: bool  # skipped once an earlier event has failed


class Stage(IntEnum):
    BOOT = 0
    INIT = 1
    SETUP = 2
    INTERNAL_PACKAGES = 3
    PROGRAMS = 4
    LATE_SETUP = 5
    CUSTOMIZATION = 6
    VALIDATION = 7
    TRANSACTION_BEGIN = 8
    EARLY_MISC = 9
    PACKAGES = 10
    MISC = 11
    TRANSACTION_END = 12
    CLOSEUP = 13
    CLEANUP = 14
    PRE_TERMINATE = 15
    TERMINATE = 16
    REBOOT = 17

    @property
    def info(self) -> StageInfo:
        return STAGE_INFO[self]


STAGE_INFO: dict[Stage, StageInfo] = {
    Stage.BOOT: StageInfo("boot", "Booting", True),
    Stage.INIT: StageInfo("init", "Initializing", False),
    Stage.SETUP: StageInfo("setup", "Environment setup", True),
    Stage.INTERNAL_PACKAGES: StageInfo("internal_packages", "Environment packages setup", True),
    Stage.PROGRAMS: StageInfo("programs", "Programs detection", True),
    Stage.LATE_SETUP: StageInfo("late_setup", "Environment setup (late)", True),
    Stage.CUSTOMIZATION: StageInfo("customization", "Environment customization", True),
    Stage.VALIDATION: StageInfo("validation", "Setup validation", True),
    Stage.TRANSACTION_BEGIN: StageInfo("transaction-prepare", "Transaction setup", True),
    Stage.EARLY_MISC: StageInfo("early_misc", "Misc configuration (early)", True),
    Stage.PACKAGES: StageInfo("packages", "Package installation", True),
    Stage.MISC: StageInfo("misc", "Misc configuration", True),
    # otopi gives TRANSACTION_END the id "cleanup" too; kept for byte-compatible logs.
    Stage.TRANSACTION_END: StageInfo("cleanup", "Transaction commit", True),
    Stage.CLOSEUP: StageInfo("closeup", "Closing up", True),
    Stage.CLEANUP: StageInfo("cleanup", "Clean up", False),
    Stage.PRE_TERMINATE: StageInfo("pre-terminate", "Pre-termination", False),
    Stage.TERMINATE: StageInfo("terminate", "Termination", False),
    Stage.REBOOT: StageInfo("reboot", "Reboot", True),
}


class Priority:
    """Smaller runs earlier. Plain ints, so plugins may write `Priority.HIGH - 10`."""

    FIRST = 1000
    HIGH = 2000
    MEDIUM = 3000
    DEFAULT = 5000
    POST = 7000
    LOW = 9000
    LAST = 90000

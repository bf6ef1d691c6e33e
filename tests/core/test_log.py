"""The console and the log file: secrets filtered on both; a log file that cannot be written is one warning."""
from __future__ import annotations

import errno
import io
import logging
import os

from ovsetup.core import log as logsetup


def test_the_console_filters_secrets_as_the_log_does(tmp_path):
    console = io.StringIO()
    handlers = [logsetup.setup_console(console, lambda: ["Pa55-word"]),
                logsetup.setup_file(tmp_path / "x.log", lambda: ["Pa55-word"])]
    logging.getLogger("ovsetup.test").error("cannot use Pa55-word for the store")
    logsetup.close_handlers(handlers)
    assert console.getvalue() == "[ ERROR ] cannot use **FILTERED** for the store\n"
    assert "Pa55-word" not in (tmp_path / "x.log").read_text()


class FullDisk(io.StringIO):
    """A log stream on a full disk: every write and flush fails with ENOSPC."""

    def write(self, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_log_file_that_cannot_be_written_is_one_warning(tmp_path, capsys):
    """(The real full disk, a small tmpfs, is in tests/integration/test_engine_setup.py.)"""
    console = io.StringIO()
    handlers = [logsetup.setup_console(console), logsetup.setup_file(tmp_path / "x.log", lambda: [])]
    handlers[1].stream.close()
    handlers[1].stream = FullDisk()
    logger = logging.getLogger("ovsetup.test")
    for n in range(200):
        logger.debug("record %d %s", n, "x" * 200)
    logger.info("still here")
    logsetup.close_handlers(handlers)
    assert console.getvalue().splitlines() == [
        f"[WARNING] Cannot write the log file {tmp_path / 'x.log'}: No space left on device; the log ends here",
        "[ INFO  ] still here"]
    assert "Logging error" not in capsys.readouterr().err

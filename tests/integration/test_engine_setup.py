"""engine-setup run as an admin runs it: the installed command, a temporary --root, real files."""
from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ENGINE_ENV, command, run, tls_handshake, tree

pytestmark = pytest.mark.integration
PKI = Path("etc/pki/ovirt-engine")
SETUP_CONF = Path("etc/ovirt-engine/ovirt-websocket-proxy.conf.d/10-setup.conf")


def verify_proxy_cert(root: Path, fqdn: str) -> dict:
    """A real TLS handshake with the proxy's pair, verified against ca.pem for `fqdn`."""
    return tls_handshake(root / PKI / "certs/websocket-proxy.cer", root / PKI / "keys/websocket-proxy.key.nopass",
                         root / PKI / "ca.pem", fqdn)


def option(root: Path) -> str:
    return run("engine-config", "--root", str(root), "-g", "WebSocketProxy").stdout


def test_fresh_engine_mode_run(tmp_path, engine_setup):
    result = engine_setup(tmp_path, "--accept-defaults", f"--otopi-environment={ENGINE_ENV}", input=None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("Execution of setup completed successfully")
    assert (tmp_path / SETUP_CONF).read_text() == (
        "PROXY_PORT=6100\n"
        "SSL_CERTIFICATE=/etc/pki/ovirt-engine/certs/websocket-proxy.cer\n"
        "SSL_KEY=/etc/pki/ovirt-engine/keys/websocket-proxy.key.nopass\n"
        "CERT_FOR_DATA_VERIFICATION=/etc/pki/ovirt-engine/certs/engine.cer\n"
        "SSL_ONLY=True\n")
    verify_proxy_cert(tmp_path, "engine.example.test")
    modes = {p: (tmp_path / PKI / p).stat().st_mode & 0o777 for p in (
        "keys/websocket-proxy.key.nopass", "certs/websocket-proxy.cer", "private", "private/ca.pem",
        "keys/engine.p12")}
    assert modes == {"keys/websocket-proxy.key.nopass": 0o600, "certs/websocket-proxy.cer": 0o644,
                     "private": 0o750, "private/ca.pem": 0o600, "keys/engine.p12": 0o600}
    assert option(tmp_path) == "WebSocketProxy: engine.example.test:6100 version: general\n"
    unit = (tmp_path / "etc/systemd/system/ovirt-websocket-proxy.service").read_text()
    assert "User=ovirt" in unit and "--systemd=notify" in unit
    assert 'port="6100"' in (tmp_path / "etc/firewalld/services/ovirt-websocket-proxy.xml").read_text()
    manifests = list((tmp_path / "etc/ovirt-engine/uninstall.d").glob("*-uninstall.conf"))
    assert len(manifests) == 1 and f"name = /{SETUP_CONF}" in manifests[0].read_text()
    answers = list((tmp_path / "var/lib/ovirt-engine/setup/answers").glob("*.conf"))
    assert len(answers) == 1 and answers[0].stat().st_mode & 0o777 == 0o600
    logs = list((tmp_path / "var/log/ovirt-engine/setup").glob("*.log"))
    text = logs[0].read_text()
    assert "ENV OVESETUP_CONFIG/websocketProxyConfig=bool:True" in text
    assert "mypass" not in text and "BEGIN PRIVATE KEY" not in text


def test_rerun_changes_no_file(tmp_path, engine_setup):
    args = ("--accept-defaults", f"--otopi-environment={ENGINE_ENV}")
    assert engine_setup(tmp_path, *args).returncode == 0
    before = tree(tmp_path)
    time.sleep(1.1)  # new log and answer file names carry the second
    assert engine_setup(tmp_path, *args).returncode == 0
    after = tree(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before
    added = sorted(set(after) - set(before))
    assert len(added) == 2
    assert added[0].startswith("var/lib/ovirt-engine/setup/answers/")
    assert added[1].startswith("var/log/ovirt-engine/setup/")


def interact(argv: list[str], script: list[tuple[str, str]], timeout: float = 60) -> tuple[int, str]:
    """Run argv on a pseudo-terminal; for each (prompt regex, answer), wait for the prompt, then type."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv)
    output, seen, steps = b"", 0, list(script)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
        if steps and re.search(steps[0][0] + r"\s*$", output[seen:].decode(errors="replace")):
            os.write(fd, (steps.pop(0)[1] + "\n").encode())
            seen = len(output)
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_interactive_run_and_its_answer_file_replays(tmp_path):
    answer_file = tmp_path / "answers.conf"
    question = re.escape("Configure WebSocket Proxy on this host (Yes, No) [Yes]:")
    rc, screen = interact(
        [command("engine-setup"), "--root", str(tmp_path / "a"), f"--generate-answer={answer_file}"],
        [(question, "maybe"), (question, "yes"),
         (r"Host fully qualified DNS name of this server \[.*\]:", "engine.example.test"),
         (re.escape("(OK, Cancel) [OK]:"), "")])
    assert rc == 0, screen
    assert "Invalid value" in screen
    assert "Execution of setup completed successfully" in screen
    verify_proxy_cert(tmp_path / "a", "engine.example.test")
    assert answer_file.stat().st_mode & 0o777 == 0o600
    replay = run("engine-setup", "--root", str(tmp_path / "b"), f"--config-append={answer_file}", input="")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    verify_proxy_cert(tmp_path / "b", "engine.example.test")
    assert (tmp_path / "a" / SETUP_CONF).read_bytes() == (tmp_path / "b" / SETUP_CONF).read_bytes()
    assert option(tmp_path / "b") == option(tmp_path / "a")


def test_question_form_answer_file_replays(tmp_path, engine_setup):
    answers = tmp_path / "oVirt-style.conf"
    answers.write_text(
        "[environment:default]\n"
        "QUESTION/1/OVESETUP_CONFIG_WEBSOCKET_PROXY=str:yes\n"
        "QUESTION/1/OVESETUP_NETWORK_FQDN_this_host=str:engine.example.test\n"
        "QUESTION/1/OVESETUP_DIALOG_CONFIRM_SETTINGS=str:OK\n"
        "OVESETUP_DWH_CORE/enable=bool:False\n"
        "OVESETUP_DB/password=str:SeCrEt-db-pw\n"
        "OVESETUP_OVN/ovirtProviderOvn=none:None\n")
    result = engine_setup(tmp_path / "r", f"--config-append={answers}")
    assert result.returncode == 0, result.stdout + result.stderr
    verify_proxy_cert(tmp_path / "r", "engine.example.test")
    log = next((tmp_path / "r/var/log/ovirt-engine/setup").glob("*.log")).read_text()
    assert "SeCrEt-db-pw" not in log


def test_missing_answer_without_terminal_names_the_key(tmp_path, engine_setup):
    result = engine_setup(tmp_path, input="")
    assert result.returncode == 1
    assert "OVESETUP_CONFIG/websocketProxyConfig" in result.stdout
    assert "Execution of setup failed" in result.stdout
    assert not (tmp_path / "etc").exists()


@pytest.mark.parametrize("environment, message", [
    ("OVESETUP_CONFIG/websocketProxyConfig=bool:maybe", "bool:maybe is not a boolean"),
    ("OVESETUP_CONFIG/websocketProxyPort=int:x", "int:x is not an integer"),
    ("OVESETUP_CONFIG/websocketProxyPort=int:70000", "port 70000 is out of range"),
    ("OVESETUP_CONFIG/websocketProxySshPort=int:70000", "websocketProxySshPort: port 70000 is out of range 1..65535"),
    ("OVESETUP_DB/port=int:0", "OVESETUP_DB/port: port 0 is out of range 1..65535"),
    ("OVESETUP_CONFIG/websocketProxyConfig=yes:True", "unknown type 'yes'"),
    ("OVESETUP_CONFIG/websocketProxyConfig", "is not KEY=type:value"),
    ("OVESETUP_CONFIG/fqdn=str:bad_name!", "is not a valid host name"),
])
def test_malformed_input_fails_with_one_line_and_touches_nothing(tmp_path, engine_setup, environment, message):
    root = tmp_path / "root"
    root.mkdir()
    result = engine_setup(root, "--accept-defaults", f"--otopi-environment={environment}")
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("value, message", [
    ("multi-str:SECRET-x1", "OVESETUP_DB/password: expected str, got a multi-str value (not shown: a secret)"),
    ("bool:SECRET-x1", "OVESETUP_DB/password: bool:**FILTERED** is not a boolean"),
    ("SECRET-x1", "OVESETUP_DB/password: value '**FILTERED**' has no type"),
])
def test_a_refused_secret_is_not_shown(tmp_path, engine_setup, value, message):
    for source in ("command line", "answer file"):
        answers = tmp_path / "answers.conf"
        answers.write_text(f"[environment:default]\nOVESETUP_DB/password={value}\n")
        args = ([f"--otopi-environment=OVESETUP_DB/password={value}"] if source == "command line"
                else [f"--config-append={answers}"])
        result = engine_setup(tmp_path / "r", "--accept-defaults", *args)
        assert result.returncode == 2, source
        assert message in result.stderr and "SECRET-x1" not in result.stderr + result.stdout, source


@pytest.mark.parametrize("given, message", [
    ("OVESETUP_CONFIG/websocketProxyPort=int:" + "9" * 5000,
     "websocketProxyPort: int:" + "9" * 40 + "... (5000 characters) is not an integer"),
    ("A" * 5000, "--otopi-environment: '" + "A" * 40 + "... (5000 characters)' is not KEY=type:value"),
    ("OVESETUP_X/" + "k" * 5000 + "=bool:x", "OVESETUP_X/" + "k" * 29 + "... (5011 characters): bool:x is not"),
    ("OVESETUP_PKI/country=str:" + "x" * 5000,
     "OVESETUP_PKI/country: '" + "x" * 40 + "... (5000 characters)' is not a two-letter country code"),
    ("[environment:" + "x" * 5000 + "]", "unknown section [environment:" + "x" * 28 + "... (5012 characters)]"),
])
def test_a_refused_long_value_is_not_echoed_whole(tmp_path, engine_setup, given, message):
    if given.startswith("["):
        answers = tmp_path / "answers.conf"
        answers.write_text(given + "\nOVESETUP_X/y=str:z\n")
        result = engine_setup(tmp_path / "r", f"--config-append={answers}")
    else:
        result = engine_setup(tmp_path / "r", "--accept-defaults", f"--otopi-environment={given}")
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr) < 300


def test_broken_answer_file_fails_clearly(tmp_path, engine_setup):
    broken = tmp_path / "broken.conf"
    broken.write_text("[environment:default]\nOVESETUP_CONFIG/websocketProxyConfig=bool:perhaps\n")
    result = engine_setup(tmp_path / "r", f"--config-append={broken}")
    assert result.returncode == 2
    assert f"{broken}: OVESETUP_CONFIG/websocketProxyConfig: bool:perhaps" in result.stderr
    garbage = tmp_path / "garbage.conf"
    garbage.write_text("no section here\n")
    result = engine_setup(tmp_path / "r", f"--config-append={garbage}")
    assert result.returncode == 2 and "not a valid answer file" in result.stderr
    assert not (tmp_path / "r").exists()


def test_forced_failure_in_misc_leaves_every_file_as_it_was(tmp_path, engine_setup):
    args = ["--accept-defaults", f"--otopi-environment={ENGINE_ENV}"]
    forced = {**os.environ, "OTOPI_FORCE_FAIL_STAGE": "STAGE_MISC"}
    fresh = engine_setup(tmp_path, *args, env=forced)
    assert fresh.returncode == 1
    assert "Every file this run changed is back as it was" in fresh.stdout
    assert not (tmp_path / "etc").exists()
    assert not (tmp_path / "var/lib/ovirt-engine/engine-options.sqlite").exists()
    assert engine_setup(tmp_path, *args).returncode == 0
    before = {k: v for k, v in tree(tmp_path).items() if k.startswith("etc") or k.endswith(".sqlite")}
    changed = engine_setup(tmp_path, "--accept-defaults",
                           f"--otopi-environment={ENGINE_ENV} OVESETUP_CONFIG/websocketProxyPort=int:6200",
                           env=forced)
    assert changed.returncode == 1
    after = {k: v for k, v in tree(tmp_path).items() if k.startswith("etc") or k.endswith(".sqlite")}
    assert after == before
    assert option(tmp_path) == "WebSocketProxy: engine.example.test:6100 version: general\n"


def test_answering_no_writes_no_proxy_file(tmp_path, engine_setup):
    result = engine_setup(tmp_path, "--accept-defaults",
                          "--otopi-environment=OVESETUP_CONFIG/websocketProxyConfig=bool:False")
    assert result.returncode == 0, result.stdout
    written = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "etc").rglob("*") if p.is_file())
    assert written[0] == "etc/ovirt-engine-setup.conf.d/20-setup-ovirt-post.conf"  # the answer, for re-runs
    assert [p for p in written[1:] if "uninstall.d" not in p] == []
    assert option(tmp_path) == "WebSocketProxy: Off version: general\n"


def test_existing_ovirt_pki_is_reused(tmp_path, engine_setup):
    args = ("--accept-defaults", f"--otopi-environment={ENGINE_ENV}")
    assert engine_setup(tmp_path, *args).returncode == 0
    ca_before = (tmp_path / PKI / "ca.pem").read_bytes()
    store_before = (tmp_path / PKI / "keys/engine.p12").read_bytes()
    (tmp_path / PKI / "certs/websocket-proxy.cer").unlink()
    assert engine_setup(tmp_path, *args).returncode == 0
    assert (tmp_path / PKI / "ca.pem").read_bytes() == ca_before
    assert (tmp_path / PKI / "keys/engine.p12").read_bytes() == store_before
    verify_proxy_cert(tmp_path, "engine.example.test")


def test_help_explains(engine_setup):
    result = subprocess.run([command("engine-setup"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for option_name in ("--root", "--accept-defaults", "--config-append", "--otopi-environment",
                        "--generate-answer", "--log", "OTOPI_FORCE_FAIL_STAGE"):
        assert option_name in result.stdout


def setup_files(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below root with its bytes and mode, but the run's own log and answer files."""
    return {k: v[:2] for k, v in tree(root).items() if not k.startswith(("var/log/", "var/lib/ovirt-engine/setup/"))}


@pytest.mark.parametrize("stage, priority", [("STAGE_CLEANUP", "9001"), ("STAGE_PRE_TERMINATE", "5000"),
                                             ("STAGE_TERMINATE", "90000"), ("STAGE_REBOOT", "5000")])
def test_failure_after_the_manifest_takes_the_manifest_away(tmp_path, engine_setup, stage, priority):
    """The uninstall manifest (CLEANUP, priority 9000) belongs to the transaction: a failure after it
    leaves no manifest naming content that was rolled back."""
    assert engine_setup(tmp_path, "--accept-defaults", f"--otopi-environment={ENGINE_ENV}").returncode == 0
    before = setup_files(tmp_path)
    forced = {**os.environ, "OTOPI_FORCE_FAIL_STAGE": stage, "OTOPI_FORCE_FAIL_PRIORITY": priority}
    time.sleep(1.1)  # a new manifest would get a new name
    result = engine_setup(tmp_path, "--accept-defaults",
                          f"--otopi-environment={ENGINE_ENV} OVESETUP_CONFIG/websocketProxyPort=int:6200", env=forced)
    assert result.returncode == 1, result.stdout
    assert "Every file this run changed is back as it was." in result.stdout
    assert result.stdout.rstrip().endswith(("Execution of setup failed", "back as it was."))
    assert "completed successfully" not in result.stdout or stage == "STAGE_REBOOT"
    assert setup_files(tmp_path) == before
    assert option(tmp_path) == "WebSocketProxy: engine.example.test:6100 version: general\n"
    cleanup = run("engine-cleanup", "--root", str(tmp_path), "--accept-defaults",
                  "--otopi-environment=OVESETUP_REMOVE/removeWsp=bool:True")
    assert cleanup.returncode == 0, cleanup.stdout
    assert "changed since setup" not in cleanup.stdout
    assert not (tmp_path / SETUP_CONF).exists()


@pytest.mark.parametrize("variables, message", [
    ({"OTOPI_FORCE_FAIL_STAGE": "bogus"}, "OTOPI_FORCE_FAIL_STAGE: unknown stage 'bogus' (use one of STAGE_BOOT"),
    ({"OTOPI_FORCE_FAIL_STAGE": "misc", "OTOPI_FORCE_FAIL_PRIORITY": "abc"},
     "OTOPI_FORCE_FAIL_PRIORITY: 'abc' is not an integer"),
])
def test_bad_force_fail_variables_are_a_usage_error(tmp_path, engine_setup, variables, message):
    result = engine_setup(tmp_path / "r", "--accept-defaults", f"--otopi-environment={ENGINE_ENV}",
                          env={**os.environ, **variables})
    assert result.returncode == 2
    assert result.stderr.startswith(f"engine-setup: {message}") and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MiB file system (tmpfs) as --root, unmounted afterwards."""
    root = tmp_path / "root"
    root.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(root)], check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", str(root)], check=True)


def fill(root: Path) -> None:
    with (root / "filler").open("wb") as stream:
        try:
            while True:
                stream.write(b"\0" * 65536)
                stream.flush()
        except OSError:
            pass


def test_full_disk_one_console_line_and_files_restored(small_disk, engine_setup):
    """With no space left, the console says once that the log cannot be written (not a 'Logging error'
    traceback per record), and the re-run's changes are undone."""
    assert engine_setup(small_disk, "--accept-defaults", f"--otopi-environment={ENGINE_ENV}").returncode == 0
    fill(small_disk)
    before = {k: v for k, v in setup_files(small_disk).items()}
    result = engine_setup(small_disk, "--accept-defaults",
                          f"--otopi-environment={ENGINE_ENV} OVESETUP_CONFIG/websocketProxyPort=int:6200")
    assert result.returncode == 1
    assert "Logging error" not in result.stderr and "Traceback" not in result.stderr + result.stdout
    assert result.stdout.count("Cannot write the log file") == 1
    assert "Every file this run changed is back as it was." in result.stdout
    assert setup_files(small_disk) == before
    assert option(small_disk) == "WebSocketProxy: engine.example.test:6100 version: general\n"


def test_an_empty_answer_file_is_a_warning(tmp_path, engine_setup):
    empty = tmp_path / "empty.conf"
    empty.write_text("# nothing here\n")
    result = engine_setup(tmp_path / "r", "--accept-defaults", f"--config-append={empty}",
                          "--otopi-environment=OVESETUP_CONFIG/websocketProxyConfig=bool:False")
    assert result.returncode == 0, result.stdout
    assert f"[WARNING] {empty} sets no key (no [environment:default] section" in result.stdout


def test_a_large_answer_file_is_read_in_linear_time(tmp_path, engine_setup):
    """8 MiB of keys of components we do not have (the figure per MiB is in scripts/bench-setup): a run
    took quadratic time in the number of keys (every log record looked at every key)."""
    answers = tmp_path / "large.conf"
    line = "OVESETUP_OTHER/key{:07d}=str:" + "v" * 40 + "\n"
    with answers.open("w") as stream:
        stream.write("[environment:default]\nOVESETUP_CONFIG/websocketProxyConfig=bool:False\n")
        stream.writelines(line.format(n) for n in range(8 * 2**20 // len(line.format(0))))
    start = time.monotonic()
    result = engine_setup(tmp_path / "r", "--accept-defaults", f"--config-append={answers}")
    assert result.returncode == 0, result.stdout[-2000:]
    assert time.monotonic() - start < 100  # about 5 s on a 2-core machine; before, hours

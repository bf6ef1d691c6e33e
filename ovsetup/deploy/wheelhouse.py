"""What the targets install: the product's own wheel (`--no-deps`) plus the wheels of exactly the proxy side's
requirements (the `proxy` extra) and pip, as one tar cached below `/var/lib/ovirt-engine/setup/wheelhouse/`.

The product's wheel comes from the source tree (a checkout or an editable install) or is rebuilt from the
installed files; the dependencies come from the admin's wheel directory (`--no-index --find-links`: nothing
is fetched) or else from the package index pip is configured with. A target whose Python differs from the
engine's (probed first) gets wheels selected for its version and platform (`pip download --python-version
--platform`), or a clear error before anything is installed anywhere.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

from packaging.requirements import Requirement

from ovcommon.paths import Root

from ..core.transaction import atomic_write, make_parents
from .hosts import DeployError

log = logging.getLogger(__name__)
PACKAGE = "ovirt-engine-wsp"
EXTRA = "proxy"
WHEELHOUSE_DIR = PurePosixPath("/var/lib/ovirt-engine/setup/wheelhouse")
WHEELHOUSE_KEY = "OVESETUP_CONFIG/websocketProxyWheelhouse"
FORMAT = "3"  # product wheel --no-deps + the proxy extra + pip (the venv is made --without-pip)
REQUIREMENTS = "requirements.txt"
ABOUT = "wheelhouse.json"  # {id, python, machine}: the standalone playbook reads it from the archive
SOURCE_PARTS = ("setup.py", "pyproject.toml", "ovcommon", "ovsetup", "wsproxy", "plugins", "templates", "ansible")
# Run with the target's python3: what selects its wheels. Only the standard library.
PROBE = ("import json, platform, sys; print(json.dumps({'version': '%d.%d' % sys.version_info[:2], "
         "'machine': platform.machine(), 'libc': platform.libc_ver()}))")


@dataclass(frozen=True)
class TargetPython:
    """A target's python3: what its wheels must fit."""

    version: str  # "3.13"
    machine: str  # "x86_64"
    libc: tuple[str, str] = ("glibc", "")  # ("glibc", "2.36"); ("", "") when not glibc

    @classmethod
    def parse(cls, output: str) -> TargetPython:
        """The probe's output (the last line of JSON), or a DeployError saying what came back."""
        try:
            data = json.loads(output.strip().splitlines()[-1])
            return cls(str(data["version"]), str(data["machine"]), tuple(data["libc"]))  # type: ignore[arg-type]
        except (IndexError, ValueError, KeyError, TypeError):
            raise DeployError(f"the Python probe answered {output.strip()[:200]!r}, not its version") from None

    @classmethod
    def engine(cls) -> TargetPython:
        return cls(f"{sys.version_info[0]}.{sys.version_info[1]}", platform.machine(), platform.libc_ver())

    @property
    def label(self) -> str:
        return f"Python {self.version} ({self.machine})"

    def platforms(self) -> list[str]:
        """pip's `--platform` tags this interpreter accepts: manylinux up to its glibc, then plain linux."""
        arch = self.machine
        tags = []
        if self.libc[0] == "glibc" and self.libc[1].count(".") >= 1:
            major, minor = (int(part) for part in self.libc[1].split(".")[:2])
            legacy = {(2, 5): "manylinux1", (2, 12): "manylinux2010", (2, 17): "manylinux2014"}
            for glibc_minor in range(minor, 4, -1) if major == 2 else ():
                tags.append(f"manylinux_2_{glibc_minor}_{arch}")
                if (2, glibc_minor) in legacy:
                    tags.append(f"{legacy[(2, glibc_minor)]}_{arch}")
        return [*tags, f"linux_{arch}"]


@dataclass(frozen=True)
class Wheelhouse:
    archive: Path
    id: str
    python: str
    machine: str = ""

    def role_entry(self) -> dict[str, str]:
        """How the role's `ovirt_websocket_proxy_wheelhouses` list names it."""
        return {"archive": str(self.archive), "id": self.id, "python": self.python, "machine": self.machine}


def proxy_requirements() -> list[str]:
    """The `proxy` extra's requirements as the installed metadata lists them."""
    found = []
    for line in metadata.requires(PACKAGE) or []:
        requirement = Requirement(line)
        if requirement.marker is not None and requirement.marker.evaluate({"extra": EXTRA}) \
                and not requirement.marker.evaluate({"extra": ""}):
            requirement.marker = None
            found.append(str(requirement))
    if not found:
        raise DeployError(f"the installed {PACKAGE} names no '{EXTRA}' requirements: reinstall it")
    return found


def _source_tree() -> Path | None:
    """The checkout this package runs from (an editable install), if any."""
    top = Path(__file__).resolve().parents[2]
    return top if (top / "setup.py").is_file() and (top / "wsproxy").is_dir() else None


def _digest_source(top: Path) -> str:
    digest = hashlib.sha256()
    for part in SOURCE_PARTS:
        base = top / part
        files = sorted(base.rglob("*")) if base.is_dir() else [base]
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(str(path.relative_to(top)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _installed_files() -> list[tuple[str, Path]]:
    """(name in the wheel, installed path) of every file RECORD lists, but scripts, caches and installer notes."""
    distribution = metadata.distribution(PACKAGE)
    skipped = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    files = []
    for entry in distribution.files or []:
        name = PurePosixPath(str(entry))
        if name.parts[0] == ".." or "__pycache__" in name.parts or name.suffix == ".pyc":
            continue
        if name.parent.name.endswith(".dist-info") and name.name in skipped:
            continue
        files.append((str(name), Path(str(entry.locate()))))
    return sorted(files)


def _digest_installed() -> str:
    digest = hashlib.sha256()
    for name, path in _installed_files():
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def rebuild_wheel(directory: Path) -> Path:
    """The product's wheel made again from its installed files (and a fresh RECORD); returns its path."""
    files = _installed_files()
    dist_info = next(PurePosixPath(name).parent for name, _ in files if name.endswith(".dist-info/METADATA"))
    tag = next(line.split(":", 1)[1].strip() for name, path in files if name == f"{dist_info}/WHEEL"
               for line in path.read_text().splitlines() if line.startswith("Tag:"))
    wheel = directory / f"{dist_info.name.removesuffix('.dist-info')}-{tag}.whl"
    record = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, path in files:
            data = path.read_bytes()
            archive.writestr(name, data)
            record.append(f"{name},{_record_hash(data)},{len(data)}")
        record.append(f"{dist_info}/RECORD,,")
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return wheel


def _product_wheel(directory: Path) -> None:
    top = _source_tree()
    if top is None:
        rebuild_wheel(directory)
        return
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                             "--disable-pip-version-check", "--wheel-dir", str(directory), str(top)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise DeployError(f"cannot build the product's wheel from {top}: {_last_line(result.stderr)}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors or lines or ["no output"])[-1]


def download_command(python: TargetPython, requirements: list[str], dest: Path, wheel_dir: Path | None) -> list[str]:
    """`pip download` of wheels only, selected for `python` unless it is the engine's own interpreter."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               "--only-binary=:all:", "--dest", str(dest)]
    if wheel_dir is not None:
        command += ["--no-index", "--find-links", str(wheel_dir)]
    if python != TargetPython.engine():
        command += ["--python-version", python.version, "--implementation", "cp"]
        for tag in python.platforms():
            command += ["--platform", tag]
    return [*command, *requirements, "pip"]


def _cache_key(python: TargetPython, requirements: list[str], wheel_dir: Path | None) -> str:
    top = _source_tree()
    product = _digest_source(top) if top else _digest_installed()
    source = "index"
    if wheel_dir is not None:
        source = "\0".join(f"{p.name}:{p.stat().st_size}" for p in sorted(wheel_dir.glob("*.whl")))
    text = "\0".join([FORMAT, python.version, python.machine, *python.platforms(), product, *requirements, source])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def wheelhouse_for(root: Root, python: TargetPython | None = None, wheel_dir: Path | None = None) -> Wheelhouse:
    """The tar for targets with `python` (default: the engine's), from the cache below root or built now."""
    python = python or TargetPython.engine()
    if wheel_dir is not None and not wheel_dir.is_dir():
        raise DeployError(f"{WHEELHOUSE_KEY}: {wheel_dir} is not a directory")
    requirements = proxy_requirements()
    key = _cache_key(python, requirements, wheel_dir)
    archive = root.path(WHEELHOUSE_DIR) / f"{PACKAGE}-{key}.tar"
    if archive.is_file():
        return Wheelhouse(archive, key, python.version, python.machine)
    log.info("Preparing the wheelhouse for the proxy hosts (%s, from %s)", python.label,
             wheel_dir or "the package index")
    with tempfile.TemporaryDirectory(prefix="wsp-wheels-") as tmp:
        _product_wheel(Path(tmp))
        result = subprocess.run(download_command(python, requirements, Path(tmp), wheel_dir),
                                capture_output=True, text=True)
        if result.returncode != 0:
            log.debug("pip download: %s", result.stdout + result.stderr)
            where = f"the wheel directory {wheel_dir}" if wheel_dir else \
                f"the package index (or set {WHEELHOUSE_KEY} to a directory of wheels made with pip download)"
            raise DeployError(f"no wheels for {python.label} in {where}: {_last_line(result.stderr)}")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for wheel in sorted(Path(tmp).glob("*.whl")):
                tar.add(wheel, arcname=wheel.name)
            about = {"id": key, "python": python.version, "machine": python.machine}
            for name, data in ((REQUIREMENTS, "\n".join(requirements) + "\n"), (ABOUT, json.dumps(about) + "\n")):
                info = tarfile.TarInfo(name)  # what the role installs beside --no-deps; what the wheels are for
                info.size, info.mode = len(data.encode()), 0o644
                tar.addfile(info, io.BytesIO(data.encode()))
    make_parents(archive)
    atomic_write(archive, buffer.getvalue(), 0o644)
    return Wheelhouse(archive, key, python.version, python.machine)

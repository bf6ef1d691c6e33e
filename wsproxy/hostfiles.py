"""What setup wrote on a deployed host, so that removal takes away exactly that, by local cleanup's rules: a
file setup put there is removed, one changed since (edited by hand) is kept, one that was there before stays.

`python -m wsproxy.hostfiles remove --prefix DIR` (run by the role's `state: absent`) prints
{"removed": [...], "kept": [...]} as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path

from ovcommon.files import atomic_write, sha256_file

RECORD = "setup-files.json"


def record(prefix: Path, wrote: Iterable[str], owned: Iterable[Path]) -> None:
    """Remember the sha256 of each `owned` file that setup wrote now or wrote before (and so still owns)."""
    path = prefix / RECORD
    old: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}
    wrote = set(wrote)
    new = {str(f): sha256_file(f) for f in owned if (str(f) in wrote or str(f) in old) and f.is_file()}
    if new != old:
        prefix.mkdir(parents=True, exist_ok=True)
        atomic_write(path, (json.dumps(new, indent=1, sort_keys=True) + "\n").encode(), 0o600)


def remove(prefix: Path) -> dict[str, list[str]]:
    """Remove the recorded files that are as setup wrote them; keep the others; forget the record."""
    path = prefix / RECORD
    recorded: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}
    result: dict[str, list[str]] = {"removed": [], "kept": []}
    for name, digest in sorted(recorded.items()):
        target = Path(name)
        if not target.is_file():
            continue
        if sha256_file(target) == digest:
            target.unlink()
            result["removed"].append(name)
        else:
            result["kept"].append(name)
    path.unlink(missing_ok=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wsproxy.hostfiles", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["remove"])
    parser.add_argument("--prefix", type=Path, required=True, help="where the deployment's record lies")
    args = parser.parse_args(argv)
    print(json.dumps(remove(args.prefix)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

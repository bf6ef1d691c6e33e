"""`engine-config`: read and set engine options, as the engine's own tool does."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ovcommon.errors import entry
from ovcommon.paths import Root

from .core.transaction import Transaction
from .options import OptionError, open_store


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="engine-config",
        description="Get or set engine options (WebSocketProxy, WebSocketProxyTicketValiditySeconds).",
        epilog="Example: engine-config -s WebSocketProxy=proxy.example.com:6100",
    )
    p.add_argument("--root", type=Path, default=Path("/"), help="the system's root directory (default /)")
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("-g", "--get", metavar="KEY", help="print KEY's value")
    action.add_argument("-s", "--set", metavar="KEY=VALUE", help="set KEY to VALUE")
    return p


@entry("engine-config")
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    store = open_store(Root(args.root))
    if args.get:
        print(f"{args.get}: {store.get(args.get)} version: general")
        return 0
    key, sep, value = args.set.partition("=")
    if not sep:
        raise OptionError(f"-s {args.set!r}: expected KEY=VALUE")
    transaction = Transaction()
    transaction.append(store.update(key, value))
    transaction.prepare()
    transaction.commit()
    return 0


if __name__ == "__main__":
    sys.exit(main())

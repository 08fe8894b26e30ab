#!/usr/bin/env bash
# Installs the reference `dagster-cloud` CLI (PyPI) into a venv, once, and prints the path of its
# executable. The compatibility tests run it against our server and compare what both tools do.
#
#   export DAGSTER_CLOUD_REFERENCE="$(scripts/reference-cli.sh)"
#
# Settings: DAGSTER_DEPLOY_REFERENCE_VENV (default ~/.cache/dagster-deploy/reference-venv),
#           DAGSTER_CLOUD_VERSION (default below: the version the tests were checked against).
set -euo pipefail
VERSION="${DAGSTER_CLOUD_VERSION:-1.13.27}"
VENV="${DAGSTER_DEPLOY_REFERENCE_VENV:-$HOME/.cache/dagster-deploy/reference-venv}"
log() { echo "reference-cli.sh: $*" >&2; }

installed() { [ -x "$VENV/bin/dagster-cloud" ] && [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("dagster-cloud"))' 2>/dev/null)" = "$VERSION" ]; }

if ! installed; then
    log "installing dagster-cloud==$VERSION into $VENV"
    if ! python3 -m venv --help >/dev/null 2>&1; then
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "dagster-cloud==$VERSION" >&2
    installed || { log "error: dagster-cloud $VERSION did not install into $VENV"; exit 1; }
fi
echo "$VENV/bin/dagster-cloud"

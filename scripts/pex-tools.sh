#!/usr/bin/env bash
# Installs what the Python-executable (PEX) tests need, once: pex and uv (PyPI) into the
# dagster-deploy tools folder (where `dagster-deploy serverless deploy-python-executable` looks
# for them), and checks that python3.11 (the default target, which runs the built artefacts in
# the proof tests) is on PATH. Prints the tools folder.
#
#   export DAGSTER_DEPLOY_TOOLS_DIR="$(scripts/pex-tools.sh)"
set -euo pipefail
DIR="${DAGSTER_DEPLOY_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dagster-deploy/tools}"
log() { echo "pex-tools.sh: $*" >&2; }

if ! command -v python3.11 >/dev/null 2>&1; then
    log "installing python3.11 (Debian's python3)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
fi
if [ ! -x "$DIR/venv/bin/pex" ] || [ ! -x "$DIR/venv/bin/uv" ]; then
    log "installing pex and uv into $DIR"
    if ! python3 -m venv --help >/dev/null 2>&1; then
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
    rm -rf "$DIR/venv"
    mkdir -p "$DIR"
    python3 -m venv "$DIR/venv"
    "$DIR/venv/bin/pip" install --quiet --disable-pip-version-check "pex>=2.60,<3" "uv>=0.8" >&2
fi
"$DIR/venv/bin/pex" --version >/dev/null && "$DIR/venv/bin/uv" --version >/dev/null || { log "error: pex or uv does not run from $DIR/venv/bin"; exit 1; }
echo "$DIR"

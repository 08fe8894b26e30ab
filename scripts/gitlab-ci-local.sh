#!/usr/bin/env bash
# Installs gitlab-ci-local (a GitLab pipeline emulator, from npm) once, and prints the path of a
# wrapper that runs it. tests/gitlab_pipelines.rs uses it to validate the GitLab templates and
# the generated child pipeline against GitLab's CI schema and to evaluate their rules.
#
#   export DAGSTER_DEPLOY_GITLAB_CI_LOCAL="$(scripts/gitlab-ci-local.sh)"
#
# gitlab-ci-local uses the ES2025 Set methods (union, difference, ...), which Node 20 (Debian's
# and this machine's) lacks: the wrapper loads scripts/gitlab-ci-local/set-polyfill.mjs first.
# Installs Debian's nodejs and npm when node is missing and we are root.
#
# Settings: DAGSTER_DEPLOY_GITLAB_CI_LOCAL_DIR (default ~/.cache/dagster-deploy/gitlab-ci-local),
#           DAGSTER_DEPLOY_GITLAB_CI_LOCAL_VERSION (default below).
set -euo pipefail
VERSION="${DAGSTER_DEPLOY_GITLAB_CI_LOCAL_VERSION:-4.75.1}"
DIR="${DAGSTER_DEPLOY_GITLAB_CI_LOCAL_DIR:-$HOME/.cache/dagster-deploy/gitlab-ci-local}"
POLYFILL="$(cd "$(dirname "$0")" && pwd)/gitlab-ci-local/set-polyfill.mjs"
log() { echo "gitlab-ci-local.sh: $*" >&2; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || { log "error: node and npm are missing (Debian: nodejs npm)"; exit 1; }
    log "installing nodejs and npm"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

ENTRY="$DIR/node_modules/gitlab-ci-local/dist/index.js"
installed() {
    [ -f "$ENTRY" ] && [ "$(node -p 'require(process.argv[1]).version' "$DIR/node_modules/gitlab-ci-local/package.json" 2>/dev/null)" = "$VERSION" ]
}
if ! installed; then
    log "installing gitlab-ci-local@$VERSION into $DIR"
    # Node trusts only its own CA bundle, not the machine's: behind a TLS-inspecting proxy
    # whose CA only the machine trusts, npm fails with SELF_SIGNED_CERT_IN_CHAIN (pip and
    # apt use the machine's store already).
    if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
    fi
    rm -rf "$DIR"
    mkdir -p "$DIR"
    npm install --prefix "$DIR" --silent --no-audit --no-fund "gitlab-ci-local@$VERSION" >&2 ||
        { log "error: npm install failed (npm's log is under ~/.npm/_logs)"; exit 1; }
    installed || { log "error: gitlab-ci-local@$VERSION did not install into $DIR"; exit 1; }
fi
# The wrapper must not point into this checkout: the cache outlives it (CI runs from a fresh
# clone each time), so the polyfill is copied beside the install.
cp "$POLYFILL" "$DIR/set-polyfill.mjs"
WRAPPER="$DIR/gitlab-ci-local"
cat >"$WRAPPER" <<WRAP
#!/bin/sh
exec node --import "$DIR/set-polyfill.mjs" "$ENTRY" "\$@"
WRAP
chmod +x "$WRAPPER"
echo "$WRAPPER"

#!/usr/bin/env bash
# The README's quickstart in one command: a Docker engine and a registry with a password
# (scripts/services.sh, Debian, root), `python:3.11-slim` (pulled, else made from Debian packages
# by scripts/python-base-image.sh), and `dagster-deploy serve` in the background with its agent
# and the Dagster UI. Prints the variables `dagster-deploy deploy` needs, so:
#
#   eval "$(scripts/quickstart.sh)"       # start (again: reuses what runs)
#   scripts/quickstart.sh stop            # stop serve (its code servers and UI); services stay
#
# Everything it keeps is in .quickstart/ at the repository root (git-ignored): the server's data,
# its log and its API token. Settings (environment), for when the default ports are taken:
#   DAGSTER_DEPLOY_QUICKSTART_LISTEN  the deployment API     default 127.0.0.1:3000
#   DAGSTER_DEPLOY_QUICKSTART_UI      the Dagster UI         default 127.0.0.1:3001
#   DAGSTER_DEPLOY_QUICKSTART_ARGS    more `serve` arguments, e.g. "--code-server-ports 45000-45099"
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
DIR="$ROOT/.quickstart"
LISTEN="${DAGSTER_DEPLOY_QUICKSTART_LISTEN:-127.0.0.1:3000}"
UI="${DAGSTER_DEPLOY_QUICKSTART_UI:-127.0.0.1:3001}"

log() { echo "quickstart.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }
running() { [ -s "$DIR/serve.pid" ] && kill -0 "$(cat "$DIR/serve.pid")" 2>/dev/null; }

if [ "${1:-}" = stop ]; then
    if running; then
        pid="$(cat "$DIR/serve.pid")"
        kill -TERM "$pid"
        for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        log "stopped dagster-deploy serve (pid $pid)"
    fi
    rm -f "$DIR/serve.pid"
    exit 0
fi

command -v dagster-deploy >/dev/null ||
    die "dagster-deploy is not on PATH: run \`cargo install --path .\` first"

# Everything else goes to stderr: stdout is for `eval`.
{
    scripts/services.sh start
    eval "$(scripts/services.sh env)"
    if ! docker image inspect python:3.11-slim >/dev/null 2>&1 &&
        ! docker pull -q python:3.11-slim >/dev/null 2>&1; then
        log "Docker Hub is not reachable: making python:3.11-slim from Debian packages"
        scripts/python-base-image.sh
    fi
} >&2
eval "$(scripts/services.sh env)"

mkdir -p "$DIR"
chmod 700 "$DIR"
if ! running; then
    if [ ! -s "$DIR/token" ]; then
        (umask 077 && dagster-deploy serve token create --organization --label quickstart \
            --data "$DIR/server" >"$DIR/token" 2>/dev/null)
    fi
    # shellcheck disable=SC2086 # DAGSTER_DEPLOY_QUICKSTART_ARGS is a list of arguments
    DAGSTER_DEPLOY_REGISTRY_PASSWORD="$DAGSTER_DEPLOY_TEST_REGISTRY_PASSWORD" \
        nohup dagster-deploy serve --listen "$LISTEN" --data "$DIR/server" --dagster-ui "$UI" \
        --registry "$DAGSTER_DEPLOY_TEST_REGISTRY" --registry-user "$DAGSTER_DEPLOY_TEST_REGISTRY_USER" \
        ${DAGSTER_DEPLOY_QUICKSTART_ARGS:-} >"$DIR/serve.log" 2>&1 </dev/null &
    echo $! >"$DIR/serve.pid"
    log "started dagster-deploy serve (pid $!, log $DIR/serve.log)"
fi

# The first start installs dagster into ~/.cache/dagster-deploy (about a minute).
log "waiting for the Dagster UI at http://$UI ..."
for _ in $(seq 600); do
    curl -sf "http://$UI/server_info" >/dev/null && break
    running || die "serve stopped; its log:$(echo; tail -n 20 "$DIR/serve.log")"
    sleep 1
done
curl -sf "http://$UI/server_info" >/dev/null || die "no Dagster UI after 10 minutes; see $DIR/serve.log"

log "ready: deployment API http://$LISTEN, Dagster UI http://$UI"
echo "export DOCKER_HOST=$DOCKER_HOST"
echo "export DAGSTER_CLOUD_URL=http://$LISTEN"
echo "export DAGSTER_CLOUD_API_TOKEN=$(cat "$DIR/token")"
echo "export DAGSTER_DEPLOY_REGISTRY_USERNAME=$DAGSTER_DEPLOY_TEST_REGISTRY_USER"
echo "export DAGSTER_DEPLOY_REGISTRY_PASSWORD=$DAGSTER_DEPLOY_TEST_REGISTRY_PASSWORD"
echo "export DAGSTER_DEPLOY_UI=http://$UI"

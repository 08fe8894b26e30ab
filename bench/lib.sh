# Shared set-up of the benchmarks that run a `dagster-deploy serve` process (sourced, not run).
# Before sourcing, set ROOT (the repository) and define log(). Gives:
#   apt_need PKG CMD   install the Debian package PKG when CMD is missing (root)
#   BIN                the release binary (DAGSTER_DEPLOY, else built here)
#   WORK               a temporary folder, removed at exit with any server still running
#   SERVE_PID          the server to stop; stop_server stops it
# shellcheck shell=bash

apt_need() {
    command -v "$2" >/dev/null && return
    log "installing $1"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}

if [ -z "${DAGSTER_DEPLOY:-}" ]; then
    (cd "$ROOT" && cargo build --release --quiet)
    DAGSTER_DEPLOY="${CARGO_TARGET_DIR:-$ROOT/target}/release/dagster-deploy"
fi
# shellcheck disable=SC2034 # used by the scripts that source this
BIN="$DAGSTER_DEPLOY"

WORK="$(mktemp -d)"
SERVE_PID=""
stop_server() {
    if [ -n "$SERVE_PID" ] && kill -0 "$SERVE_PID" 2>/dev/null; then
        kill -TERM "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true
    fi
    SERVE_PID=""
}
bench_cleanup() { stop_server; rm -rf "$WORK"; }
trap bench_cleanup EXIT

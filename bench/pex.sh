#!/usr/bin/env bash
# Python-executable (PEX) deploy benchmark (targets in issue 6; nothing here is asserted):
# `dagster-deploy serverless deploy-python-executable` against the reference
# `dagster-cloud serverless deploy-python-executable`, same location, same `dagster-deploy
# serve` process (each tool on its own deployment), same machine, in one run.
#
#  cold  first deploy of a requirement set: no dependency archive anywhere yet (new server
#        data, empty dagster-deploy cache). Package downloads are warm for both tools (one
#        untimed deploy each first), so the row measures building, not the network.
#  code  code-only change with the dependencies cached: ours finds them on the server; the
#        reference gets its best case, --deps-cache-from/--deps-cache-to with a published tag.
#
#   bash bench/pex.sh
#   BENCH_RUNS=5 REF_DAGSTER_CLOUD=/path/to/dagster-cloud DAGSTER_DEPLOY=/path/to/bin bash bench/pex.sh
#
# Prints a table (median of BENCH_RUNS runs, default 3) and writes it to bench/results/pex.txt.
set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${BENCH_RUNS:-3}"
RESULTS="$ROOT/bench/results"
mkdir -p "$RESULTS"
log() { echo "pex.sh: $*" >&2; }

REF="${REF_DAGSTER_CLOUD:-${DAGSTER_CLOUD_REFERENCE:-}}"
[ -n "$REF" ] || REF="$("$ROOT/scripts/reference-cli.sh")"
DAGSTER_DEPLOY_TOOLS_DIR="$("$ROOT/scripts/pex-tools.sh")"
export DAGSTER_DEPLOY_TOOLS_DIR
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
apt_need bc bc

# A fresh server (new data folder): sets URL and TOKEN.
start_server() {
    stop_server
    local data="$WORK/data-$1"
    TOKEN="$("$BIN" serve token create --organization --data "$data" 2>/dev/null)"
    for d in ref ours; do "$BIN" serve token create --deployment "$d" --data "$data" >/dev/null 2>&1; done
    "$BIN" serve --listen 127.0.0.1:0 --no-image-checks --data "$data" 2>"$WORK/serve-$1.err" &
    SERVE_PID=$!
    for _ in $(seq 100); do grep -q "listening on" "$WORK/serve-$1.err" 2>/dev/null && break; sleep 0.05; done
    URL="$(grep -o 'http://[0-9.:]*' "$WORK/serve-$1.err" | head -1)"
    [ -n "$URL" ] || { cat "$WORK/serve-$1.err" >&2; exit 1; }
}

# The location: dagster-cloud (the reference insists on it) and one asset.
LOC="$WORK/loc"
mkdir -p "$LOC/hello"
printf 'dagster-cloud\n' > "$LOC/requirements.txt"
printf 'import dagster as dg\n\n@dg.asset\ndef greeting():\n    return "hi"\n\ndefs = dg.Definitions(assets=[greeting])\n' > "$LOC/hello/__init__.py"
change_code() { echo "# change $RANDOM$RANDOM" >> "$LOC/hello/__init__.py"; }

# Seconds taken by one deploy; the command's output goes to $WORK/last.log.
timed() {
    local start end
    start=$(date +%s.%N)
    if ! "$@" >"$WORK/last.log" 2>&1; then
        log "failed: $*"; tail -30 "$WORK/last.log" >&2; exit 1
    fi
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

ours() { # DEPLOYMENT CACHE_HOME
    (cd "$LOC" && env DAGSTER_CLOUD_URL="$URL" DAGSTER_CLOUD_DEPLOYMENT="$1" DAGSTER_CLOUD_API_TOKEN="$TOKEN" \
        DAGSTER_CLOUD_CLI_CONFIG="$WORK/none" DAGSTER_DEPLOY_CACHE_DIR="$2" \
        "$BIN" serverless deploy-python-executable . --location-name hello --module-name hello)
}
ref() { # DEPLOYMENT [extra flags]
    local dep="$1"; shift
    (cd "$LOC" && env DAGSTER_CLOUD_URL="$URL/$dep" DAGSTER_CLOUD_API_TOKEN="$TOKEN" \
        DAGSTER_CLOUD_CLI_CONFIG="$WORK/none" \
        "$REF" serverless deploy-python-executable . --location-name hello --module-name hello \
        --build-method local "$@")
}

log "warming package download caches (untimed)"
start_server warm
ours ours "$WORK/cache-warm" >/dev/null 2>&1
ref ref >/dev/null 2>&1

declare -a COLD_OURS COLD_REF CODE_OURS CODE_REF
for i in $(seq "$RUNS"); do
    log "cold run $i/$RUNS"
    start_server "cold$i"
    change_code
    COLD_OURS+=("$(timed ours ours "$WORK/cache-cold$i")")
    COLD_REF+=("$(timed ref ref)")
done

log "code-only runs: publishing dependencies first (untimed)"
start_server code
ours ours "$WORK/cache-code" >/dev/null 2>&1
ref ref --deps-cache-to bench >/dev/null 2>&1
for i in $(seq "$RUNS"); do
    log "code-only run $i/$RUNS"
    change_code
    CODE_OURS+=("$(timed ours ours "$WORK/cache-code")")
    grep -q "is on the server already" "$WORK/last.log" || { log "ours rebuilt the dependencies"; cat "$WORK/last.log" >&2; exit 1; }
    CODE_REF+=("$(timed ref ref --deps-cache-from bench --deps-cache-to bench)")
done

co=$(printf '%s\n' "${COLD_OURS[@]}" | median); cr=$(printf '%s\n' "${COLD_REF[@]}" | median)
ko=$(printf '%s\n' "${CODE_OURS[@]}" | median); kr=$(printf '%s\n' "${CODE_REF[@]}" | median)
{
    echo "Python-executable deploys, median of $RUNS runs (seconds; ratio = dagster-deploy / reference)"
    printf '%-46s %14s %10s %7s  %s\n' "scenario" "dagster-deploy" "reference" "ratio" "target"
    printf '%-46s %14.2f %10.2f %7.2f  %s\n' "cold: first deploy, dependencies built" "$co" "$cr" "$(echo "$co / $cr" | bc -l)" "ratio <= 1"
    printf '%-46s %14.2f %10.2f %7.2f  %s\n' "code-only change, dependencies cached" "$ko" "$kr" "$(echo "$ko / $kr" | bc -l)" "< 3 s and ratio <= 0.2"
} | tee "$RESULTS/pex.txt"

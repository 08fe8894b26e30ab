#!/usr/bin/env bash
# The deployment API benchmark (targets in issue 4; nothing here is asserted):
#
#  1. The command scenario — add, update, sync, list, delete, branch deployment, then a ci
#     session: init / set-build-output / deploy / status — run by the reference `dagster-cloud`
#     CLI and by `dagster-deploy` against the same `dagster-deploy serve` process, each tool on
#     its own deployment and state folder; wall time per command, totals and their ratio.
#  2. `serve` throughput: `addOrUpdateLocationFromDocument` per second and latency
#     percentiles with `wrk` (Debian package) from a second process on 127.0.0.1, bounded
#     by BENCH_SECONDS; resident memory of the server before and after.
#
#   bash bench/api.sh
#   REF_DAGSTER_CLOUD=/path/to/dagster-cloud BENCH_SECONDS=10 BENCH_CONNECTIONS=16 bash bench/api.sh
#
# Results go to bench/results/api.txt (ignored by git) and stdout.
set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECONDS_LOAD="${BENCH_SECONDS:-10}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"
RESULTS="$ROOT/bench/results"
mkdir -p "$RESULTS"
log() { echo "api.sh: $*" >&2; }

REF="${REF_DAGSTER_CLOUD:-${DAGSTER_CLOUD_REFERENCE:-}}"
[ -n "$REF" ] || REF="$("$ROOT/scripts/reference-cli.sh")"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
apt_need wrk wrk

TOKEN="$("$BIN" serve token create --organization --data "$WORK/data" 2>/dev/null)"
# Each tool works on its own deployment, so both run the same command lines from the same state.
for d in ref ours; do "$BIN" serve token create --deployment "$d" --data "$WORK/data" >/dev/null 2>&1; done
"$BIN" serve --listen 127.0.0.1:0 --no-image-checks --data "$WORK/data" 2>"$WORK/serve.err" &
SERVE_PID=$!
for _ in $(seq 100); do grep -q "listening on" "$WORK/serve.err" 2>/dev/null && break; sleep 0.05; done
URL="$(grep -o 'http://[0-9.:]*' "$WORK/serve.err" | head -1)"
[ -n "$URL" ] || { cat "$WORK/serve.err" >&2; exit 1; }
log "server at $URL (pid $SERVE_PID)"

cd "$WORK"
printf 'locations:\n  - location_name: s1\n    code_source:\n      package_name: s1\n    image: r/s1:1\n  - location_name: s2\n    code_source:\n      module_name: s2.defs\n    image: r/s2:1\n' > workspace.yaml
mkdir -p project
printf 'locations:\n  - location_name: p\n    code_source:\n      module_name: p.defs\n    build:\n      registry: r/p\n' > project/dagster_cloud.yaml
# Our `ci init` plans with git: the project is a repository.
git -C project init -q && git -C project add -A \
    && git -C project -c user.name=bench -c user.email=bench@example.com commit -qm project

now() { date +%s.%N; }
# run TOOL DEPLOYMENT ARGS...: runs with a clean environment, fails loudly; prints seconds taken.
run() {
    local tool="$1" deployment="$2"; shift 2
    local t0 t1
    t0="$(now)"
    env -i PATH="$PATH" HOME="$WORK" LANG=C.UTF-8 DAGSTER_CLOUD_CLI_CONFIG="$WORK/none" \
        DAGSTER_CLOUD_URL="$URL" DAGSTER_CLOUD_DEPLOYMENT="$deployment" DAGSTER_CLOUD_ORGANIZATION=bench \
        DAGSTER_CLOUD_API_TOKEN="$TOKEN" "$tool" "$@" >"$WORK/last.out" 2>&1 \
        || { log "failed: $tool $*"; cat "$WORK/last.out" >&2; exit 1; }
    t1="$(now)"
    echo "$t1 - $t0" | bc -l
}

COMMON=(
    "deployment add-location bench-a --module-name a.defs --image r/a:1 --commit-hash abc"
    "deployment update-location bench-a --module-name a.defs --image r/a:2 --commit-hash abd"
    "deployment sync-locations -w workspace.yaml"
    "deployment list-locations"
    "deployment delete-location s2"
    "branch-deployment create-or-update --url $URL --git-repo-name org/repo --branch-name feature/bench --commit-hash c1 --timestamp 1700000000"
)
# The deployment and state folder are filled in per tool (DEPLOYMENT, STATE).
CI=(
    "ci init --project-dir project --deployment DEPLOYMENT --statedir STATE --commit-hash abc"
    "ci set-build-output --statedir STATE --image-tag t1"
    "ci deploy --statedir STATE"
    "ci status --statedir STATE"
)

declare -A TOTAL=([ref]=0 [ours]=0)
{
    printf '%-26s %10s %10s\n' "command" "reference" "ours"
    for cmd in "${COMMON[@]}" "${CI[@]}"; do
        ref_cmd="${cmd//DEPLOYMENT/ref}"; ref_cmd="${ref_cmd//STATE/state-ref}"
        our_cmd="${cmd//DEPLOYMENT/ours}"; our_cmd="${our_cmd//STATE/state-ours}"
        # shellcheck disable=SC2086
        r="$(run "$REF" ref $ref_cmd)" || exit 1
        # shellcheck disable=SC2086
        o="$(run "$BIN" ours $our_cmd)" || exit 1
        TOTAL[ref]="$(echo "${TOTAL[ref]} + $r" | bc -l)"
        TOTAL[ours]="$(echo "${TOTAL[ours]} + $o" | bc -l)"
        printf '%-26s %9.3fs %9.3fs\n' "$(echo "$cmd" | cut -d' ' -f1-2)" "$r" "$o"
    done
    printf '%-26s %9.3fs %9.3fs   ours/reference = 1/%.0f (target: at most 1/20)\n' "total" \
        "${TOTAL[ref]}" "${TOTAL[ours]}" "$(echo "${TOTAL[ref]} / ${TOTAL[ours]}" | bc -l)"
} | tee "$RESULTS/api.txt"

# ---- serve throughput ----------------------------------------------------------------------
rss() { awk '/^VmRSS/ {print $2 " kB"}' "/proc/$SERVE_PID/status"; }
hwm() { awk '/^VmHWM/ {print $2 " kB"}' "/proc/$SERVE_PID/status"; }
cat > post.lua <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Dagster-Cloud-Api-Token"] = "$TOKEN"
wrk.headers["Dagster-Cloud-Deployment"] = "prod"
wrk.body = '{"query":"mutation CliAddOrUpdateLocation(\$document: GenericScalar!) { addOrUpdateLocationFromDocument(document: \$document) { __typename ... on WorkspaceEntry { locationName } ... on PythonError { message } } }","variables":{"document":{"location_name":"load","code_source":{"module_name":"load.defs"},"image":"r/load:1","git":{"commit_hash":"abc"}}}}'
EOF
one="$(curl -s -X POST "$URL/graphql" -H 'Content-Type: application/json' -H "Dagster-Cloud-Api-Token: $TOKEN" \
    -H 'Dagster-Cloud-Deployment: prod' --data-binary "$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" post.lua | sed 's/\\\$/$/g')")"
echo "$one" | grep -q '"WorkspaceEntry"' || { log "the load request does not succeed: $one"; exit 1; }
before="$(rss)"
wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_LOAD}s" --latency -s post.lua "$URL/graphql" > wrk.out
after="$(rss)"; peak="$(hwm)"
# Every request stored a revision (counted in the database: history answers are paged).
revisions="$(python3 -c 'import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM revisions WHERE location_name = ?", ("load",)).fetchone()[0])' \
    "$WORK/data/deployments.sqlite3")"
{
    echo
    echo "serve: addOrUpdateLocationFromDocument, wrk -t1 -c$CONNECTIONS -d${SECONDS_LOAD}s from a second process"
    grep -E "requests in|Requests/sec|Non-2xx|Socket errors|^ +(50|90|99)%|Latency " wrk.out
    echo "revisions stored for the load location: $revisions"
    echo "resident memory of serve: before $before, after the load $after, peak $peak"
} | tee -a "$RESULTS/api.txt"

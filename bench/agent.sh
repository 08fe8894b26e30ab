#!/usr/bin/env bash
# `serve`'s agent and Dagster UI, timed until the real Dagster webserver shows the new code (issue
# 12's targets; nothing here is asserted). One `dagster-deploy serve --dagster-ui` process, real
# engine and registry (scripts/services.sh), python:3.11-slim (scripts/python-base-image.sh).
#
#  code   a code-only change of the example's `ingest` (a new asset), from the start of
#         `dagster-deploy deploy` until the webserver lists the new asset (polled every 0.1 s
#         beside the command, which still has to succeed); vs the reference
#         flow on the same server: `docker build` + `docker push` + `dagster-cloud deployment
#         add-location` (which waits for the load), until the webserver lists the new asset
#         of its own location. Both with warm layer caches (one untimed deploy each first).
#  pex    the same change as a Python-executable location (`serverless deploy-python-executable`,
#         dependencies already on the server) until the webserver lists the new asset.
#  fifty  BENCH_FIFTY (50) locations of one tiny image registered at once (`deployment
#         sync-locations`) until the webserver lists all of them loaded; vs starting the same
#         code servers by hand (`docker run` each, until each port answers); serve's RSS then.
#
#   bash bench/agent.sh
#   BENCH_RUNS=1 BENCH_FIFTY=20 DAGSTER_DEPLOY=/path/to/bin bash bench/agent.sh
#
# Prints a table (median of BENCH_RUNS runs, default 3) and writes it to bench/results/agent.txt.
set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${BENCH_RUNS:-3}"
FIFTY="${BENCH_FIFTY:-50}"
RESULTS="$ROOT/bench/results"
mkdir -p "$RESULTS"
log() { echo "agent.sh: $*" >&2; }

REF="${REF_DAGSTER_CLOUD:-${DAGSTER_CLOUD_REFERENCE:-}}"
[ -n "$REF" ] || REF="$("$ROOT/scripts/reference-cli.sh")"
DAGSTER_DEPLOY_TOOLS_DIR="$("$ROOT/scripts/pex-tools.sh")"
export DAGSTER_DEPLOY_TOOLS_DIR
"$ROOT/scripts/services.sh" start >&2
eval "$("$ROOT/scripts/services.sh" env)"
"$ROOT/scripts/python-base-image.sh"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
apt_need bc bc
apt_need jq jq

REG="$DAGSTER_DEPLOY_TEST_REGISTRY/dagster-deploy-bench"
export DAGSTER_DEPLOY_REGISTRY_USERNAME="$DAGSTER_DEPLOY_TEST_REGISTRY_USER"
export DAGSTER_DEPLOY_REGISTRY_PASSWORD="$DAGSTER_DEPLOY_TEST_REGISTRY_PASSWORD"
export DOCKER_CONFIG="$WORK/docker-config" DOCKER_BUILDKIT=0
echo "$DAGSTER_DEPLOY_REGISTRY_PASSWORD" |
    docker login -u "$DAGSTER_DEPLOY_REGISTRY_USERNAME" --password-stdin "$DAGSTER_DEPLOY_TEST_REGISTRY" >/dev/null 2>&1
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- the server: agent + Dagster UI ------------------------------------------------------
DATA="$WORK/data"
TOKEN="$("$BIN" serve token create --organization --data "$DATA" 2>/dev/null)"
UI="http://127.0.0.1:$(free_port)"
DAGSTER_DEPLOY_REGISTRY_PASSWORD="$DAGSTER_DEPLOY_TEST_REGISTRY_PASSWORD" \
    "$BIN" serve --listen 127.0.0.1:0 --data "$DATA" --dagster-ui "${UI#http://}" \
    --registry "$DAGSTER_DEPLOY_TEST_REGISTRY" --registry-user "$DAGSTER_DEPLOY_TEST_REGISTRY_USER" \
    --code-server-ports "${BENCH_PORTS:-42500-42699}" 2>"$WORK/serve.err" &
SERVE_PID=$!
for _ in $(seq 100); do grep -q "listening on" "$WORK/serve.err" 2>/dev/null && break; sleep 0.1; done
URL="$(grep -o 'http://[0-9.:]*' "$WORK/serve.err" | head -1)"
[ -n "$URL" ] || { cat "$WORK/serve.err" >&2; exit 1; }
export DAGSTER_CLOUD_URL="$URL" DAGSTER_CLOUD_API_TOKEN="$TOKEN"
for _ in $(seq 600); do curl -sf "$UI/server_info" >/dev/null && break; sleep 1; done

# `name asset` pairs of every location the webserver loaded.
loaded() {
    curl -s "$UI/graphql" -H 'content-type: application/json' -d '{"query":"{workspaceOrError{...on Workspace{locationEntries{name locationOrLoadError{__typename ...on RepositoryLocation{repositories{assetNodes{assetKey{path}}}}}}}}}"}' |
        jq -r '.data.workspaceOrError.locationEntries[]? | select(.locationOrLoadError.__typename=="RepositoryLocation") | .name as $n | .locationOrLoadError.repositories[].assetNodes[] | "\($n) \(.assetKey.path | join("/"))"'
}
# Waits (up to 10 minutes) until location $1 has asset $2 in the webserver.
wait_asset() {
    for _ in $(seq 6000); do loaded | grep -qx "$1 $2" && return; sleep 0.1; done
    log "the webserver never showed $1's asset $2"; tail -30 "$WORK/serve.err" >&2; exit 1
}
now() { date +%s.%N; }
# Seconds from starting `CMD ARGS...` (in the background) until location $1 shows asset $2;
# the command must succeed too.
until_asset() {
    local location="$1" asset="$2" start pid
    shift 2
    start=$(now)
    "$@" &
    pid=$!
    wait_asset "$location" "$asset"
    echo "$(now) - $start" | bc
    wait "$pid" || exit 1
}
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }
ratio() { echo "scale=2; $1 / $2" | bc; }
run_ok() { "$@" >"$WORK/last.log" 2>&1 || { log "failed: $*"; tail -30 "$WORK/last.log" >&2; exit 1; }; }

# ---- code: image location, ours vs the reference flow --------------------------------------
REPO="$WORK/repo"
cp -r "$ROOT/examples/monorepo" "$REPO"
sed -i "s#localhost:5000/dagster-example#$REG/example#" "$REPO/dagster_cloud.yaml"
git -C "$REPO" init -q -b main && git -C "$REPO" add -A && git -C "$REPO" -c user.name=b -c user.email=b@b commit -qm init
DEFS="$REPO/ingest/ingest/definitions.py"
ORIG="$(cat "$DEFS")"
# A new asset named $1 in ingest's definitions (replacing the previous change).
change() {
    printf '%s\n\n\n@dg.asset\ndef %s() -> int:\n    return 1\n\n\ndefs = dg.Definitions(assets=[raw_events, event_counts, %s])\n' \
        "$(echo "$ORIG" | grep -v '^defs = ')" "$1" "$1" >"$DEFS"
    # Committed: in CI (CI=true) deploy leaves uncommitted changes out.
    if [ -d "$(dirname "$DEFS")/../../.git" ]; then
        git -C "$REPO" -c user.name=b -c user.email=b@b commit -qam "$1"
    fi
}
log "warming up: the first deploy of the example (builds its images)"
(cd "$REPO" && run_ok "$BIN" deploy)
REF_IMG="$REG/ref-ingest"
ref_flow() {
    local tag="$1"
    run_ok docker build -q -t "$REF_IMG:$tag" "$REPO/ingest"
    run_ok docker push -q "$REF_IMG:$tag"
    DAGSTER_CLOUD_URL="$URL/prod" run_ok "$REF" deployment add-location --location-name ingest_ref \
        --image "$REF_IMG:$tag" --package-name ingest --api-token "$TOKEN"
}
our_deploy() { (cd "$REPO" && run_ok "$BIN" deploy); }
change warm_ref && ref_flow warm
ours_code=() ref_code=()
for i in $(seq "$RUNS"); do
    asset="ours_${i}_$RANDOM"
    change "$asset"
    ours_code+=("$(until_asset ingest "$asset" our_deploy)")
    asset="ref_${i}_$RANDOM"
    change "$asset"
    ref_code+=("$(until_asset ingest_ref "$asset" ref_flow "r$i-$RANDOM")")
    log "code run $i: ours ${ours_code[-1]} s, reference ${ref_code[-1]} s"
done
OURS_CODE="$(printf '%s\n' "${ours_code[@]}" | median)"
REF_CODE="$(printf '%s\n' "${ref_code[@]}" | median)"

# ---- pex: a Python-executable location ---------------------------------------------------
PEXLOC="$WORK/pexloc"
mkdir -p "$PEXLOC"
cp -r "$REPO/ingest/ingest" "$REPO/ingest/pyproject.toml" "$PEXLOC/"
printf 'locations:\n  - location_name: ingest_pex\n    code_source:\n      package_name: ingest\n' >"$PEXLOC/dagster_cloud.yaml"
DEFS="$PEXLOC/ingest/definitions.py"
pex_deploy() {
    (cd "$PEXLOC" && DAGSTER_CLOUD_DEPLOYMENT=prod run_ok "$BIN" serverless deploy-python-executable \
        --location-file dagster_cloud.yaml --location-name ingest_pex)
}
change warm_pex && pex_deploy
pex_times=()
for i in $(seq "$RUNS"); do
    asset="pex_${i}_$RANDOM"
    change "$asset"
    pex_times+=("$(until_asset ingest_pex "$asset" pex_deploy)")
    log "pex run $i: ${pex_times[-1]} s"
done
OURS_PEX="$(printf '%s\n' "${pex_times[@]}" | median)"

# ---- fifty: many locations at once (BENCH_FIFTY=0 skips it) ------------------------------
if [ "$FIFTY" -gt 0 ]; then
TINY="$WORK/tiny"
mkdir -p "$TINY"
printf 'import dagster as dg\n\n@dg.asset\ndef tiny() -> int:\n    return 1\n\ndefs = dg.Definitions(assets=[tiny])\n' >"$TINY/tiny.py"
printf 'FROM python:3.11-slim\nRUN pip install --no-cache-dir dagster\nWORKDIR /app\nCOPY tiny.py .\n' >"$TINY/Dockerfile"
TINY_IMG="$REG/tiny:1"
run_ok docker build -q -t "$TINY_IMG" "$TINY"
run_ok docker push -q "$TINY_IMG"
# By hand: one container per location, until each port answers (api grpc opens it once loaded).
hand_ports=()
start=$(now)
for i in $(seq "$FIFTY"); do
    p=$(free_port); hand_ports+=("$p")
    docker run -d --rm --label dagster-deploy-bench=by-hand -p "127.0.0.1:$p:4000" -w /app "$TINY_IMG" \
        dagster api grpc -h 0.0.0.0 -p 4000 -f tiny.py >/dev/null
done
for p in "${hand_ports[@]}"; do
    until python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1',$p),1); s.settimeout(1); s.send(b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'); sys.exit(0 if s.recv(1) else 1)" 2>/dev/null; do sleep 0.2; done
done
HAND="$(echo "$(now) - $start" | bc | xargs printf '%.2f')"
docker ps -q --filter label=dagster-deploy-bench=by-hand | xargs -r docker stop -t 2 >/dev/null
log "by hand: $FIFTY code servers answering in $HAND s"
{
    echo "locations:"
    for i in $(seq "$FIFTY"); do
        printf '  - location_name: tiny_%02d\n    image: %s\n    code_source:\n      python_file: tiny.py\n    working_directory: /app\n' "$i" "$TINY_IMG"
    done
} >"$WORK/fifty.yaml"
start=$(now)
run_ok "$BIN" deployment sync-locations -w "$WORK/fifty.yaml" --url "$URL/prod" --location-load-timeout 0
for _ in $(seq 6000); do
    [ "$(loaded | grep -c '^tiny_.. tiny$')" -ge "$FIFTY" ] && break; sleep 0.2
done
OURS_FIFTY="$(echo "$(now) - $start" | bc | xargs printf '%.2f')"
RSS_MB="$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$SERVE_PID/status")"
log "serve: $FIFTY locations loaded in the webserver in $OURS_FIFTY s; serve's RSS $RSS_MB MB"
fi

# ---- report --------------------------------------------------------------------------------
{
    echo "agent.sh $(date -u +%Y-%m-%dT%H:%MZ), BENCH_RUNS=$RUNS, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "| row | dagster-deploy | reference | ratio | target |"
    echo "|---|---|---|---|---|"
    echo "| code: image code-only change to LOADED in the webserver | $OURS_CODE s | $REF_CODE s | $(ratio "$OURS_CODE" "$REF_CODE") | <= 0.33 |"
    echo "| pex: Python-executable code-only change to LOADED | $OURS_PEX s | - | - | < 5 s |"
    if [ "$FIFTY" -gt 0 ]; then
        echo "| fifty: $FIFTY locations registered at once to LOADED | $OURS_FIFTY s | $HAND s by hand | $(ratio "$OURS_FIFTY" "$HAND") | <= 2 |"
        echo "| fifty: serve's RSS with $FIFTY code servers | $RSS_MB MB | - | - | < 100 MB |"
    fi
} | tee "$RESULTS/agent.txt"

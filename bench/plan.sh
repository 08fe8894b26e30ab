#!/usr/bin/env bash
# Benchmarks `dagster-deploy plan` and `dagster-deploy --version` against the reference tools
# (`git diff --name-only`, `dagster-cloud --version`) on a large synthetic monorepo, with hyperfine.
#
# Environment (all optional):
#   BENCH_DIR              where the generated repository is cached [/tmp/dagster-deploy-bench]
#   BENCH_LOCATIONS, BENCH_FILES, BENCH_COMMITS, BENCH_LIBS   repository shape [200, 100000, 10000, 20]
#   BENCH_CHANGED_COMMITS  base = HEAD~N, head = HEAD [20]
#   BENCH_RESULTS_DIR      hyperfine JSON exports and the summary [bench/results]
#   BENCH_STRICT=1         exit 1 when a target is missed
#   DAGSTER_DEPLOY         binary to measure; when set, nothing is built
#   REF_DAGSTER_CLOUD      the reference CLI [dagster-cloud on PATH]
#   CARGO_TARGET_DIR       honoured when building and locating the release binary
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
bench_dir=${BENCH_DIR:-/tmp/dagster-deploy-bench}
n_locations=${BENCH_LOCATIONS:-200}
n_files=${BENCH_FILES:-100000}
n_commits=${BENCH_COMMITS:-10000}
n_libs=${BENCH_LIBS:-20}
changed_commits=${BENCH_CHANGED_COMMITS:-20}
results=${BENCH_RESULTS_DIR:-$here/results}
ref_cloud=${REF_DAGSTER_CLOUD:-dagster-cloud}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

ensure_hyperfine() {
    command -v hyperfine >/dev/null && return
    say "installing hyperfine (Debian package)"
    [ "$(id -u)" = 0 ] || die "hyperfine is missing: install it (apt-get install hyperfine) and rerun"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q hyperfine >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && apt-get install -y -q hyperfine >/dev/null; } ||
        die "apt-get could not install hyperfine"
}

build_binary() {
    if [ -n "${DAGSTER_DEPLOY:-}" ]; then
        [ -x "$DAGSTER_DEPLOY" ] || die "DAGSTER_DEPLOY=$DAGSTER_DEPLOY is not an executable"
        bin=$DAGSTER_DEPLOY
        return
    fi
    command -v cargo >/dev/null || die "cargo is missing (or set DAGSTER_DEPLOY to a built binary)"
    say "cargo build --release"
    cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin dagster-deploy
    # Cargo resolves a relative CARGO_TARGET_DIR against the current directory, as we do here.
    bin=$(cd "${CARGO_TARGET_DIR:-$root/target}" && pwd)/release/dagster-deploy
    [ -x "$bin" ] || die "no binary at $bin after cargo build"
}

# The repository is cached per generator version and shape; a stale cache is replaced.
ensure_repo() {
    local gen_hash key
    gen_hash=$(sha256sum "$here/gen_monorepo.py" | cut -c1-12)
    key="$gen_hash-L$n_locations-F$n_files-C$n_commits-l$n_libs"
    repo="$bench_dir/repo-$key"
    stats="$repo.json"
    if [ -d "$repo/.git" ] && [ -s "$stats" ]; then
        say "reusing $repo"
        return
    fi
    mkdir -p "$bench_dir"
    rm -rf "$bench_dir"/repo-*  # other shapes or generator versions
    say "generating $n_locations locations, $n_files files, $n_commits commits in $repo"
    local t0=$SECONDS
    python3 "$here/gen_monorepo.py" "$repo.tmp" --locations "$n_locations" --files "$n_files" \
        --commits "$n_commits" --libs "$n_libs" >"$stats.tmp"
    mv "$repo.tmp" "$repo"
    sed "s#$repo.tmp#$repo#" "$stats.tmp" >"$stats" && rm "$stats.tmp"
    say "generated in $((SECONDS - t0)) s"
}

# check LABEL CMD...: runs CMD once; prints nothing if it succeeds, else why not (one line).
check() {
    local label=$1 err out status=0
    shift
    err=$(mktemp)
    out=$("$@" 2>"$err") || status=$?
    if [ $status -ne 0 ]; then
        echo "n/a ($label failed with exit $status: $(head -c 160 "$err" | tr '\n' ' '))"
    elif [ "$label" = plan ] && [ -z "$out" ]; then
        echo "n/a (plan printed nothing: not implemented yet?)"
    fi
    rm -f "$err"
}

# Quotes argv into one string for hyperfine, which splits it like a shell (-N: no shell spawned).
join_cmd() { local a s=""; for a in "$@"; do s+="$(printf '%q' "$a") "; done; echo "${s% }"; }

# row NAME TARGET_RATIO TARGET_MS OURS_LABEL REF_LABEL -- OURS... -- REF...
# Measures both commands in one hyperfine run (same conditions), or whichever of them works.
row() {
    local name=$1 max_ratio=$2 max_ms=$3 ours_label=$4 ref_label=$5
    shift 5
    [ "$1" = -- ] && shift
    local ours=() ref=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do ours+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    ref=("$@")

    local ours_note ref_note="" args=()
    ours_note=$(check "$name" "${ours[@]}")
    if [ "${#ref[@]}" -gt 0 ]; then
        if ! command -v "${ref[0]}" >/dev/null; then
            ref_note="n/a (install ${ref[0]##*/})"
        else
            ref_note=$(check "${ref[0]##*/}" "${ref[@]}")
        fi
    fi
    [ -z "$ours_note" ] && args+=(--command-name ours "$(join_cmd "${ours[@]}")")
    [ -z "$ref_note" ] && [ "${#ref[@]}" -gt 0 ] &&
        args+=(--command-name reference "$(join_cmd "${ref[@]}")")

    local json="$results/$name.json"
    rm -f "$json"
    if [ "${#args[@]}" -gt 0 ]; then
        say "measuring $name"
        hyperfine -N --style basic --warmup 3 --min-runs 15 --export-json "$json" "${args[@]}" >&2
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$ours_label" "$ref_label" \
        "$json" "$max_ratio" "$max_ms" "$ours_note" "$ref_note" >>"$results/rows.tsv"
}

main() {
    ensure_hyperfine
    command -v python3 >/dev/null || die "python3 is missing"
    build_binary
    ensure_repo
    mkdir -p "$results"
    : >"$results/rows.tsv"

    local base head changed
    base=$(git -C "$repo" rev-parse "HEAD~$changed_commits")
    head=$(git -C "$repo" rev-parse HEAD)
    changed=$(git -C "$repo" diff --name-only "$base" "$head" | wc -l)
    say "base HEAD~$changed_commits ($base), head HEAD ($head): $changed files changed"
    python3 - "$stats" "$base" "$head" "$changed" >"$results/repo.json" <<'EOF'
import json, sys
stats = json.load(open(sys.argv[1]))
stats.update(base=sys.argv[2], head=sys.argv[3], changed_files=int(sys.argv[4]))
json.dump(stats, sys.stdout, indent=2)
EOF

    row plan 1.5 100 "dagster-deploy plan --base A --head B" "git diff --name-only A B" \
        -- "$bin" plan --config "$repo/dagster_cloud.yaml" --base "$base" --head "$head" \
        -- git -C "$repo" diff --name-only "$base" "$head"
    row version "" 5 "dagster-deploy --version" "dagster-cloud --version" \
        -- "$bin" --version \
        -- "$ref_cloud" --version

    python3 "$here/report.py" "$results"
}

main "$@"

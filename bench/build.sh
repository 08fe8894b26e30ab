#!/usr/bin/env bash
# Measures `dagster-deploy build` against the real Docker engine and the htpasswd registry that
# `scripts/services.sh start` provides, and prints a table of figures, ratios and targets:
#
#   parallel   8 small locations, --jobs 8 vs --jobs 1 (same run shape)   target: ratio <= 0.6
#   no-op      re-run with nothing changed: wall time, builds, pushes     target: < 1 s, 0, 0
#   upload     500 MB build directory read by a RUN bind mount: our build vs
#              `docker buildx build` (both through BuildKit's file sync)   target: >= 200 MB/s
#   memory     peak RSS while building 8 locations with large contexts    target: < 100 MB
#   fresh      the realistic uv/dagster location (tests/fixtures/buildkit/realistic) on a fresh
#              runner: code-only change with an empty engine and the cache in the registry,
#              vs its cold build                                           target: <= 0.25x
#              vs `docker build --no-cache` + `docker push` of the same change with the classic
#              builder (what `dagster-cloud ci build` does)                target: <= 0.5x
#              (one run each: a cold build installs dagster from PyPI)
#
# Environment (all optional):
#   BENCH_ROWS          which rows, in order [parallel upload memory fresh_runner]
#   BENCH_RUNS          runs per measured command, the median is reported [3]
#   BENCH_UPLOAD_MB     size of the upload row's build directory [500]
#   BENCH_MEMORY_MB     context size of each of the 8 memory-row locations [100]
#   BENCH_DIR           scratch folder (removed at the end) [mktemp]
#   BENCH_RESULTS_DIR   where summary.txt is written [bench/results]
#   DAGSTER_DEPLOY      binary to measure; when set, nothing is built
#   CARGO_TARGET_DIR    honoured when building the release binary
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
runs=${BENCH_RUNS:-3}
upload_mb=${BENCH_UPLOAD_MB:-500}
memory_mb=${BENCH_MEMORY_MB:-100}
results=${BENCH_RESULTS_DIR:-$here/results}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

build_binary() {
    if [ -n "${DAGSTER_DEPLOY:-}" ]; then
        [ -x "$DAGSTER_DEPLOY" ] || die "DAGSTER_DEPLOY=$DAGSTER_DEPLOY is not an executable"
        bin=$DAGSTER_DEPLOY
        return
    fi
    say "cargo build --release"
    cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin dagster-deploy
    bin=$(cd "${CARGO_TARGET_DIR:-$root/target}" && pwd)/release/dagster-deploy
    [ -x "$bin" ] || die "no binary at $bin after cargo build"
}

services() {
    "$root/scripts/services.sh" start >&2
    eval "$("$root/scripts/services.sh" env)"
    export DAGSTER_DEPLOY_REGISTRY_USERNAME=$DAGSTER_DEPLOY_TEST_REGISTRY_USER
    export DAGSTER_DEPLOY_REGISTRY_PASSWORD=$DAGSTER_DEPLOY_TEST_REGISTRY_PASSWORD
    # `docker build` uses the classic builder: what `dagster-cloud ci build` gets without buildx.
    export DOCKER_BUILDKIT=0
    unset CI GITHUB_ACTIONS GITLAB_CI DAGSTER_BUILD_STATEDIR
}

git_q() {
    git -c user.name=bench -c user.email=bench@example.com -c init.defaultBranch=main "$@"
}

# make_repo DIR N_LOCATIONS DOCKERFILE_BODY: one location per folder `loc<i>`, each with its own
# repository path in the registry, committed. `@LOC@` in the body becomes the location's name.
make_repo() {
    local dir=$1 n=$2 body=$3 i run_id
    run_id=$(date +%s%N)
    mkdir -p "$dir"
    {
        echo "locations:"
        for i in $(seq 1 "$n"); do
            printf '  - location_name: loc%s\n    code_source:\n      package_name: loc%s\n' "$i" "$i"
            printf '    build:\n      directory: loc%s\n      registry: %s/bench-%s/loc%s\n' \
                "$i" "$DAGSTER_DEPLOY_TEST_REGISTRY" "$run_id" "$i"
        done
    } >"$dir/dagster_cloud.yaml"
    for i in $(seq 1 "$n"); do
        mkdir -p "$dir/loc$i/src"
        printf 'FROM %s\n%s' "$DAGSTER_DEPLOY_TEST_BASE_IMAGE" "${body//@LOC@/loc$i}" >"$dir/loc$i/Dockerfile"
        for f in $(seq 1 20); do echo "print('location $i file $f')" >"$dir/loc$i/src/m$f.py"; done
    done
    echo '*.bin' >"$dir/.gitignore"
    git_q -C "$dir" init -q
    git_q -C "$dir" add -A
    git_q -C "$dir" commit -q -m bench
}

# A Dockerfile body that reads the whole context: BuildKit fetches a context only for the steps
# that use it, and the bind mount needs all of it (without adding it to a layer).
# shellcheck disable=SC2016 # $NONCE is the Dockerfile's
reads_context='ARG NONCE
RUN --mount=type=bind,target=/ctx cat /ctx/*.bin | wc -c > /bytes && echo $NONCE > /nonce
'

now() { date +%s.%N; }

# median of the numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# timed OUTFILE CMD...: runs CMD (stdout to OUTFILE, stderr to OUTFILE.err), prints seconds.
timed() {
    local out=$1 t0 t1
    shift
    t0=$(now)
    "$@" >"$out" 2>"$out.err" || { cat "$out.err" >&2; die "failed: $*"; }
    t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f\n", b - a}'
}

json_field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$1" "$2"; }

row() { printf '%-9s %-44s %-22s %s\n' "$1" "$2" "$3" "$4" | tee -a "$results/summary.txt"; }

verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { ok = (op == "<=") ? v <= t : (op == "<") ? v < t : v >= t; print ok ? "met" : "MISSED" }'; }

bench_parallel() {
    local repo=$scratch/parallel seq=() par=() i s p
    # Each run gets its own NONCE build argument: a new image key and no layer cache hit, so
    # every run really builds the 8 images (a few steps each, like a small Python location).
    # Each location's steps differ (@LOC@): with identical steps the classic builder lets a
    # sequential run reuse the first location's layers while parallel builds all redo them,
    # which measures the layer cache, not parallelism.
    make_repo "$repo" 8 $'ARG NONCE\nRUN echo "$NONCE @LOC@" > /nonce && dd if=/dev/urandom of=/data bs=1M count=8 2>/dev/null && md5sum /data > /data.md5\nCOPY src /app/src\nRUN find /app -name "*.py" | sort > /app/files\n'
    for i in $(seq 1 "$runs"); do
        s=$(cd "$repo" && timed "$scratch/seq.json" "$bin" build --all --json --jobs 1 --no-human-tag \
            --no-cache-from --network none --build-arg "NONCE=seq-$i-$RANDOM")
        p=$(cd "$repo" && timed "$scratch/par.json" "$bin" build --all --json --jobs 8 --no-human-tag \
            --no-cache-from --network none --build-arg "NONCE=par-$i-$RANDOM")
        [ "$(json_field "$scratch/par.json" 'd["summary"]["built"]')" = 8 ] || die "parallel run did not build 8"
        seq+=("$s")
        par+=("$p")
        say "parallel run $i: sequential ${s}s, parallel ${p}s"
    done
    seq_med=$(printf '%s\n' "${seq[@]}" | median)
    par_med=$(printf '%s\n' "${par[@]}" | median)
    ratio=$(awk -v a="$par_med" -v b="$seq_med" 'BEGIN {printf "%.2f", a / b}')
    row parallel "8 locations: --jobs 8 ${par_med}s vs --jobs 1 ${seq_med}s" "ratio <= 0.6" \
        "$ratio ($(verdict "$ratio" '<=' 0.6))"

    # No-op: build once with a known NONCE, then time the same command with nothing changed.
    local times=() t built pushed
    (cd "$repo" && "$bin" build --all --json --jobs 8 --no-human-tag --no-cache-from --network none \
        --build-arg NONCE=noop >/dev/null 2>&1)
    for i in $(seq 1 5); do
        t=$(cd "$repo" && timed "$scratch/noop.json" "$bin" build --all --json --jobs 8 --no-human-tag \
            --no-cache-from --network none --build-arg NONCE=noop)
        times+=("$t")
    done
    built=$(json_field "$scratch/noop.json" 'd["summary"]["built"]')
    pushed=$(json_field "$scratch/noop.json" 'sum(len(r["pushed_tags"]) for r in d["results"])')
    local noop_med
    noop_med=$(printf '%s\n' "${times[@]}" | median)
    row no-op "re-run, nothing changed (8 reused)" "< 1 s, 0 builds, 0 pushes" \
        "${noop_med}s, $built builds, $pushed pushes ($(verdict "$noop_med" '<' 1))"
    # And the everyday no-op: nothing changed since the base, so the plan builds nothing.
    t=$(cd "$repo" && timed "$scratch/plan-noop.json" "$bin" build --json --base HEAD)
    row no-op "plan says nothing changed (--base HEAD)" "< 1 s" "${t}s ($(verdict "$t" '<' 1))"
}

# docker_build_push DIR N: `docker buildx build` then `docker push`, logged in through a private
# config. buildx keeps a synced copy of a context per folder path, so each run gets the folder
# under a new path (hard links): like ours, every run sends the whole context.
docker_build_push() {
    local tag=$DAGSTER_DEPLOY_TEST_REGISTRY/bench-upload-docker:$2 dir=$scratch/upload-ref-$2
    cp -al "$1" "$dir" &&
        docker --config "$scratch/docker-config" buildx build -q \
            --build-arg "NONCE=docker-$2-$RANDOM" -t "$tag" "$dir" >/dev/null &&
        docker --config "$scratch/docker-config" push -q "$tag"
}

# A private docker CLI config logged in to the test registry (for the reference pushes).
write_docker_config() {
    mkdir -p "$scratch/docker-config"
    printf '{"auths": {"%s": {"auth": "%s"}}}' "$DAGSTER_DEPLOY_TEST_REGISTRY" \
        "$(printf '%s:%s' "$DAGSTER_DEPLOY_REGISTRY_USERNAME" "$DAGSTER_DEPLOY_REGISTRY_PASSWORD" | base64 -w0)" \
        >"$scratch/docker-config/config.json"
}

bench_upload() {
    local repo=$scratch/upload ours=() theirs=() i o d bytes
    make_repo "$repo" 1 "$reads_context"
    say "writing a ${upload_mb} MB build directory"
    for i in $(seq 1 5); do
        head -c "$((upload_mb * 1024 * 1024 / 5))" /dev/urandom >"$repo/loc1/part$i.bin"
    done
    bytes=$(du -sb "$repo/loc1" | cut -f1)
    for i in $(seq 1 "$runs"); do
        o=$(cd "$repo" && timed "$scratch/up.json" "$bin" build --all --json --no-human-tag --no-cache-from \
            --max-context-size 2G --build-arg "NONCE=ours-$i-$RANDOM")
        # The same work as ours: build, then push one tag to the same registry.
        d=$(timed "$scratch/docker.out" docker_build_push "$repo/loc1" "$i")
        docker rmi "$DAGSTER_DEPLOY_TEST_REGISTRY/bench-upload-docker:$i" >/dev/null 2>&1 || true
        ours+=("$o")
        theirs+=("$d")
        say "upload run $i: ours ${o}s, docker buildx build ${d}s"
    done
    local o_med d_med mbps ratio
    o_med=$(printf '%s\n' "${ours[@]}" | median)
    d_med=$(printf '%s\n' "${theirs[@]}" | median)
    mbps=$(awk -v b="$bytes" -v t="$o_med" 'BEGIN {printf "%.0f", b / 1e6 / t}')
    ratio=$(awk -v a="$d_med" -v b="$o_med" 'BEGIN {printf "%.2f", a / b}')
    row upload "$((bytes / 1000000)) MB context: ours ${o_med}s, buildx build+push ${d_med}s" \
        ">= 200 MB/s" "$mbps MB/s, docker/ours time $ratio ($(verdict "$mbps" '>=' 200))"
}

bench_memory() {
    local repo=$scratch/memory i rss
    make_repo "$repo" 8 "$reads_context"
    say "writing 8 x ${memory_mb} MB build directories"
    for i in $(seq 1 8); do
        head -c "$((memory_mb * 1024 * 1024))" /dev/urandom >"$repo/loc$i/big.bin"
    done
    (cd "$repo" && /usr/bin/time -f '%M' -o "$scratch/rss" "$bin" build --all --json --jobs 8 \
        --no-human-tag --no-cache-from --max-context-size 2G --build-arg "NONCE=mem-$RANDOM" \
        >"$scratch/mem.json" 2>"$scratch/mem.err") || { cat "$scratch/mem.err" >&2; die "memory run failed"; }
    rss=$(awk '{printf "%.1f", $1 / 1024}' "$scratch/rss")
    row memory "8 locations x ${memory_mb} MB contexts, --jobs 8" "< 100 MB" \
        "$rss MB ($(verdict "$rss" '<' 100))"
}

# forget_build_cache MARKER: removes the engine's build cache records whose description has
# MARKER and every record built on them (other builds on the engine keep theirs).
forget_build_cache() {
    local ids
    for _ in 1 2 3 4 5; do
        ids=$(curl -sf --unix-socket "${DOCKER_HOST#unix://}" http://engine/system/df | python3 -c '
import json, sys
records = json.load(sys.stdin).get("BuildCache") or []
doomed = {r["ID"] for r in records if sys.argv[1] in (r.get("Description") or "")}
while True:
    more = {r["ID"] for r in records
            if doomed & set((r.get("Parents") or []) + [r.get("Parent") or ""])}
    if more <= doomed:
        break
    doomed |= more
print(" ".join("--filter id=" + i for i in sorted(doomed)))' "$1")
        [ -n "$ids" ] || return 0
        # shellcheck disable=SC2086 # one --filter per id
        docker builder prune -f $ids >/dev/null
    done
    die "build cache records of $1 are still in use"
}

bench_fresh_runner() {
    "$root/scripts/python-base-image.sh"
    local repo=$scratch/fresh run_id salt cold warm classic image ratio_cold ratio_classic cached
    run_id=$(date +%s%N)
    salt="bench-fresh-$run_id"
    mkdir -p "$repo"
    cp -r "$root/tests/fixtures/buildkit/realistic" "$repo/realistic"
    printf 'locations:\n  - location_name: realistic\n    code_source:\n      module_name: realistic.definitions\n    build:\n      directory: realistic\n      registry: %s/bench-fresh-%s\n' \
        "$DAGSTER_DEPLOY_TEST_REGISTRY" "$run_id" >"$repo/dagster_cloud.yaml"
    git_q -C "$repo" init -q
    git_q -C "$repo" add -A
    git_q -C "$repo" commit -q -m realistic
    say "fresh runner: cold build (installs dagster from PyPI)"
    cold=$(cd "$repo" && timed "$scratch/cold.json" "$bin" build --all --json --no-human-tag \
        --build-arg "CACHE_SALT=$salt")
    # A fresh runner: this build's images and build cache are gone from the engine.
    json_field "$scratch/cold.json" '"\n".join(d["results"][0]["pushed_tags"])' | xargs docker rmi >/dev/null
    forget_build_cache "$salt"
    echo 'GREETING = "changed"' >"$repo/realistic/realistic/greeting.py"
    git_q -C "$repo" commit -q -am "code only"
    warm=$(cd "$repo" && timed "$scratch/warm.json" "$bin" build --all --json --no-human-tag \
        --build-arg "CACHE_SALT=$salt")
    cached=$(json_field "$scratch/warm.json" '"%s of %s" % (d["results"][0]["cached_steps"], d["results"][0]["steps"])')
    json_field "$scratch/warm.json" '"\n".join(d["results"][0]["pushed_tags"])' | xargs docker rmi >/dev/null
    # The same change with the classic builder and no cache, then a push: the uv guide's steps
    # without BuildKit's mounts (the classic builder has none), as `dagster-cloud ci build` runs.
    sed -e 's/^RUN --mount=type=cache,target=\/root\/.cache\/uv \\$/COPY uv.lock pyproject.toml .\/\nRUN \\/' \
        -e '/--mount=type=bind/d' -e 's/^RUN --mount=type=cache,target=\/root\/.cache\/uv /RUN /' \
        "$repo/realistic/Dockerfile" >"$scratch/Dockerfile.classic"
    image=$DAGSTER_DEPLOY_TEST_REGISTRY/bench-fresh-classic-$run_id:1
    classic=$(timed "$scratch/classic.out" docker_build_push_file "$repo/realistic" "$scratch/Dockerfile.classic" \
        "$image" "CACHE_SALT=classic-$run_id")
    docker rmi "$image" >/dev/null 2>&1 || true
    ratio_cold=$(awk -v a="$warm" -v b="$cold" 'BEGIN {printf "%.2f", a / b}')
    ratio_classic=$(awk -v a="$warm" -v b="$classic" 'BEGIN {printf "%.2f", a / b}')
    row fresh "code change, fresh runner ${warm}s ($cached cached) vs cold ${cold}s" "<= 0.25x" \
        "$ratio_cold ($(verdict "$ratio_cold" '<=' 0.25))"
    row fresh "same vs classic docker build+push, no cache ${classic}s" "<= 0.5x" \
        "$ratio_classic ($(verdict "$ratio_classic" '<=' 0.5))"
}

# docker_build_push_file CONTEXT DOCKERFILE TAG BUILD_ARG: classic `docker build --no-cache`, push.
docker_build_push_file() {
    docker --config "$scratch/docker-config" build -q --no-cache -f "$2" --build-arg "$4" -t "$3" "$1" &&
        docker --config "$scratch/docker-config" push -q "$3"
}

main() {
    command -v python3 >/dev/null || die "python3 is missing"
    [ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package time)"
    build_binary
    services
    scratch=${BENCH_DIR:-$(mktemp -d)}
    trap 'rm -rf "$scratch"' EXIT
    mkdir -p "$results"
    : >"$results/summary.txt"
    row row measurement target result
    say "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    write_docker_config
    for row_name in ${BENCH_ROWS:-parallel upload memory fresh_runner}; do
        "bench_$row_name"
    done
    echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" |
        tee -a "$results/summary.txt"
    say "table written to $results/summary.txt"
}

main "$@"

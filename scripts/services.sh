#!/usr/bin/env bash
# Real services for the Docker build tests: a Docker engine, an htpasswd-protected registry on
# 127.0.0.1:5000 and a tiny local base image (no registry on the internet is reachable, so tests
# build FROM an image made here).
#
#   scripts/services.sh start   install what is missing (Debian, root), start, create the base image
#   scripts/services.sh env     print the variables the tests read (eval "$(scripts/services.sh env)")
#   scripts/services.sh stop    stop only what `start` started for the same owner, and then remove
#                               that registry's data
#
# Idempotent: `start` twice leaves one engine and one registry. Each service records who started
# it (DAGSTER_DEPLOY_SERVICES_OWNER, default `manual`); `stop` stops only the services its owner
# started. So scripts/test.sh (owner `test-<pid>`) uses a registry started by hand for the
# quickstart and leaves it, and its data, alone; an engine that was already answering before
# `start` (started by someone else) is used and never stopped.
#
# The engine is Docker 26.1 (API 1.45, BuildKit 0.13) with docker-cli and the docker-buildx 0.13
# plugin, taken from Debian 13 (trixie) on Debian 12: bookworm's docker.io 20.10 has a BuildKit
# whose Dockerfile frontend predates heredocs and `COPY --link`, and no buildx to compare
# against. `start` adds a trixie apt source pinned at priority 100 (so nothing else ever comes
# from trixie; idempotent) and installs exactly those three packages from it with `pkg/trixie`;
# their dependencies (containerd, runc, tini) stay bookworm's. (`apt-get -t trixie` would not do:
# on a clean machine it pulls libc6, dpkg and base-files from trixie too.) An existing 20.10
# install is upgraded; an engine already running keeps its version until restarted (we warn).
#
# Seen on the project's Debian 12 machines (no systemd, so the packages' own services never
# start): dockerd runs with its defaults — overlay2, cgroupfs on cgroup v1, iptables and the
# docker0 bridge all work; no --storage-driver/--iptables options were needed. Tests run
# containers and builds with `--network none`: nothing leaves the machine.
#
# Settings (environment):
#   DAGSTER_DEPLOY_SERVICES_DIR  state folder (pid files, logs, registry data)   default /tmp/dagster-deploy-services
#   DAGSTER_DEPLOY_DOCKERD_ARGS  extra dockerd arguments, e.g. "--iptables=false --storage-driver=vfs"
set -euo pipefail

STATE_DIR="${DAGSTER_DEPLOY_SERVICES_DIR:-/tmp/dagster-deploy-services}"
OWNER="${DAGSTER_DEPLOY_SERVICES_OWNER:-manual}"
DOCKER_SOCK=/var/run/docker.sock
DOCKER_HOST_VALUE="unix://${DOCKER_SOCK}"
REGISTRY_LISTEN=127.0.0.1:5000
# The engine treats 127.0.0.0/8 registries as insecure (plain HTTP) by default, so no daemon
# configuration is needed for pushes to this address.
REGISTRY_ADDR=localhost:5000
REGISTRY_USER=dagster-test
BASE_IMAGE=dagster-deploy-test/base:latest
# Installed from bookworm (openssl: the token-registry test makes its signing key), with the
# engine's dependencies listed so that they are not taken from trixie (see above).
PACKAGES=(docker-registry apache2-utils busybox-static openssl containerd runc tini)
ENGINE_PACKAGES=(docker.io docker-cli docker-buildx)
ENGINE_RELEASE=trixie
ENGINE_MIN_VERSION=26.1
TRIXIE_SOURCES=/etc/apt/sources.list.d/dagster-deploy-trixie.sources
TRIXIE_PIN=/etc/apt/preferences.d/dagster-deploy-trixie

log() { echo "services.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

docker_answers() { [ -S "$DOCKER_SOCK" ] && DOCKER_HOST="$DOCKER_HOST_VALUE" docker info >/dev/null 2>&1; }

installed_version() { dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null | sed -n 's/^install ok installed //p'; }

# True when `pkg` is installed at `min` or later (`min` empty: any version).
has_package() {
    local version
    version="$(installed_version "$1")"
    [ -n "$version" ] && { [ -z "${2:-}" ] || dpkg --compare-versions "$version" ge "$2"; }
}

# The trixie source, signed by the Debian archive key bookworm already trusts, pinned low.
# Rewriting the same two files is idempotent.
add_engine_source() {
    printf '%s\n' "Types: deb" "URIs: http://deb.debian.org/debian" "Suites: $ENGINE_RELEASE" \
        "Components: main" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" \
        >"$TRIXIE_SOURCES"
    printf '%s\n' "Package: *" "Pin: release n=$ENGINE_RELEASE" "Pin-Priority: 100" >"$TRIXIE_PIN"
}

install_missing() {
    local missing=() engine=()
    for pkg in "${PACKAGES[@]}"; do
        has_package "$pkg" || missing+=("$pkg")
    done
    for pkg in "${ENGINE_PACKAGES[@]}"; do
        # docker-buildx has its own version numbers; docker.io and docker-cli must be 26.1+.
        local min="$ENGINE_MIN_VERSION"
        [ "$pkg" = docker-buildx ] && min=""
        has_package "$pkg" "$min" || engine+=("$pkg/$ENGINE_RELEASE")
    done
    if [ "${#missing[@]}" -eq 0 ] && [ "${#engine[@]}" -eq 0 ]; then
        return
    fi
    [ "$(id -u)" -eq 0 ] || die "must run as root to install: ${missing[*]} ${engine[*]}"
    add_engine_source
    log "installing ${missing[*]} ${engine[*]}"
    apt-get update -qq >/dev/null
    # All engine packages at once (docker-cli Breaks docker.io << 26.1.4, so an upgrade from
    # 20.10 must move them together); needrestart (when present) would otherwise try to prompt.
    DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq \
        "${PACKAGES[@]}" "${ENGINE_PACKAGES[@]/%//$ENGINE_RELEASE}" >/dev/null
}

start_dockerd() {
    if docker_answers; then
        if pid_alive "$STATE_DIR/dockerd.pid"; then
            log "docker engine already running (pid $(cat "$STATE_DIR/dockerd.pid"))"
        else
            log "docker engine already answering on $DOCKER_SOCK (not started here; stop leaves it)"
        fi
        warn_old_engine
        return
    fi
    if pid_alive "$STATE_DIR/dockerd.pid"; then
        die "dockerd (pid $(cat "$STATE_DIR/dockerd.pid")) runs but does not answer; see $STATE_DIR/dockerd.log"
    fi
    log "starting dockerd (log: $STATE_DIR/dockerd.log)"
    # shellcheck disable=SC2086 # extra args are meant to be split
    nohup dockerd --host "$DOCKER_HOST_VALUE" ${DAGSTER_DEPLOY_DOCKERD_ARGS:-} \
        >"$STATE_DIR/dockerd.log" 2>&1 </dev/null &
    echo $! >"$STATE_DIR/dockerd.pid"
    echo "$OWNER" >"$STATE_DIR/dockerd.owner"
    for _ in $(seq 120); do
        if docker_answers; then
            log "docker engine is up"
            return
        fi
        if ! pid_alive "$STATE_DIR/dockerd.pid"; then
            tail -n 30 "$STATE_DIR/dockerd.log" >&2 || true
            rm -f "$STATE_DIR/dockerd.pid"
            die "dockerd exited during start (log above). In a sandbox, try" \
                "DAGSTER_DEPLOY_DOCKERD_ARGS='--iptables=false --bridge=none --storage-driver=vfs'"
        fi
        sleep 0.5
    done
    tail -n 30 "$STATE_DIR/dockerd.log" >&2 || true
    die "dockerd did not answer on $DOCKER_SOCK within 60 s (log above)"
}

# An engine started before an upgrade still runs the old version until someone restarts it.
warn_old_engine() {
    local running
    running="$(DOCKER_HOST="$DOCKER_HOST_VALUE" docker version --format '{{.Server.Version}}' 2>/dev/null || true)"
    if [ -n "$running" ] && ! dpkg --compare-versions "${running%%+*}" ge "$ENGINE_MIN_VERSION"; then
        log "warning: the running engine is Docker $running; heredocs and COPY --link need" \
            "$ENGINE_MIN_VERSION+ (installed: $(installed_version docker.io)): restart it"
    fi
}

registry_answers() {
    # An htpasswd-protected registry answers /v2/ with 401 without credentials.
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$REGISTRY_LISTEN/v2/" 2>/dev/null)" = "401" ]
}

start_registry() {
    if pid_alive "$STATE_DIR/registry.pid" && registry_answers; then
        log "registry already running (pid $(cat "$STATE_DIR/registry.pid"))"
        return
    fi
    if curl -s -o /dev/null "http://$REGISTRY_LISTEN/" 2>/dev/null; then
        die "something not started by this script already listens on $REGISTRY_LISTEN"
    fi
    local dir="$STATE_DIR/registry"
    mkdir -p "$dir"
    if [ ! -s "$dir/password" ]; then
        head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$dir/password"
    fi
    htpasswd -Bbn "$REGISTRY_USER" "$(cat "$dir/password")" >"$dir/htpasswd"
    rm -rf "$dir/data"
    mkdir -p "$dir/data"
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $REGISTRY_LISTEN
auth:
  htpasswd:
    realm: dagster-deploy-test
    path: $dir/htpasswd
EOF
    log "starting registry on $REGISTRY_LISTEN (log: $STATE_DIR/registry.log)"
    nohup docker-registry serve "$dir/config.yml" >"$STATE_DIR/registry.log" 2>&1 </dev/null &
    echo $! >"$STATE_DIR/registry.pid"
    echo "$OWNER" >"$STATE_DIR/registry.owner"
    for _ in $(seq 60); do
        if registry_answers; then
            log "registry is up"
            return
        fi
        if ! pid_alive "$STATE_DIR/registry.pid"; then
            tail -n 30 "$STATE_DIR/registry.log" >&2 || true
            rm -f "$STATE_DIR/registry.pid"
            die "docker-registry exited during start (log above)"
        fi
        sleep 0.5
    done
    die "registry did not answer on $REGISTRY_LISTEN within 30 s; see $STATE_DIR/registry.log"
}

create_base_image() {
    if DOCKER_HOST="$DOCKER_HOST_VALUE" docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "base image $BASE_IMAGE present"
        return
    fi
    local busybox
    busybox="$(command -v busybox || true)"
    [ -n "$busybox" ] || die "busybox not found (package busybox-static)"
    # A dynamically linked busybox would not run in an image without libc.
    if ! file_is_static "$busybox"; then
        die "$busybox is not statically linked; install busybox-static"
    fi
    local rootfs
    rootfs="$(mktemp -d)"
    mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/etc"
    cp "$busybox" "$rootfs/bin/busybox"
    # Every applet as a symlink, so RUN lines can use sh, find, sort, stat, cat, ls, ...
    local applet
    for applet in $("$busybox" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
    done
    echo "root:x:0:0:root:/:/bin/sh" >"$rootfs/etc/passwd"
    echo "root:x:0:" >"$rootfs/etc/group"
    tar -C "$rootfs" -c . | DOCKER_HOST="$DOCKER_HOST_VALUE" docker import \
        --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
    log "created base image $BASE_IMAGE"
}

file_is_static() {
    # ELF program headers of a static binary have no PT_INTERP; busybox-static is also named so.
    ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'Requesting program interpreter'
}

# Stops a service this owner started; returns 1 (and leaves it) when another owner started it.
stop_pid() {
    local name="$1" pidfile="$STATE_DIR/$1.pid"
    if ! pid_alive "$pidfile"; then
        rm -f "$pidfile" "$STATE_DIR/$name.owner"
        return
    fi
    local owner
    owner="$(cat "$STATE_DIR/$name.owner" 2>/dev/null || echo manual)"
    if [ "$owner" != "$OWNER" ]; then
        log "leaving $name running (started by $owner, not $OWNER)"
        return 1
    fi
    local pid
    pid="$(cat "$pidfile")"
    log "stopping $name (pid $pid)"
    kill "$pid"
    for _ in $(seq 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not stop in 30 s; sending SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile" "$STATE_DIR/$name.owner"
}

cmd_start() {
    install_missing
    mkdir -p "$STATE_DIR"
    start_dockerd
    start_registry
    create_base_image
}

cmd_stop() {
    # The registry's data goes with the registry, never from under one that stays running.
    if stop_pid registry; then
        rm -rf "$STATE_DIR/registry/data"
    fi
    stop_pid dockerd || true
}

cmd_env() {
    local pw="$STATE_DIR/registry/password"
    [ -s "$pw" ] || die "services not started (no $pw); run: $0 start"
    echo "export DOCKER_HOST=$DOCKER_HOST_VALUE"
    echo "export DAGSTER_DEPLOY_TEST_REGISTRY=$REGISTRY_ADDR"
    echo "export DAGSTER_DEPLOY_TEST_REGISTRY_USER=$REGISTRY_USER"
    echo "export DAGSTER_DEPLOY_TEST_REGISTRY_PASSWORD=$(cat "$pw")"
    echo "export DAGSTER_DEPLOY_TEST_BASE_IMAGE=$BASE_IMAGE"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
env) cmd_env ;;
*)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Makes a real Python base image on the local engine, tagged with the public name Dockerfiles use
# (`python:3.11-slim`), so they build unchanged where no registry image can be pulled. Built from
# Debian packages: `debootstrap --variant=minbase` of Debian 12 (whose python3 is 3.11) with pip
# and venv, then `docker import`. The root filesystem tarball is cached under
# ~/.cache/dagster-deploy (about 200 MB), so later runs only import it; the image itself is
# reused while the engine has it.
#
#   scripts/python-base-image.sh            make python:3.11-slim when the engine lacks it
#
# Like the official image: `python` and `pip` are on PATH and pip installs into the system
# Python (Debian's "externally managed" marker is removed), HOME is /root, LANG is C.UTF-8.
# It trusts the certificate authorities of this machine (SSL_CERT_FILE points uv at them).
set -euo pipefail

IMAGE=python:3.11-slim
SUITE=bookworm
MIRROR="${DAGSTER_DEPLOY_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE_DIR="${DAGSTER_DEPLOY_CACHE_DIR:-$HOME/.cache/dagster-deploy}"
TARBALL="$CACHE_DIR/python-3.11-$SUITE-rootfs.tar"

log() { echo "python-base-image.sh: $*" >&2; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    exit 0
fi

if [ ! -s "$TARBALL" ]; then
    if ! command -v debootstrap >/dev/null; then
        [ "$(id -u)" -eq 0 ] || { log "error: must run as root to install debootstrap"; exit 1; }
        log "installing debootstrap"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    fi
    mkdir -p "$CACHE_DIR"
    root="$(mktemp -d)"
    trap 'rm -rf "$root"' EXIT
    log "debootstrap $SUITE with python3 into $root (a few minutes, once)"
    debootstrap --variant=minbase \
        --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
        "$SUITE" "$root" "$MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1 ||
        { tail -n 30 "$CACHE_DIR/debootstrap.log" >&2; log "error: debootstrap failed"; exit 1; }
    rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
    # Certificate authorities this machine trusts beyond Debian's (a TLS-inspecting proxy on
    # the way to PyPI, say), so pip and uv inside builds trust what the host trusts.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
        chroot "$root" update-ca-certificates >/dev/null
    fi
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
    tar -C "$root" --numeric-owner -cf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
fi

log "importing $TARBALL as $IMAGE"
docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV HOME=/root' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' \
    "$TARBALL" "$IMAGE" >/dev/null

#!/bin/sh
# Installs a dagster-deploy release binary after checking it against the SHA-256 published with
# it, and prints the installed path on stdout. Every CI template (and action.yml) calls this one
# script, so downloading and checking is written once. POSIX sh with curl, wget or python3: it
# runs in Alpine/busybox and python:*-slim images too.
#
#   sh install.sh [VERSION]
#
# Settings (environment):
#   DAGSTER_DEPLOY_VERSION       version to install, e.g. 0.1.0 (or the first argument)
#   DAGSTER_DEPLOY_INSTALL_DIR   where the binary goes [default: $HOME/.local/bin]
#   DAGSTER_DEPLOY_REPOSITORY    GitHub repository publishing the releases [default below]
#   DAGSTER_DEPLOY_DOWNLOAD_URL  base URL of the downloads, for mirrors and tests
#                                [default: https://github.com/$DAGSTER_DEPLOY_REPOSITORY/releases/download]
#   DAGSTER_DEPLOY_TARGET        release target, when detection is not wanted
#
# It fetches $DAGSTER_DEPLOY_DOWNLOAD_URL/v$VERSION/dagster-deploy-$TARGET.tar.gz and its
# .sha256 file (`<hex>  <archive>`), and installs nothing unless the checksum matches and the
# binary reports the version asked for.
set -eu

log() { echo "install.sh: $*" >&2; }
fail() {
    log "error: $*"
    exit 1
}

VERSION="${1:-${DAGSTER_DEPLOY_VERSION:-}}"
VERSION="${VERSION#v}"
[ -n "$VERSION" ] || fail "no version: set DAGSTER_DEPLOY_VERSION (e.g. 0.1.0) or pass it as the first argument"
REPOSITORY="${DAGSTER_DEPLOY_REPOSITORY:-dagster-deploy/dagster-deploy}"
BASE_URL="${DAGSTER_DEPLOY_DOWNLOAD_URL:-https://github.com/$REPOSITORY/releases/download}"
INSTALL_DIR="${DAGSTER_DEPLOY_INSTALL_DIR:-${HOME:?HOME is not set}/.local/bin}"

detect_target() {
    os="$(uname -s)"
    arch="$(uname -m)"
    case "$arch" in
        x86_64 | amd64) arch=x86_64 ;;
        aarch64 | arm64) arch=aarch64 ;;
        *) fail "no release for the $arch processor; build from source with cargo install" ;;
    esac
    case "$os" in
        # musl builds are static: they run on any Linux distribution, glibc or not.
        Linux) echo "$arch-unknown-linux-musl" ;;
        Darwin) echo "$arch-apple-darwin" ;;
        *) fail "no release for $os; build from source with cargo install" ;;
    esac
}

download() { # URL FILE
    if command -v curl >/dev/null 2>&1; then
        curl --fail --silent --show-error --location --retry 3 --output "$2" "$1"
    elif command -v wget >/dev/null 2>&1; then
        wget -q -O "$2" "$1"
    elif command -v python3 >/dev/null 2>&1; then # python:*-slim images have neither
        python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$1" "$2" 2>/dev/null
    else
        fail "none of curl, wget or python3 is installed"
    fi || fail "cannot download $1"
}

sha256_of() { # FILE
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        fail "neither sha256sum nor shasum is installed: cannot check the download"
    fi
}

TARGET="${DAGSTER_DEPLOY_TARGET:-$(detect_target)}"
ARCHIVE="dagster-deploy-$TARGET.tar.gz"
URL="$BASE_URL/v$VERSION/$ARCHIVE"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT INT TERM

log "downloading $URL"
download "$URL" "$TMP/$ARCHIVE"
download "$URL.sha256" "$TMP/$ARCHIVE.sha256"

# Compare the hex digests ourselves: `sha256sum -c` would check whichever file the .sha256
# names, and busybox and macOS spell its options differently.
expected="$(cut -d' ' -f1 "$TMP/$ARCHIVE.sha256" | tr 'A-F' 'a-f')"
actual="$(sha256_of "$TMP/$ARCHIVE")"
case "$expected" in
    *[!0-9a-f]* | "") fail "$URL.sha256 holds no SHA-256 digest" ;;
esac
[ "${#expected}" -eq 64 ] || fail "$URL.sha256 holds no SHA-256 digest"
[ "$expected" = "$actual" ] || fail "checksum mismatch for $ARCHIVE: expected $expected, got $actual; nothing was installed"

tar -xzf "$TMP/$ARCHIVE" -C "$TMP" dagster-deploy || fail "$ARCHIVE holds no dagster-deploy binary"
chmod 755 "$TMP/dagster-deploy"
reported="$("$TMP/dagster-deploy" --version 2>/dev/null)" || fail "the downloaded binary does not run here (target $TARGET)"
[ "$reported" = "dagster-deploy $VERSION" ] || fail "asked for $VERSION, the archive holds '$reported'; nothing was installed"

# Copy next to the destination, then rename: a running or half-written binary is never seen.
mkdir -p "$INSTALL_DIR"
cp "$TMP/dagster-deploy" "$INSTALL_DIR/.dagster-deploy.tmp.$$"
mv -f "$INSTALL_DIR/.dagster-deploy.tmp.$$" "$INSTALL_DIR/dagster-deploy"
log "installed dagster-deploy $VERSION ($TARGET) in $INSTALL_DIR"
echo "$INSTALL_DIR/dagster-deploy"

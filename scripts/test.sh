#!/usr/bin/env bash
# The project's one test command. Starts the real components the tests use (Docker engine,
# htpasswd registry, base images, the reference dagster-cloud CLI, actionlint with shellcheck, pex
# and uv, the gitlab-ci-local pipeline emulator), runs every test, and stops what it started.
# Needs root on Debian the first time (it installs packages).
set -euo pipefail
cd "$(dirname "$0")/.."

# Services started here are this run's: `stop` leaves running any that someone else started
# (a registry started by hand for the README's quickstart keeps running, with its images).
export DAGSTER_DEPLOY_SERVICES_OWNER="test-$$"
scripts/services.sh start
trap 'scripts/services.sh stop' EXIT
eval "$(scripts/services.sh env)"
# python:3.11-slim made from Debian packages (cached), for the BuildKit tests' real Python builds.
scripts/python-base-image.sh
DAGSTER_CLOUD_REFERENCE="$(scripts/reference-cli.sh)"
export DAGSTER_CLOUD_REFERENCE
DAGSTER_DEPLOY_ACTIONLINT="$(scripts/actionlint.sh)"
export DAGSTER_DEPLOY_ACTIONLINT
DAGSTER_DEPLOY_TOOLS_DIR="$(scripts/pex-tools.sh)"
export DAGSTER_DEPLOY_TOOLS_DIR
DAGSTER_DEPLOY_GITLAB_CI_LOCAL="$(scripts/gitlab-ci-local.sh)"
export DAGSTER_DEPLOY_GITLAB_CI_LOCAL

# Everything a test needs is running now: CI=true makes the tests that need a real component run
# (a plain `cargo test` lists them as ignored; see build.rs) and fail if it is missing.
export CI="${CI:-true}"
cargo test --all-targets --locked "$@"

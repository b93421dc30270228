#!/usr/bin/env bash
# Install (when missing) and start (when stopped) what the test suite talks to:
# a PostgreSQL server with a `loopline` role and a `loopline_test` database,
# Prometheus's promtool and Chromium (installed only; no Prometheus server is started here).
set -euo pipefail

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

apt_install() {
    if [ -z "${APT_UPDATED:-}" ]; then
        $SUDO apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

need=()
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
# promtool (Debian's prometheus package) checks the alerting rules loopline exports.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# Debian's chromium runs the web UI's browser tests (driven by Playwright, never a download).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ "${#need[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${need[*]}"
    apt_install "${need[@]}"
fi

PG_VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if ! pg_lsclusters -h | awk -v v="$PG_VERSION" '$1 == v && $2 == "main"' | grep -q .; then
    $SUDO pg_createcluster "$PG_VERSION" main >/dev/null
fi
if ! pg_lsclusters -h | awk -v v="$PG_VERSION" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
    echo "starting PostgreSQL $PG_VERSION"
    $SUDO pg_ctlcluster "$PG_VERSION" main start
fi
for _ in $(seq 1 50); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 0.2
done
pg_isready -q -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not become ready" >&2; exit 1; }

psql_admin() { $SUDO runuser -u postgres -- psql -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = 'loopline'")" != "1" ]; then
    psql_admin -c "CREATE ROLE loopline LOGIN CREATEDB PASSWORD 'loopline'"
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = 'loopline_test'")" != "1" ]; then
    psql_admin -c "CREATE DATABASE loopline_test OWNER loopline"
fi

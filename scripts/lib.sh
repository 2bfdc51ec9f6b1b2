# shellcheck shell=bash
# Shared helpers for the scripts in this folder (sourced, not run).

say() { printf '%s: %s\n' "${PROG:-script}" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# require_cargo: Rust is the one thing these scripts cannot install for you.
require_cargo() {
    command -v cargo >/dev/null 2>&1 && return 0
    die "cargo is not installed. Install Rust (stable, 1.85 or newer) with rustup: \
curl --proto '=https' -sSf https://sh.rustup.rs | sh -s -- -y && . \"\$HOME/.cargo/env\""
}

# make_venv DIR: a Python virtualenv at DIR (python3 and venv installed if
# missing).
make_venv() {
    local venv="$1"
    [[ -x "$venv/bin/python" ]] && return 0
    command -v python3 >/dev/null 2>&1 || install_debian_packages python3
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        rm -rf "$venv"
        install_debian_packages python3-venv
        python3 -m venv "$venv" || die "cannot create a Python virtualenv at $venv"
    fi
    say "created a Python virtualenv at $venv"
}

# ensure_python_venv DIR: a virtualenv at DIR with the Python example's
# requirements (used by the cross-language interop test).
ensure_python_venv() {
    local venv="$1" root="$2"
    make_venv "$venv"
    if ! "$venv/bin/python" -c 'import pika' >/dev/null 2>&1; then
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/examples/python/requirements.txt" \
            || die "cannot install the Python example's requirements into $venv"
        say "installed $(tr '\n' ' ' <"$root/examples/python/requirements.txt")into $venv"
    fi
}

# install_debian_packages PKG...: apt-get install as root, else explain.
install_debian_packages() {
    if [[ "$(id -u)" != 0 ]]; then
        die "missing Debian packages: $*; install them with: sudo apt-get install -y $*"
    fi
    command -v apt-get >/dev/null 2>&1 || die "missing packages $* and no apt-get to install them"
    say "installing Debian packages: $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2 \
        || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2; } \
        || die "apt-get install $* failed"
}

# ensure_bench_venv DIR ROOT: a virtualenv at DIR with the Python seed
# design's requirements (aio-pika), for the benchmark's seed-py peer lane.
ensure_bench_venv() {
    local venv="$1" root="$2"
    make_venv "$venv"
    if ! "$venv/bin/python" -c 'import aio_pika' >/dev/null 2>&1; then
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/bench/seed/requirements.txt" \
            || die "cannot install the seed lane's requirements into $venv"
        say "installed $(tr '\n' ' ' <"$root/bench/seed/requirements.txt")into $venv"
    fi
}

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

# ensure_venv DIR REQUIREMENTS MODULE: a Python virtualenv at DIR (python3
# and venv installed if missing) with REQUIREMENTS installed unless MODULE
# already imports.
ensure_venv() {
    local venv="$1" requirements="$2" module="$3"
    if [[ ! -x "$venv/bin/python" ]]; then
        command -v python3 >/dev/null 2>&1 || install_debian_packages python3
        if ! python3 -m venv "$venv" >/dev/null 2>&1; then
            rm -rf "$venv"
            install_debian_packages python3-venv
            python3 -m venv "$venv" || die "cannot create a Python virtualenv at $venv"
        fi
        say "created a Python virtualenv at $venv"
    fi
    if ! "$venv/bin/python" -c "import $module" >/dev/null 2>&1; then
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" \
            || die "cannot install $requirements into $venv"
        say "installed $(tr '\n' ' ' <"$requirements")into $venv"
    fi
}

# ensure_python_venv DIR ROOT: the Python example's requirements (pika), for
# the cross-language interop tests.
ensure_python_venv() { ensure_venv "$1" "$2/examples/python/requirements.txt" pika; }

# ensure_bench_venv DIR ROOT: the Python seed design's requirements
# (aio-pika), for the benchmark's seed-py peer lane.
ensure_bench_venv() { ensure_venv "$1" "$2/bench/seed/requirements.txt" aio_pika; }

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

# cargo_target_dir ROOT: where cargo puts the workspace's builds, honouring
# CARGO_TARGET_DIR and cargo's config (not always ROOT/target).
cargo_target_dir() {
    cargo metadata --format-version 1 --no-deps --manifest-path "$1/Cargo.toml" \
        | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'
}

# shellcheck shell=bash
# Shared by scripts/demo and scripts/test: make sure this machine has what NxMesh needs.
# Installs what is missing when run as root; otherwise prints the exact command and stops.

NXMESH_DEBIAN_PACKAGES=(nginx libnginx-mod-stream pebble serf iptables iproute2 ca-certificates)

nx_log() { printf 'nxmesh-setup: %s\n' "$*" >&2; }
nx_die() { printf 'nxmesh-setup: error: %s\n' "$*" >&2; exit 1; }

nx_missing_packages() {
    local p missing=()
    for p in "${NXMESH_DEBIAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$p")
    done
    printf '%s\n' "${missing[@]}"
}

nx_ensure_debian_packages() {
    command -v dpkg-query >/dev/null || nx_die "this is not a Debian system; install by hand: ${NXMESH_DEBIAN_PACKAGES[*]}"
    local missing
    mapfile -t missing < <(nx_missing_packages | sed '/^$/d')
    [ "${#missing[@]}" -eq 0 ] && return 0
    local cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        nx_die "missing Debian packages: ${missing[*]}; as root run: $cmd"
    fi
    nx_log "installing Debian packages: ${missing[*]}"
    # policy-rc.d 101 keeps the distribution's nginx service from starting on port 80:
    # NxMesh runs its own nginx under private prefixes.
    local policy=/usr/sbin/policy-rc.d created=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && created=1
    fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    local rc=$?
    [ "$created" -eq 1 ] && rm -f "$policy"
    [ "$rc" -eq 0 ] || nx_die "apt-get install failed; run by hand: $cmd"
}

nx_ensure_uv() {
    export PATH="$HOME/.local/bin:$PATH"
    command -v uv >/dev/null && return 0
    local py
    py=$(command -v python3) || nx_die "python3 (3.11 or newer) is not on PATH"
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || nx_die "NxMesh needs Python 3.11 or newer; $("$py" --version) found"
    if ! "$py" -m pip --version >/dev/null 2>&1; then
        if [ "$(id -u)" -eq 0 ]; then
            nx_log "installing python3-pip to bootstrap uv"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null \
                || nx_die "could not install python3-pip"
        else
            nx_die "uv is missing and pip is unavailable; install uv (python3 -m pip install --user uv) or run as root"
        fi
    fi
    nx_log "installing uv with pip"
    "$py" -m pip install --quiet --user uv 2>/dev/null \
        || "$py" -m pip install --quiet --user --break-system-packages uv 2>/dev/null \
        || "$py" -m pip install --quiet uv \
        || nx_die "could not install uv; try: $py -m pip install --user uv"
    hash -r
    PATH="$(dirname "$py"):$PATH" command -v uv >/dev/null && export PATH="$(dirname "$py"):$PATH"
    command -v uv >/dev/null || nx_die "uv was installed but is not on PATH (looked in $HOME/.local/bin)"
}

nx_sync_env() {
    nx_ensure_uv
    uv sync --locked --quiet || nx_die "uv sync failed (is uv.lock in step with pyproject.toml? run: uv lock)"
}

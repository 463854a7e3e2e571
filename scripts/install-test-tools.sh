#!/usr/bin/env bash
# Installs the tools the tests drive, skipping each one that is already present at the
# pinned version, so a warm machine spends no time here.
set -euo pipefail

# Pinned versions, in one place.
WKG_VERSION=0.16.1
WASM_TOOLS_VERSION=1.263.0
DEBIAN_PACKAGES=(docker-registry)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "install-test-tools: '$*' needs root and sudo is not available" >&2
        return 1
    fi
}

install_debian_packages() {
    local missing=()
    for package in "${DEBIAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "install-test-tools: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y --no-install-recommends "${missing[@]}" \
        || { as_root apt-get update && as_root apt-get install -y --no-install-recommends "${missing[@]}"; }
    # The package's init script may start a registry on :5000; the tests start their own.
    as_root /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
}

# cargo_install CRATE VERSION BINARY: installs CRATE@VERSION unless BINARY reports VERSION.
cargo_install() {
    local crate=$1 version=$2 binary=$3
    if command -v "$binary" >/dev/null 2>&1 && "$binary" --version 2>/dev/null | grep -qF "$version"; then
        return 0
    fi
    echo "install-test-tools: cargo install $crate@$version"
    cargo install --locked "$crate@$version"
}

install_debian_packages
cargo_install wkg "$WKG_VERSION" wkg
cargo_install wasm-tools "$WASM_TOOLS_VERSION" wasm-tools
echo "install-test-tools: docker-registry, wkg $WKG_VERSION and wasm-tools $WASM_TOOLS_VERSION are ready"

#!/usr/bin/env bash
# Installs the tools the tests drive, skipping each one that is already present at the
# pinned version, so a warm machine spends little time here.
#
# Go tools go to $WASMGATE_TOOLS/bin (default ~/.cache/wasmgate-test-tools/bin), where the
# tests look for them first, so a generic name such as `registry` cannot clash with another
# program on PATH.
set -euo pipefail

# Pinned versions, in one place.
WKG_VERSION=0.16.1
WASM_TOOLS_VERSION=1.263.0
DISTRIBUTION_V3_VERSION=v3.1.2
ORAS_VERSION=v1.3.6
CRANE_VERSION=v0.22.1
HELM_VERSION=v4.3.2
# v5.8.3 needs Go 1.27; v5.8.2 builds with the Go 1.26 these machines have.
KUSTOMIZE_VERSION=v5.8.2
CONFORMANCE_VERSION=v0.0.0-20260831232431-97274622c111
DEBIAN_PACKAGES=(docker-registry skopeo)

TOOLS_DIR=${WASMGATE_TOOLS:-$HOME/.cache/wasmgate-test-tools}
GO_BIN=$TOOLS_DIR/bin
mkdir -p "$GO_BIN"

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

# go_install PACKAGE VERSION BINARY: installs PACKAGE@VERSION into $GO_BIN as BINARY. A stamp
# file records the installed version, because not every tool prints its own.
go_install() {
    local package=$1 version=$2 binary=$3
    local stamp="$GO_BIN/.$binary.version"
    if [ -x "$GO_BIN/$binary" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
        return 0
    fi
    echo "install-test-tools: go install $package@$version"
    GOBIN="$GO_BIN" go install "$package@$version"
    echo "$version" > "$stamp"
}

# The conformance suite is a Go test program; `go test -c` compiles it to one binary.
install_conformance() {
    local module=github.com/opencontainers/distribution-spec/conformance
    local stamp="$GO_BIN/.oci-conformance.version"
    if [ -x "$GO_BIN/oci-conformance" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$CONFORMANCE_VERSION" ]; then
        return 0
    fi
    echo "install-test-tools: go test -c $module@$CONFORMANCE_VERSION"
    local dir
    dir=$(go mod download -json "$module@$CONFORMANCE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    (cd "$dir" && go test -c -o "$GO_BIN/oci-conformance" .)
    echo "$CONFORMANCE_VERSION" > "$stamp"
}

install_debian_packages
cargo_install wkg "$WKG_VERSION" wkg
cargo_install wasm-tools "$WASM_TOOLS_VERSION" wasm-tools
go_install github.com/distribution/distribution/v3/cmd/registry "$DISTRIBUTION_V3_VERSION" registry
go_install oras.land/oras/cmd/oras "$ORAS_VERSION" oras
go_install github.com/google/go-containerregistry/cmd/crane "$CRANE_VERSION" crane
go_install helm.sh/helm/v4/cmd/helm "$HELM_VERSION" helm
go_install sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION" kustomize
install_conformance
echo "install-test-tools: all test tools are ready (Go tools in $GO_BIN)"

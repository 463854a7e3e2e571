#!/usr/bin/env bash
# Checks the deployment assets without a cluster or a container engine:
#   1. the container build: versions agree with Cargo.toml and rust-toolchain.toml, the
#      Containerfile builds with the same cargo command as CI, .dockerignore keeps the inputs;
#   2. the helm chart: `helm lint --strict` and `helm template` with the default values and
#      with every helm/wasmgate/ci/*.yaml;
#   3. the kustomize base and overlays: `kustomize build`;
#   4. every render, with tests/k8s-validate: each object is decoded strictly into its
#      Kubernetes API type, and the references between objects and the probes, policy mount
#      and security context of the gate's Pod are checked. Then `wasmgate serve
#      --check-config` runs with each gate container's arguments and the policy file that the
#      Pod would mount.
#
# Runs the binary in $WASMGATE_BIN (scripts/test.sh builds it and sets it); without it, builds
# target/release/wasmgate with `cargo build --release --locked`, which needs cargo. Renders are kept in
# target/test-deploy for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS_BIN=${WASMGATE_TOOLS:-$HOME/.cache/wasmgate-test-tools}/bin
export PATH="$TOOLS_BIN:$PATH"
CHART=helm/wasmgate
KUSTOMIZE_DIR=deploy/kubernetes
OUT=target/test-deploy

fail() {
    echo "test-deploy: FAIL $*" >&2
    exit 1
}

step() {
    echo
    echo "test-deploy: $*"
}

# A missing tool fails the run, so that no check is skipped unnoticed. cargo is needed only
# to build the binary when WASMGATE_BIN is not set.
for tool in go helm kustomize openssl; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is not on PATH or in $TOOLS_BIN; run scripts/install-test-tools.sh"
done

step "checking versions and the container build"
crate_version=$(sed -n '/^\[package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' Cargo.toml)
toolchain=$(sed -n 's/^channel = "\(.*\)"$/\1/p' rust-toolchain.toml)
chart_app_version=$(sed -n 's/^appVersion: "\(.*\)"$/\1/p' "$CHART/Chart.yaml")
image_version=$(sed -n 's/^ARG VERSION=\(.*\)$/\1/p' deploy/container/Containerfile)
image_toolchain=$(sed -n 's/^ARG RUST_VERSION=\(.*\)$/\1/p' deploy/container/Containerfile)
kustomize_tag=$(sed -n 's/^ *newTag: \(.*\)$/\1/p' "$KUSTOMIZE_DIR/base/kustomization.yaml")
[ -n "$crate_version" ] || fail "no version found in the [package] table of Cargo.toml"
[ "$chart_app_version" = "$crate_version" ] || fail "$CHART/Chart.yaml appVersion is '$chart_app_version', but Cargo.toml says '$crate_version'"
[ "$image_version" = "$crate_version" ] || fail "deploy/container/Containerfile ARG VERSION is '$image_version', but Cargo.toml says '$crate_version'"
[ "$kustomize_tag" = "$crate_version" ] || fail "$KUSTOMIZE_DIR/base/kustomization.yaml image newTag is '$kustomize_tag', but Cargo.toml says '$crate_version'"
[ "$image_toolchain" = "$toolchain" ] || fail "deploy/container/Containerfile ARG RUST_VERSION is '$image_toolchain', but rust-toolchain.toml says '$toolchain'"
grep -q '^    cargo build --release --locked' deploy/container/Containerfile \
    || fail "deploy/container/Containerfile no longer builds with 'cargo build --release --locked', the command CI builds with"
grep -q '^USER 65532:65532$' deploy/container/Containerfile \
    || fail "deploy/container/Containerfile does not run as the numeric non-root user 65532"

# Docker reads .dockerignore with Go's filepath.Match plus '**', and a pattern that matches a
# directory excludes everything below it. Bash's [[ == ]] lets '*' cross '/', and a leading
# '**/' is also tried without it, so this matches at least what Docker matches: no pattern
# may exclude a build input.
while IFS= read -r pattern; do
    pattern=${pattern%/}
    case "$pattern" in '' | '#'* | '!'*) continue ;; esac
    short=${pattern#\*\*/}
    while IFS= read -r input; do
        # shellcheck disable=SC2053 # the patterns are globs on purpose
        if [[ $input == $pattern || $input == $pattern/* || $input == $short || $input == $short/* ]]; then
            fail ".dockerignore pattern '$pattern' excludes $input, which the image build needs"
        fi
    done < <(git ls-files --cached --others --exclude-standard -- Cargo.toml Cargo.lock rust-toolchain.toml src)
done < .dockerignore
grep -qx 'target/' .dockerignore || fail ".dockerignore does not exclude target/"
echo "versions agree: wasmgate $crate_version, Rust $toolchain; the Containerfile builds with cargo build --release --locked"

step "building the wasmgate binary and the validator"
if [ -z "${WASMGATE_BIN:-}" ]; then
    command -v cargo >/dev/null 2>&1 || fail "cargo is not on PATH; install Rust or set WASMGATE_BIN to a wasmgate binary"
    cargo build --release --locked
    WASMGATE_BIN=target/release/wasmgate
fi
[ -x "$WASMGATE_BIN" ] || fail "WASMGATE_BIN '$WASMGATE_BIN' is not an executable"
WASMGATE_BIN=$(realpath "$WASMGATE_BIN")
"$WASMGATE_BIN" --version | grep -qF " $crate_version" \
    || fail "$WASMGATE_BIN reports '$("$WASMGATE_BIN" --version)', not version $crate_version"
rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
VALIDATE="$OUT/k8s-validate"
(cd tests/k8s-validate && go vet ./... && go build -o "$VALIDATE" .)
(cd tests/k8s-validate && WASMGATE_BIN="$WASMGATE_BIN" go test -count=1 ./...)

# Secrets are not rendered, so every Secret volume gets these files: a self-signed
# certificate and its key, which the gate also accepts as a CA bundle.
CERTS="$OUT/certs"
mkdir -p "$CERTS"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=wasmgate.test -addext subjectAltName=DNS:wasmgate.test \
    -keyout "$CERTS/tls.key" -out "$CERTS/tls.crt" 2>/dev/null
cp "$CERTS/tls.crt" "$CERTS/ca.crt"
SECRET_FILES=(-secret-file "tls.crt=$CERTS/tls.crt" -secret-file "tls.key=$CERTS/tls.key" -secret-file "ca.crt=$CERTS/ca.crt")

# check NAME RENDER [FLAGS...]: validates one render and runs --check-config on its gates.
check() {
    local name=$1 render=$2
    shift 2
    echo "--- $name"
    "$VALIDATE" check -wasmgate "$WASMGATE_BIN" -root "$OUT/root-$name" "${SECRET_FILES[@]}" "$@" "$render" \
        || fail "$name: the render in $render failed the checks above"
}

step "linting and rendering the helm chart"
"$VALIDATE" values-comments "$CHART/values.yaml"
# 1.30 is the chart's lowest kubeVersion, the first with the preStop sleep action on by default.
KUBE_VERSION=1.30.0
helm lint --strict --kube-version "$KUBE_VERSION" "$CHART"
helm template wasmgate "$CHART" --namespace registry --kube-version "$KUBE_VERSION" > "$OUT/helm-default.yaml"
check helm-default "$OUT/helm-default.yaml" -require-policy-checksum
for values in "$CHART"/ci/*.yaml; do
    name=$(basename "$values" .yaml)
    name=helm-${name%-values}
    helm lint --strict --kube-version "$KUBE_VERSION" "$CHART" --values "$values"
    helm template wasmgate "$CHART" --namespace registry --kube-version "$KUBE_VERSION" --values "$values" > "$OUT/$name.yaml"
    flags=()
    if grep -q '^  existingConfigMap:' "$values"; then
        flags+=(-existing tests/k8s-validate/testdata/existing-policy-configmap.yaml)
    else
        flags+=(-require-policy-checksum)
    fi
    if grep -q '^ingress:' "$values"; then
        flags+=(-ingress-nginx)
    fi
    check "$name" "$OUT/$name.yaml" "${flags[@]}"
done

step "checking the sidecar snippet for an existing registry chart"
SNIPPET=$CHART/examples/registry-chart-sidecar-values.yaml
readme=$(<"$CHART/README.md")
snippet=$(<"$SNIPPET")
[[ $readme == *"$snippet"* ]] || fail "$CHART/README.md does not contain $SNIPPET verbatim; copy the file into its yaml block"
helm template wasmgate tests/k8s-validate/testdata/registry-chart --namespace registry --values "$SNIPPET" \
    > "$OUT/registry-chart-sidecar.yaml"
check registry-chart-sidecar "$OUT/registry-chart-sidecar.yaml"

step "checking that the chart rejects wrong values"
# expect_render_failure MESSAGE HELM-ARGS...: helm template must fail and print MESSAGE.
expect_render_failure() {
    local expected=$1 output
    shift
    if output=$(helm template wasmgate "$CHART" --kube-version "$KUBE_VERSION" "$@" 2>&1); then
        fail "helm template $* rendered, but it should fail with '$expected'"
    fi
    grep -qF "$expected" <<<"$output" || fail "helm template $* failed without '$expected': $output"
    echo "rejected as expected: $*"
}
expect_render_failure "additional properties 'upstreem' not allowed" --set gate.upstreem=http://registry:5000
expect_render_failure "got string, want integer" --set-string gate.port=5050
expect_render_failure "tls.enabled needs tls.secretName" --set tls.enabled=true
expect_render_failure "must exceed preStopSleepSeconds" --set terminationGracePeriodSeconds=30
expect_render_failure "additional properties 'runAsUsr' not allowed" --set podSecurityContext.runAsUsr=1000
expect_render_failure "additional properties 'readOnlyRootFileSystem' not allowed" --set securityContext.readOnlyRootFileSystem=true
expect_render_failure "'10.244.0.0/33' does not match pattern" --set-json 'gate.trustedProxies=["10.244.0.0/33"]'
# --set makes a number of 8388608, so the README gives extraArgs with --set-json.
expect_render_failure "got number, want string" --set 'extraArgs[0]=--max-manifest-bytes' --set 'extraArgs[1]=8388608'
# The chart always passes --policy, which wasmgate rejects together with --rewrite-legacy.
# The policy's legacy = "rewrite" replaces the removed value.
expect_render_failure "additional properties 'rewriteLegacy' not allowed" --set gate.rewriteLegacy=true

step "checking values that the schema must accept"
# --set turns 0.5 into a number, the usual way to write half a core.
helm template wasmgate "$CHART" --namespace registry --kube-version "$KUBE_VERSION" \
    --set resources.requests.cpu=0.5 --set-json 'gate.trustedProxies=["fd00::/8","192.0.2.10"]' \
    > "$OUT/helm-numbers.yaml"
check helm-numbers "$OUT/helm-numbers.yaml" -require-policy-checksum

step "checking that the validator rejects a gate that would not start"
helm template wasmgate "$CHART" --namespace registry --kube-version "$KUBE_VERSION" \
    --set-json 'extraArgs=["--rewrite-legacy"]' > "$OUT/helm-rewrite-legacy.yaml"
if output=$("$VALIDATE" check -wasmgate "$WASMGATE_BIN" -root "$OUT/root-helm-rewrite-legacy" "$OUT/helm-rewrite-legacy.yaml" 2>&1); then
    fail "the validator accepted --rewrite-legacy next to --policy, which makes wasmgate exit with 64"
fi
grep -qF -- "--rewrite-legacy applies to the built-in policy only" <<<"$output" \
    || fail "the validator rejected --rewrite-legacy with --policy for another reason: $output"
echo "rejected as expected: --rewrite-legacy with --policy"

step "checking that a policy change rolls the Pods"
annotation() {
    helm template wasmgate "$CHART" --kube-version "$KUBE_VERSION" --show-only templates/deployment.yaml "$@" \
        | sed -n 's/^ *checksum\/policy: //p'
}
before=$(annotation)
after=$(annotation --set-string 'policy.content=version = 1
[default]
mode = "audit"
admit = ["*"]
')
[ -n "$before" ] && [ "$before" != "$after" ] || fail "checksum/policy did not change with policy.content ('$before', '$after')"
echo "checksum/policy changes with policy.content: ${before:0:12}… → ${after:0:12}…"

step "checking the helm release notes"
# expect_push_command EXPECTED HELM-ARGS...: the release notes must contain EXPECTED.
expect_push_command() {
    local expected=$1 notes
    shift
    notes=$(helm install wasmgate "$CHART" --dry-run=client --namespace registry "$@")
    grep -qF -- "$expected" <<<"$notes" || fail "NOTES.txt for $* has no '$expected': $notes"
    echo "NOTES.txt for ${*:-the default values} shows: $(grep -F -- "$expected" <<<"$notes" | sed 's/^ *//')"
}
expect_push_command "wkg oci push --insecure 127.0.0.1:5050 127.0.0.1:5050/demo/hello:0.1.0"
expect_push_command "wkg oci push wasm-registry.example.com/demo/hello:0.1.0" --values "$CHART/ci/gitlab-gateway-values.yaml"
# An Ingress without a TLS entry for its host serves plain HTTP, which wkg reaches only with
# --insecure and oras only with --plain-http.
expect_push_command "wkg oci push --insecure wasm.example.com wasm.example.com/demo/hello:0.1.0" \
    --set ingress.enabled=true --set 'ingress.hosts[0]=wasm.example.com'

step "building and checking the kustomize base and overlays"
for overlay in base sidecar gitlab-gateway; do
    kustomize build "$KUSTOMIZE_DIR/$overlay" > "$OUT/kustomize-$overlay.yaml"
    flags=()
    [ "$overlay" = gitlab-gateway ] && flags+=(-ingress-nginx)
    check "kustomize-$overlay" "$OUT/kustomize-$overlay.yaml" "${flags[@]}"
done

echo
echo "test-deploy: all deployment checks passed; renders are in $OUT"

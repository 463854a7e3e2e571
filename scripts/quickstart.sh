#!/usr/bin/env bash
# Runs a real registry on 127.0.0.1:5000 with storage in a temporary directory, and wasmgate
# in front of it on 127.0.0.1:5050, in the foreground. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v docker-registry >/dev/null 2>&1; then
    echo "quickstart: installing Debian's docker-registry package"
    if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); else sudo_cmd=(sudo); fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get install -y --no-install-recommends docker-registry \
        || { "${sudo_cmd[@]}" apt-get update && "${sudo_cmd[@]}" apt-get install -y --no-install-recommends docker-registry; }
    "${sudo_cmd[@]}" /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
fi

workdir=$(mktemp -d -t wasmgate-quickstart.XXXXXX)
registry_pid=
cleanup() {
    if [ -n "$registry_pid" ]; then
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
    fi
    rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat > "$workdir/registry.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $workdir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5000
YAML

cargo build --release --locked

docker-registry serve "$workdir/registry.yml" >"$workdir/access.log" 2>"$workdir/registry.log" &
registry_pid=$!
echo "quickstart: registry on 127.0.0.1:5000 (storage in $workdir/data, logs in $workdir)"

echo "quickstart: wasmgate on 127.0.0.1:5050; push with: wkg oci push --insecure 127.0.0.1:5050 127.0.0.1:5050/demo/hello:0.1.0 hello.wasm"
target/release/wasmgate serve --listen 127.0.0.1:5050 --upstream http://127.0.0.1:5000

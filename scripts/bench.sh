#!/usr/bin/env bash
# Measures a real registry directly and through wasmgate in the same run, and writes
# docs/benchmarks.md: blob push and pull throughput, WebAssembly manifest push latency, and
# the gate's peak resident memory.
#
# Environment: BLOB_MIB (default 1024), PUSHES (default 1000).
set -euo pipefail
cd "$(dirname "$0")/.."

BLOB_MIB=${BLOB_MIB:-1024}
PUSHES=${PUSHES:-1000}
command -v docker-registry >/dev/null || { echo "bench: docker-registry is missing; run scripts/install-test-tools.sh" >&2; exit 1; }

cargo build --release --locked --bin wasmgate --example bench

workdir=$(mktemp -d -t wasmgate-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$workdir"
}
trap cleanup EXIT

# wait_for_line FILE PATTERN: prints the first line of FILE matching PATTERN, waiting up to 30 s.
wait_for_line() {
    for _ in $(seq 300); do
        if line=$(grep -m1 -E "$2" "$1" 2>/dev/null); then
            echo "$line"
            return 0
        fi
        sleep 0.1
    done
    echo "bench: no line matching '$2' in $1" >&2
    cat "$1" >&2
    return 1
}

cat > "$workdir/registry.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $workdir/data
http:
  addr: 127.0.0.1:0
  secret: wasmgate-bench
YAML
docker-registry serve "$workdir/registry.yml" >"$workdir/access.log" 2>"$workdir/registry.log" &
pids+=($!)
# At log level warn the registry does not print its address; read it from the socket table.
registry_pid=$!
registry=""
for _ in $(seq 300); do
    registry=$(ss -Hltnp 2>/dev/null | awk -v pid="pid=$registry_pid," 'index($0, pid) {print $4; exit}')
    [ -n "$registry" ] && break
    sleep 0.1
done
[ -n "$registry" ] || { echo "bench: the registry did not start" >&2; cat "$workdir/registry.log" >&2; exit 1; }

target/release/wasmgate serve --listen 127.0.0.1:0 --upstream "http://$registry" 2>"$workdir/gate.log" &
gate_pid=$!
pids+=("$gate_pid")
gate=$(wait_for_line "$workdir/gate.log" 'wasmgate started' | grep -oE 'listen=[0-9.:]+' | cut -d= -f2)

rows=$(target/release/examples/bench blobs "http://$registry" "http://$gate" "$BLOB_MIB" "$PUSHES")
streaming_rss_kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$gate_pid/status")
rows="$rows
$(target/release/examples/bench manifests "http://$registry" "http://$gate" "$BLOB_MIB" "$PUSHES")"
peak_rss_kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$gate_pid/status")

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
memory_gib=$(awk '/^MemTotal:/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)
registry_version=$(dpkg-query -W -f='${Version}' docker-registry 2>/dev/null || echo unknown)

cat > docs/benchmarks.md <<MARKDOWN
# Benchmarks

Measured by \`BLOB_MIB=$BLOB_MIB PUSHES=$PUSHES scripts/bench.sh\` on $(date -u +%Y-%m-%d).

Machine: $(nproc) cores ($cpu), $memory_gib GiB of memory, $(uname -sr).
Upstream: Debian's docker-registry $registry_version (CNCF Distribution), filesystem storage on
local disk, on loopback. The gate is the release build of wasmgate $(target/release/wasmgate --version | cut -d' ' -f2).
The driver (\`examples/bench.rs\`) runs on the same machine, one request at a time, so client,
gate and registry share the cores.

"Direct" talks to the registry; "gate" goes through wasmgate in front of the same registry,
in the same run. Blob throughput is one upload (POST, then one PUT with the whole body) and
one download. Manifest latency is the time of one \`PUT\` of a WebAssembly manifest under a
new tag, over $PUSHES pushes after 50 uncounted warm-up pushes; through the gate it includes
reading the config blob and the layer back from the registry and validating them. The
component rows push distinct 10 MiB components (a core module with a 10 MiB data segment):
"cold" is the first push of each through the gate, which reads, hashes, validates and decodes
the layer; "cached" pushes the same manifest again under a new tag, so the inspection comes
from the cache and only the config is read.

| Measurement | Direct | Gate | Gate vs direct |
|---|---|---|---|
$rows

Gate peak resident memory (VmHWM), read from /proc after each phase:

- after the $BLOB_MIB MiB blob transfers, the first phase: $((streaming_rss_kib / 1024)) MiB ($streaming_rss_kib KiB);
- after the whole run, which adds the manifest pushes and the inspection of 10 MiB
  components, each read whole into memory: $((peak_rss_kib / 1024)) MiB ($peak_rss_kib KiB).

Targets: throughput at least 0.9 of direct, manifest push p50 within 2 ms of direct, peak
resident memory at most 64 MiB while streaming 1 GiB. Single runs on a shared 2-core machine
vary widely: on 2026-12-04, three runs on the machine above measured blob push ratios of
0.81, 0.75 and 0.98, so repeat the run before drawing conclusions.
MARKDOWN
cat docs/benchmarks.md

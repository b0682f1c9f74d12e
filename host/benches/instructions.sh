#!/usr/bin/env bash
# The instructions `paddock serve` spends on one `POST /v1/agents/client/run`
# (the `llm-client` guest making one LLM call to the fake provider), counted
# by valgrind's callgrind. Runs of one binary mostly agree within 0.5%
# whatever else the machine is doing (idle workers spinning before they park
# make the odd run 2% higher: compare medians of runs in alternation), where
# the seconds of `--bench gateway` move by a tenth from one run to the next on
# a shared machine. User-space instructions only: the kernel's share
# (sockets, page faults) is not in it.
#
#   host/benches/instructions.sh [PADDOCK_BINARY] [REQUESTS]
#
# PADDOCK_BINARY defaults to target/release/paddock (built by any `cargo
# bench -p paddock --no-run`), REQUESTS to 200. The host serves from a
# folder of its own, with the logs and metrics of `paddock serve`'s
# defaults and `serve.auth = "none"`; 30 requests warm it up, then the count
# covers REQUESTS requests sent one at a time with curl. The profile is kept
# in that folder for `callgrind_annotate`, whose path is printed, with the
# share of the code compiled from the agent.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
binary=$(realpath "${1:-$root/target/release/paddock}")
requests=${2:-200}
guest=$root/target/test-guests/guests/wasm32-wasip2/release/llm_client.wasm
for tool in valgrind callgrind_control callgrind_annotate curl; do
    command -v "$tool" > /dev/null || { echo "needs $tool (Debian: apt install valgrind curl)" >&2; exit 1; }
done
[ -x "$binary" ] || { echo "no paddock binary at $binary: run cargo bench -p paddock --no-run" >&2; exit 1; }
[ -f "$guest" ] || { echo "no test guest at $guest: run cargo build -p paddock-test-guests" >&2; exit 1; }
cargo build -q -p paddock-fake-provider --manifest-path "$root/Cargo.toml"

dir=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
}
trap cleanup EXIT

"$root/target/debug/paddock-fake-provider" --port 0 > "$dir/fake.out" &
pids+=($!)
until grep -q "listening on" "$dir/fake.out"; do sleep 0.1; done
fake=$(sed -n 's/listening on //p' "$dir/fake.out")

mkdir -p "$dir/host/plugins/client"
cp "$guest" "$dir/host/plugins/client/"
printf 'name = "client"\nversion = "1.0.0"\ncomponent = "llm_client.wasm"\n[capabilities]\nroutes = ["r"]\n' \
    > "$dir/host/plugins/client/agent.toml"
# Few, small instance slots: valgrind cannot reserve the address space of
# the defaults. Cranelift alone: no background compile while counting.
cat > "$dir/host/paddock.toml" << EOF
[host]
ledger = "memory"
plugin-state = "memory"
flows = "memory"
default-tenant = "bench"
[engine]
compiler = "cranelift"
max-instances = 8
memory-reservation = "64MiB"
[ceiling]
memory = "32MiB"
[providers.fake]
kind = "openai"
base-url = "$fake/v1"
[routes.r]
targets = [{ provider = "fake", model = "m" }]
[serve]
auth = "none"
requests-per-key = 0
requests-per-tenant = 0
concurrent-per-key = 0
concurrent-per-tenant = 0
EOF

cd "$dir/host"
valgrind --tool=callgrind --instr-atstart=no --smc-check=all-non-file \
    --callgrind-out-file="$dir/callgrind.out" "$binary" serve --listen 127.0.0.1:0 \
    > "$dir/serve.out" 2> "$dir/serve.err" &
host=$!
pids+=("$host")
for _ in $(seq 600); do
    grep -q "serving on" "$dir/serve.out" && break
    kill -0 "$host" 2> /dev/null || { cat "$dir/serve.err" >&2; exit 1; }
    sleep 0.2
done
url=$(sed -n 's/serving on //p' "$dir/serve.out")
body='{"op":"complete","route":"r","prompt":"hi","repeat":1}'
send() {
    for _ in $(seq "$1"); do
        curl -sf -X POST "$url/v1/agents/client/run" -d "$body" > /dev/null
    done
}
send 30
callgrind_control --instr=on "$host" > /dev/null 2>&1
send "$requests"
callgrind_control --instr=off "$host" > /dev/null 2>&1
callgrind_control --dump "$host" > /dev/null 2>&1
kill "$host"
wait "$host" 2> /dev/null || true
profile=$(ls "$dir"/callgrind.out.* | head -1)
total=$(callgrind_annotate "$profile" 2> /dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
# Code compiled at run time (the agent's wasm and wasmtime's trampolines
# and adapters for it) has no symbols: the unnamed addresses of the listing.
guest=$(callgrind_annotate --threshold=100 --auto=no "$profile" 2> /dev/null \
    | awk '/file:function/ { f = 1; next } f && /\?\?\?:0x/ { gsub(",", "", $1); n += $1 } END { printf "%d", n }')
echo "instructions per request: $((total / requests)) ($requests requests; profile: $profile)"
echo "of which code compiled from the agent (its wasm, wasmtime's trampolines): $((guest / requests))"

#!/usr/bin/env bash
# The performance workloads of docs/BENCHMARKS.md, with the release build:
#   fanout    1,000 subscribers / 10 topics / 10 publishers at 5,000 msg/s
#             (500k deliveries/s offered), through Redis, on one node and on
#             two; and 5,000 subscribers on 50 topics at the same load
#   fanout-shards  the one-node fan-out driven by two simulator processes
#   capacity  the same fan-out: the highest rate still healthy (p99 < 50 ms),
#             with topic history off and on
#   queues    50 workers on one Redis: throughput, and a paced 1k/s
#   idle      50,000 idle agents: 4 bus nodes, 3 simulator shards, 4
#             loopback source addresses; bus memory per connection, connects/s
# Each writes under reports/bench/<workload>/. Usage: scripts/bench.sh
# [fanout|capacity|queues|idle|criterion|all] (default all).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
cargo build --release --locked -p bus -p sim
BIN=${CARGO_TARGET_DIR:-target}/release
SIM=$BIN/sim
BUS=$BIN/bus
OUT=reports/bench
mkdir -p "$OUT"
what=${1:-all}

# 500k deliveries/s: one node, two nodes with the agents spread over both,
# and 5,000 subscribers on 50 topics on one node.
fanout() {
  local scenario
  for scenario in fanout-500k fanout-500k-2nodes fanout-500k-wide; do
    "$SIM" run "scenarios/bench/$scenario.toml" --out "$OUT/$scenario" || true
  done
}

# The knee of the fan-out, and the same with history on every topic.
capacity() {
  "$SIM" capacity scenarios/bench/fanout-50k.toml --vary rate --search --from 250 --to 8000 \
    --refine 3 --point-duration 10s --setups redis-1 --out "$OUT/fanout-capacity" || true
  "$SIM" capacity scenarios/bench/fanout-50k-history.toml --vary rate --search --from 250 --to 8000 \
    --refine 3 --point-duration 10s --setups redis-1 --out "$OUT/fanout-history-capacity" || true
}

queues() {
  "$SIM" run scenarios/bench/queue-throughput.toml --out "$OUT/queue-throughput" || true
  "$SIM" run scenarios/bench/queue-paced.toml --out "$OUT/queue-paced" || true
}

criterion() {
  cargo bench --locked -p bus --bench broker --bench hot_paths -- --output-format bencher | tee "$OUT/criterion.txt"
}

# 50,000 idle connections need several processes: a process may hold 20,000
# open files, and one source/destination address pair has ~28,000 ports.
idle() {
  local dir="$OUT/idle-50k" port
  rm -rf "$dir" && mkdir -p "$dir"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$port" --save "" --appendonly no --daemonize no --logfile "$dir/redis.log" &
  local redis_pid=$!
  local pids=() urls=() shards=()
  until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
  for i in 1 2 3 4; do
    "$BUS" --listen "127.0.0.1:808$i" --redis "redis://127.0.0.1:$port/" --node-id "node-$i" \
      --max-connections 20000 >"$dir/bus-$i.out" 2>"$dir/bus-$i.err" &
    pids+=($!)
    urls+=(--target "ws://127.0.0.1:808$i")
  done
  for i in 1 2 3 4; do until grep -q "listening" "$dir/bus-$i.out" 2>/dev/null; do sleep 0.1; done; done
  for pid in "${pids[@]}"; do grep VmRSS "/proc/$pid/status" | awk -v p="$pid" '{print p, "before", $2}'; done >"$dir/rss.txt"
  local start
  start=$(( $(date +%s) + 8 ))
  for i in 0 1 2; do
    "$SIM" run scenarios/bench/idle-connections.toml "${urls[@]}" --shard "$i/3" --start-at "$start" \
      --quiet --out "$dir/shard-$i" &
    shards+=($!)
  done
  sleep $(( start - $(date +%s) + 15 ))
  for pid in "${pids[@]}"; do grep VmRSS "/proc/$pid/status" | awk -v p="$pid" '{print p, "connected", $2}'; done >>"$dir/rss.txt"
  for pid in "${shards[@]}"; do wait "$pid" || true; done
  "$SIM" merge "$dir/shard-0" "$dir/shard-1" "$dir/shard-2" --out "$dir/merged" || true
  kill "${pids[@]}" "$redis_pid" 2>/dev/null || true
  cat "$dir/rss.txt"
}

# The 500k/s fan-out of one bus node driven by two simulator processes
# (each half of the agents, started together and merged), so that no one
# simulator process is the bottleneck of the run.
fanout_shards() {
  local dir="$OUT/fanout-500k-shards" port start
  rm -rf "$dir" && mkdir -p "$dir"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$port" --save "" --appendonly no --daemonize no --logfile "$dir/redis.log" &
  local redis_pid=$!
  until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
  "$BUS" --listen 127.0.0.1:0 --redis "redis://127.0.0.1:$port/" --node-id fanout \
    >"$dir/bus.out" 2>"$dir/bus.err" &
  local bus_pid=$!
  until grep -q "listening" "$dir/bus.out" 2>/dev/null; do sleep 0.1; done
  local url
  url="ws://$(grep -o 'listening on [0-9.:]*' "$dir/bus.out" | head -1 | awk '{print $3}')"
  start=$(( $(date +%s) + 3 ))
  local shards=()
  for i in 0 1; do
    "$SIM" run scenarios/bench/fanout-500k.toml --target "$url" --shard "$i/2" --start-at "$start" \
      --quiet --out "$dir/shard-$i" &
    shards+=($!)
  done
  for pid in "${shards[@]}"; do wait "$pid" || true; done
  "$SIM" merge "$dir/shard-0" "$dir/shard-1" --out "$dir/merged" || true
  kill "$bus_pid" "$redis_pid" 2>/dev/null || true
}

case "$what" in
  fanout) fanout ;;
  fanout-shards) fanout_shards ;;
  capacity) capacity ;;
  queues) queues ;;
  idle) idle ;;
  criterion) criterion ;;
  all) criterion; fanout; fanout_shards; capacity; queues; idle ;;
  *) echo "usage: $0 [fanout|fanout-shards|capacity|queues|idle|criterion|all]" >&2; exit 2 ;;
esac
echo "figures under $OUT/"

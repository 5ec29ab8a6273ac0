# Recipes mirror the README; each one is a plain command you can run without just.

# Everything CI runs: format check, clippy with warnings denied, all tests.
ci:
    scripts/test.sh

# The tests only (needs redis-server on PATH, or REDIS_URL).
test:
    cargo test --workspace --locked

# Criterion benchmarks of the bus.
bench-bus:
    cargo bench -p bus

# The performance workloads of docs/BENCHMARKS.md (fan-out, capacity, queues,
# 50k idle connections, criterion); figures under reports/bench/.
bench what="all":
    scripts/bench.sh {{what}}

# The snapshot tests of scenarios/ci/ (run, then review changes; needs cargo-insta).
snapshots:
    cargo insta test --workspace --review -- snapshots::

# Run a CI scenario with the release binary and compare it with its baseline
# with the CI settings of the README (e.g. `just check smoke`; exits 3 on a
# regression).
check scenario="smoke":
    cargo build --release --locked -p sim -p bus
    target/release/sim run scenarios/ci/{{scenario}}.toml --out reports/check-{{scenario}} --quiet || test $? -ge 10
    target/release/sim check reports/check-{{scenario}} --baseline reports/baselines/ci-{{scenario}}@memory.json --tolerance 1.0 --latency-floor-ms 25

# Fuzz one target for a while (nightly and cargo-fuzz; see docs/FUZZING.md),
# e.g. `just fuzz frame_decode 600`. Targets: frame_decode, scenario_parse,
# glob_match.
fuzz target="frame_decode" seconds="600":
    fuzz/seed.sh
    cargo +nightly fuzz run -O {{target}} fuzz/corpus/{{target}} -- -max_total_time={{seconds}} -timeout=5 -print_final_stats=1

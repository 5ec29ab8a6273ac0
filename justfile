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

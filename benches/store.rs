//! Benchmarks (placeholder until the benchmark issue lands).

fn main() {}

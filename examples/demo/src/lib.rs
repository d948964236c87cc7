//! The demo decider.

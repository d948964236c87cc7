//! Test support for the end-to-end suites under `tests/tests/`.

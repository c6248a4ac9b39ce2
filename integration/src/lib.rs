//! End-to-end tests live in `tests/` as one binary (`tests/main.rs`): a harness (Bundle, Cmd,
//! Probe) and one module per verb or face. See `tests/main.rs` for how to run them.

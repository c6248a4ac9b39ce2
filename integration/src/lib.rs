//! Test harness lives in tests/.

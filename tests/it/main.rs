//! The integration tests: real programs started as processes, plus the tidy checks.

mod mqbroker;
mod support;
mod tidy;

//! The integration tests: real programs started as processes, plus the tidy checks.

mod amqp;
mod bad_input;
mod dashboard;
mod ha;
mod http;
mod metrics;
mod mqadmin;
mod mqbroker;
mod native;
mod plugins;
mod support;
mod tidy;

//! mqbroker (being written).
fn main() {}

//! broker.properties (being written).

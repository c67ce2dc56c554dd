//! IndexFile: lookup of messages by key and unique key (being written).

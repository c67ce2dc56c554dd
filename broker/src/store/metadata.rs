//! Metadata files in the store root (being written).

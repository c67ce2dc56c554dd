//! Tests of the record layouts.

//! Tests of the mapped files.

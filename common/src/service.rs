//! Consumer runtime (stub).

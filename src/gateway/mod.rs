//! The routing gateway (SPEC §5).

pub mod wire;

//! Reliability and security suite (issue 9): faults, load and hostile input against the real
//! `openclawd` binary and the `ollama` double, on loopback only. Each case is bounded in time and
//! count; the long variants run with `cargo test --test reliability -- --ignored`.
//! Figures go to stderr as `FIGURE name: value` lines (run with `--nocapture` to see them);
//! RELIABILITY.md records them with the command that produced each.

#[path = "../common/mod.rs"]
mod common;

mod support;

mod crashes;
mod hangs;
mod hostile;
mod load;
mod midstream;
mod properties;
mod reload;
mod shutdown;
mod state;

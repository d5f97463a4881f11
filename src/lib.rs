//! openclawd: keeps a local LLM stack (Ollama + OpenClaw) running by itself.
//! See ARCHITECTURE.md for the module map and the data flow.

pub mod backoff;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod discovery;
pub mod fsutil;
pub mod gateway;
pub mod housekeeping;
pub mod metrics;
pub mod ollama;
pub(crate) mod procinfo;
pub mod service;
pub mod state;
pub mod watch;

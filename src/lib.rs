//! openclawd: keeps a local LLM stack (Ollama + OpenClaw) running by itself.
//! See ARCHITECTURE.md for the module map and the data flow.

pub mod backoff;
pub mod config;
pub mod ollama;

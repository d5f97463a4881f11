//! The routing gateway (SPEC §5): OpenAI chat completions, Anthropic Messages and OpenAI
//! Responses on port 18789 that resolves each
//! request's model, walks the fallback chain, and speaks each provider's wire format.

mod api;
mod chat;
pub mod error;
pub mod hold;
pub mod measure;
pub use crate::metrics;
pub mod providers;
pub mod router;
pub mod server;
pub mod state;
pub mod status;
pub mod wire;

pub use error::GatewayError;
pub use state::GatewayState;

//! Configuration (SPEC §2): path resolution, OpenClaw's `openclaw.json` (JSON5, `${VAR}`,
//! `env.vars`, `$include`), `auth-profiles.json`, and openclawd's own `openclawd.json`,
//! parsed once into an immutable [`Snapshot`].

mod types;

pub use types::*;

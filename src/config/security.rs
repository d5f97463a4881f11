//! The rule no reload may break (SPEC §2): a gateway that listens beyond loopback has a token.

use std::net::SocketAddr;

use super::types::Snapshot;

impl Snapshot {
    /// Why this snapshot must not replace the running one, or `None` when it may: it would leave
    /// a non-loopback listener without a token. `listening_on` is the address the gateway is
    /// bound to now — not the previous snapshot's, since a listen address change only takes
    /// effect at the next start. A snapshot that asks for a non-loopback bind without a token is
    /// refused too: openclawd would refuse to start with it.
    ///
    /// The daemon calls this in its reload loop and treats `Some(why)` like an invalid edit
    /// (`config.error` = `why`; the last good snapshot and its token stay in use).
    pub fn security_regression(&self, listening_on: SocketAddr) -> Option<String> {
        if self.gateway.token.is_some() {
            return None;
        }
        let file = self.paths.config_file.display();
        let fix = "Set gateway.auth.token in openclaw.json (or OPENCLAW_GATEWAY_TOKEN in \
                   openclawd's environment)";
        if !listening_on.ip().is_loopback() {
            return Some(format!(
                "{file}: refused: this configuration has no gateway token, but the gateway \
                 listens on {listening_on} (not loopback), so anyone on the network could use \
                 your models. The last good configuration and its token stay in use. {fix}; or \
                 set gateway.bind to \"loopback\" and restart openclawd."
            ));
        }
        if !self.gateway.bind_addr.is_loopback() {
            return Some(format!(
                "{file}: refused: this configuration binds the gateway to {} (not loopback) \
                 without a token, so anyone on the network could use your models; openclawd \
                 would refuse to start with it. The last good configuration stays in use. {fix}, \
                 or bind loopback.",
                self.gateway.bind_addr
            ));
        }
        None
    }
}

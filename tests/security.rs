//! What a reload may not do: a config edit never lowers security (SPEC §2). A gateway reachable
//! from the network keeps requiring its token even when the token is deleted from the file.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn removing_the_token_of_a_lan_gateway_is_refused_and_the_old_token_keeps_working() {
    let env = TestEnv::new();
    env.write_own_settings("{ ollama: { manage: false } }");
    env.write_config("{ gateway: { bind: 'lan', auth: { token: 'lan-secret-1' } } }");
    let mut d = env.start();
    d.token = Some("lan-secret-1".into());
    assert_eq!(d.get("/v1/models").map(|(c, _)| c), Some(200));
    let anonymous = http_get(&format!("{}/v1/models", d.base)).map(|(c, _)| c);
    assert_eq!(anonymous, Some(401), "a LAN gateway needs its token");

    env.write_config("{ gateway: { bind: 'lan' } }");
    let st = d.wait_until("the edit refused", Duration::from_secs(10), |s| {
        s["config"]["error"].is_string()
    });
    let error = st["config"]["error"].as_str().unwrap();
    assert!(error.contains("without a token"), "{error}");
    assert!(error.contains("previous token stays in force"), "{error}");
    assert_eq!(
        st["config"]["generation"], 1,
        "the snapshot was not swapped"
    );

    let anonymous = http_get(&format!("{}/v1/models", d.base)).map(|(c, _)| c);
    assert_eq!(
        anonymous,
        Some(401),
        "still closed to anyone without the token"
    );
    assert_eq!(
        d.get("/v1/models").map(|(c, _)| c),
        Some(200),
        "old token works"
    );

    // Putting a token back (even a new one) is a normal reload.
    env.write_config("{ gateway: { bind: 'lan', auth: { token: 'lan-secret-2' } } }");
    d.token = Some("lan-secret-2".into());
    d.wait_until("the new token in force", Duration::from_secs(10), |s| {
        s["config"]["error"].is_null() && s["config"]["generation"] == 2
    });
    let anonymous = http_get(&format!("{}/v1/models", d.base)).map(|(c, _)| c);
    assert_eq!(anonymous, Some(401));
}

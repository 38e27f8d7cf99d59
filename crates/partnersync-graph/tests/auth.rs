//! Authentication and permissions against the emulator's token endpoint.

mod common;

use std::time::Duration;

use common::{anchor, fast_transport, partner, start_with};
use partnersync_graph_emulator::{AppRegistration, EmulatorConfig, Permission};
use partnersync_target::{CreationMode, ErrorCategory, Operation, TargetDirectory};

const READER_ID: &str = "11111111-2222-4333-8444-555555555555";
const READER_SECRET: &str = "reader-secret~value";

fn with_reader() -> EmulatorConfig {
    let mut config = EmulatorConfig::default();
    config.tenant.apps.push(AppRegistration {
        client_id: READER_ID.into(),
        client_secret: Some(READER_SECRET.into()),
        accepts_client_assertion: false,
        permissions: vec![Permission::UserReadAll],
        display_name: Some("reader".into()),
    });
    config
}

#[tokio::test]
async fn a_read_only_app_reads_but_writes_are_permission_errors() {
    let env = start_with(
        with_reader(),
        Some((READER_ID, READER_SECRET)),
        fast_transport(),
    )
    .await;
    assert!(env.target.list_managed().await.expect("reads").is_empty());
    let r = env
        .target
        .apply(&[Operation::Create {
            anchor: anchor(1),
            mode: CreationMode::Direct,
            attributes: partner(1, "contoso.com"),
        }])
        .await;
    let e = r[0].as_ref().expect_err("denied");
    assert_eq!(e.category, ErrorCategory::Permission);
    assert_eq!(e.code, "Authorization_RequestDenied");
    assert!(!format!("{:?}", env.target).contains(READER_SECRET));
}

#[tokio::test]
async fn a_wrong_secret_is_a_permission_error_without_the_secret() {
    let env = start_with(
        with_reader(),
        Some((READER_ID, "wrong-secret~xyz")),
        fast_transport(),
    )
    .await;
    let e = env.target.list_managed().await.expect_err("refused");
    assert_eq!(e.category, ErrorCategory::Permission);
    assert!(!e.message.contains("wrong-secret"), "{}", e.message);
    assert!(!format!("{e:?}").contains("wrong-secret"));
}

#[tokio::test]
async fn tokens_are_refreshed_before_they_expire() {
    let env = start_with(EmulatorConfig::default(), None, fast_transport()).await;
    env.emu
        .admin()
        .update_settings(|s| s.token_lifetime_secs = 2);
    env.target.list_managed().await.expect("first");
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    // The first token has expired; a second one was fetched before use.
    env.target.list_managed().await.expect("second");
    let unauthorized = env
        .emu
        .admin()
        .operations()
        .iter()
        .filter(|o| o.status == 401)
        .count();
    assert_eq!(unauthorized, 0);
}

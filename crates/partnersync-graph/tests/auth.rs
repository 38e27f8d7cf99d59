//! Authentication and permissions against the emulator's token endpoint.

mod common;

use std::time::Duration;

use common::{anchor, fast_transport, partner, start_with};
use partnersync_graph::CredentialSource;
use partnersync_graph_emulator::{AppRegistration, EmulatorConfig, Permission};
use partnersync_target::{CreationMode, ErrorCategory, Operation, TargetDirectory};

const READER_ID: &str = "11111111-2222-4333-8444-555555555555";
const READER_SECRET: &str = "reader-secret~value";

fn with_reader() -> EmulatorConfig {
    let mut config = EmulatorConfig::default();
    config.tenant.apps.push(AppRegistration {
        client_id: READER_ID.into(),
        client_secret: Some(READER_SECRET.into()),
        certificates: vec![],
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

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[tokio::test]
async fn a_certificate_credential_gets_a_token_and_works() {
    let env = common::start_with_credential(EmulatorConfig::default(), |emu| {
        let pem = common::temp_file(
            emu,
            "cert",
            partnersync_graph_emulator::DEFAULT_CLIENT_CERTIFICATE,
        );
        (
            CredentialSource::Certificate {
                certificate: pem.clone(),
                private_key: None,
            },
            pem,
        )
    })
    .await
    .expect("certificate loads");
    assert!(env.target.list_managed().await.expect("reads").is_empty());
    let r = env
        .target
        .apply(&[Operation::Create {
            anchor: anchor(7),
            mode: CreationMode::Direct,
            attributes: partner(7, "contoso.com"),
        }])
        .await;
    assert!(r[0].is_ok(), "{r:?}");
    // The token request carried a client assertion, not a secret: the emulator only accepts
    // it with a valid signature by the registered certificate.
    let debug = format!("{:?}", env.target);
    assert!(
        !debug.contains("PRIVATE KEY") && !debug.contains("MII"),
        "{debug}"
    );
}

#[tokio::test]
async fn a_certificate_kept_apart_from_its_key_loads_too() {
    // The emulator's PEM split into a certificate file and a key file.
    let text = partnersync_graph_emulator::DEFAULT_CLIENT_CERTIFICATE;
    let cut = text
        .find("-----BEGIN PRIVATE KEY-----")
        .expect("key section");
    let env = common::start_with_credential(EmulatorConfig::default(), |emu| {
        let cert = common::temp_file(emu, "cert-only", &text[..cut]);
        let key = common::temp_file(emu, "key-only", &text[cut..]);
        (
            CredentialSource::Certificate {
                certificate: cert.clone(),
                private_key: Some(key),
            },
            cert,
        )
    })
    .await
    .expect("loads");
    env.target
        .list_managed()
        .await
        .expect("token with a separate key file");
}

#[tokio::test]
async fn an_unregistered_certificate_is_refused_clearly() {
    let env = common::start_with_credential(EmulatorConfig::default(), |_| {
        (
            CredentialSource::Certificate {
                certificate: fixture("unregistered-app-cert.pem"),
                private_key: Some(fixture("unregistered-app-key.pem")),
            },
            std::env::temp_dir().join("ps-graph-nothing-to-clean"),
        )
    })
    .await
    .expect("loads");
    let e = env.target.list_managed().await.expect_err("refused");
    assert_eq!(e.category, ErrorCategory::Permission);
    assert_eq!(e.code, "invalid_client");
    assert!(e.message.contains("AADSTS700027"), "{}", e.message);
    assert!(e.message.contains("not registered"), "{}", e.message);
    // Names the certificate by thumbprint so the admin can compare with the portal.
    let cert = partnersync_graph::ClientCertificate::load(
        &fixture("unregistered-app-cert.pem"),
        Some(&fixture("unregistered-app-key.pem")),
    )
    .expect("loads");
    assert!(e.message.contains(cert.thumbprint()), "{}", e.message);
    let key = std::fs::read_to_string(fixture("unregistered-app-key.pem")).unwrap_or_default();
    let key_body = key.lines().nth(2).unwrap_or("-");
    assert!(!e.message.contains(key_body) && !format!("{e:?}").contains(key_body));
}

#[tokio::test]
async fn a_key_that_does_not_match_its_certificate_is_a_config_error() {
    let e = common::start_with_credential(EmulatorConfig::default(), |emu| {
        let pem = common::temp_file(
            emu,
            "mismatch",
            partnersync_graph_emulator::DEFAULT_CLIENT_CERTIFICATE,
        );
        (
            CredentialSource::Certificate {
                certificate: fixture("unregistered-app-cert.pem"),
                private_key: Some(pem.clone()),
            },
            pem,
        )
    })
    .await
    .err()
    .expect("refused at load");
    assert!(
        e.to_string().contains("does not belong to the certificate"),
        "{e}"
    );
}

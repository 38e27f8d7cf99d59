//! ldap3 panics inside its connection task on some replies (Samba answers an unsupported
//! critical control with an ExtendedResponse, op 24, to a search). A fake server on loopback
//! sends exactly that; the read must fail with a clear error, and the program go on.

use partnersync_ldap::{LdapConfig, LdapSource, LdapSourceError};
use partnersync_source::{EntryCollector, SourceDirectory, SourceError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// BindResponse (success) to message 1, then ExtendedResponse (unavailableCriticalExtension)
/// to message 2 instead of search results.
const BIND_OK: &[u8] = &[
    0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00,
];
const EXTENDED: &[u8] = &[
    0x30, 0x0c, 0x02, 0x01, 0x02, 0x78, 0x07, 0x0a, 0x01, 0x0c, 0x04, 0x00, 0x04, 0x00,
];

#[tokio::test]
async fn a_crash_of_ldap3s_connection_task_is_an_error_not_a_crash() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf).await.unwrap(); // bind request
        sock.write_all(BIND_OK).await.unwrap();
        let _ = sock.read(&mut buf).await.unwrap(); // rootDSE search
        sock.write_all(EXTENDED).await.unwrap();
        let _ = sock.read(&mut buf).await; // until the client goes away
    });
    let mut config = LdapConfig::new(format!("ldap://127.0.0.1:{port}"));
    config.bind_dn = Some("cn=reader".into());
    std::env::set_var("PARTNERSYNC_TEST_FAKE_PW", "x");
    config.password_env = Some("PARTNERSYNC_TEST_FAKE_PW".into());
    config.starttls = false;
    config.allow_plaintext_bind = true;
    config.operation_timeout_secs = 10;
    let source = LdapSource::new(config).unwrap();
    let mut sink = EntryCollector::new();
    let err = source.full_read(&mut sink).await.unwrap_err();
    let SourceError::Backend(inner) = &err else {
        panic!("{err}")
    };
    let Some(LdapSourceError::ConnectionLost { reason, .. }) = inner.downcast_ref() else {
        panic!("{err}")
    };
    assert!(reason.contains("crashed"), "{reason}");
    assert!(sink.entries.is_empty());
    server.abort();
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_with_a_clear_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    });
    let mut config = LdapConfig::new(format!("ldap://127.0.0.1:{port}"));
    config.starttls = false;
    config.operation_timeout_secs = 1;
    let err = LdapSource::new(config)
        .unwrap()
        .describe()
        .await
        .unwrap_err();
    let SourceError::Backend(inner) = &err else {
        panic!("{err}")
    };
    assert!(
        matches!(
            inner.downcast_ref(),
            Some(LdapSourceError::Timeout { seconds: 1, .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("timed out after 1 s"), "{err}");
    server.abort();
}

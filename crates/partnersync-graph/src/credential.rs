//! Certificate credentials: the JWT client assertion Entra ID accepts instead of a client
//! secret (RFC 7523, "Microsoft identity platform application authentication certificate
//! credentials").
//!
//! The assertion is signed RS256 with the certificate's private key; its header names the
//! certificate by `x5t` (base64url SHA-1 thumbprint of the DER certificate, what Entra looks
//! the key up by) and `x5t#S256` (the SHA-256 thumbprint newer Entra versions prefer). Claims:
//! `aud` = the token endpoint, `iss` = `sub` = the client id, a random `jti`, `nbf`/`iat` =
//! now, `exp` = now + 10 minutes. A fresh assertion is made for every token request.
//!
//! Built on `ring` (RSA signing, SHA-1/SHA-256), `rustls-pki-types` (PEM) and `x509-parser`
//! (to check that the key belongs to the certificate and to read its validity), all of which
//! the workspace already has through rustls and the rules crate — no OpenSSL.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use partnersync_target::{ErrorCategory, TargetError};
use ring::signature::RsaKeyPair;
use rustls_pki_types::pem::{PemObject, SectionKind};
use serde_json::json;

use crate::GraphError;

/// How long an assertion is valid. Entra accepts up to a day; short is safer.
const ASSERTION_LIFETIME_SECS: u64 = 600;

/// A certificate and its private key, loaded and checked. `Debug` shows the thumbprint and
/// subject only, never key material.
#[derive(Clone)]
pub struct ClientCertificate {
    key: Arc<RsaKeyPair>,
    x5t: String,
    x5t_s256: String,
    thumbprint_hex: String,
    subject: String,
    not_after: i64,
    source: PathBuf,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("thumbprint", &self.thumbprint_hex)
            .field("subject", &self.subject)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

fn config_error(path: &Path, what: impl std::fmt::Display) -> GraphError {
    GraphError::Config(format!("certificate {}: {what}", path.display()))
}

impl ClientCertificate {
    /// Loads the certificate from `certificate` (PEM) and the private key from `private_key`
    /// or, when that is `None`, from the same file. The key must be an unencrypted RSA key
    /// (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`) that belongs to the certificate.
    /// Errors name the file and say what to do; they never contain key material.
    pub fn load(certificate: &Path, private_key: Option<&Path>) -> Result<Self, GraphError> {
        let cert_pem = read(certificate)?;
        let mut cert_der: Option<Vec<u8>> = None;
        let mut key: Option<(SectionKind, Vec<u8>)> = None;
        let mut encrypted = false;
        let mut scan = |pem: &[u8], path: &Path, want_cert: bool| -> Result<(), GraphError> {
            for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
                let (kind, der) = section
                    .map_err(|e| config_error(path, format!("is not a readable PEM file ({e})")))?;
                match kind {
                    SectionKind::Certificate if want_cert && cert_der.is_none() => {
                        cert_der = Some(der)
                    }
                    SectionKind::PrivateKey | SectionKind::RsaPrivateKey if key.is_none() => {
                        key = Some((kind, der))
                    }
                    SectionKind::EcPrivateKey => {
                        return Err(config_error(
                            path,
                            "holds an EC key; Entra ID app certificates for client assertions \
                             must be RSA (create one with `openssl req -x509 -newkey rsa:2048 ...`)",
                        ))
                    }
                    _ => {}
                }
            }
            if pem
                .windows(b"ENCRYPTED PRIVATE KEY".len())
                .any(|w| w == b"ENCRYPTED PRIVATE KEY")
                || pem
                    .windows(b"Proc-Type: 4,ENCRYPTED".len())
                    .any(|w| w == b"Proc-Type: 4,ENCRYPTED")
            {
                encrypted = true;
            }
            Ok(())
        };
        scan(&cert_pem, certificate, true)?;
        let key_path = private_key.unwrap_or(certificate);
        if let Some(path) = private_key {
            let key_pem = read(path)?;
            scan(&key_pem, path, false)?;
        }
        let Some(cert_der) = cert_der else {
            return Err(config_error(
                certificate,
                "has no -----BEGIN CERTIFICATE----- section; give the PEM certificate you \
                 uploaded to the app registration (Certificates & secrets)",
            ));
        };
        let Some((kind, key_der)) = key else {
            let why = if encrypted {
                "holds only an encrypted private key; partnersync cannot ask for a passphrase. \
                 Export it unencrypted (`openssl pkey -in key.pem -out plain.pem`) into a file \
                 only the service account can read"
            } else if private_key.is_some() {
                "has no -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY----- section"
            } else {
                "has no private key; put the key in the same PEM file after the certificate, \
                 or set private_key_file"
            };
            return Err(config_error(key_path, why));
        };
        let key_pair = match kind {
            SectionKind::RsaPrivateKey => RsaKeyPair::from_der(&key_der),
            _ => RsaKeyPair::from_pkcs8(&key_der),
        }
        .map_err(|e| {
            config_error(
                key_path,
                format!("the private key is not a usable RSA key ({e}); it must be RSA, 2048 bits or more"),
            )
        })?;
        drop(key_der);
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).map_err(|e| {
            config_error(
                certificate,
                format!("the certificate is not valid X.509 ({e})"),
            )
        })?;
        let cert_key: &[u8] = &cert.tbs_certificate.subject_pki.subject_public_key.data;
        use ring::signature::KeyPair as _;
        if key_pair.public_key().as_ref() != cert_key {
            return Err(config_error(
                key_path,
                "the private key does not belong to the certificate; use the key the \
                 certificate was created with",
            ));
        }
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &cert_der);
        let sha256 = ring::digest::digest(&ring::digest::SHA256, &cert_der);
        let thumbprint_hex = sha1
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<String>();
        Ok(ClientCertificate {
            key: Arc::new(key_pair),
            x5t: B64URL.encode(sha1.as_ref()),
            x5t_s256: B64URL.encode(sha256.as_ref()),
            thumbprint_hex,
            subject: cert.subject().to_string(),
            not_after: cert.validity().not_after.timestamp(),
            source: certificate.to_path_buf(),
        })
    }

    /// The SHA-1 thumbprint in upper-case hex, as the Entra admin center shows it.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint_hex
    }

    /// The certificate's subject, e.g. `CN=partnersync`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The end of the certificate's validity, seconds since the Unix epoch.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// A signed client assertion for `client_id` at the token endpoint `audience`.
    pub(crate) fn assertion(&self, client_id: &str, audience: &str) -> Result<String, TargetError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut jti = [0u8; 16];
        getrandom::getrandom(&mut jti).map_err(|e| {
            TargetError::new(
                ErrorCategory::Other,
                "partnersync_NoRandomness",
                format!("the OS random source failed: {e}"),
            )
        })?;
        // A version-4 UUID, as Microsoft's libraries send.
        jti[6] = (jti[6] & 0x0f) | 0x40;
        jti[8] = (jti[8] & 0x3f) | 0x80;
        let hex: String = jti.iter().map(|b| format!("{b:02x}")).collect();
        let jti = format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        );
        let header =
            json!({"alg": "RS256", "typ": "JWT", "x5t": self.x5t, "x5t#S256": self.x5t_s256});
        let claims = json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": jti,
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| {
                TargetError::new(
                    ErrorCategory::Other,
                    "partnersync_SigningFailed",
                    format!(
                        "signing the client assertion with certificate {} failed",
                        self.thumbprint_hex
                    ),
                )
            })?;
        Ok(format!("{signing_input}.{}", B64URL.encode(signature)))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, GraphError> {
    std::fs::read(path).map_err(|e| config_error(path, format!("cannot be read: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name)
    }

    fn emulator_pem() -> PathBuf {
        fixture("../partnersync-graph-emulator/certs/emulator-app.pem")
    }

    #[test]
    fn loads_cert_and_key_from_one_file_and_signs_verifiably() {
        let c = ClientCertificate::load(&emulator_pem(), None).expect("loads");
        assert_eq!(c.thumbprint().len(), 40);
        assert!(c.subject().contains("partnersync emulator app"));
        assert!(c.not_after() > 2_000_000_000);
        let a = c
            .assertion("client-1", "https://login/t/oauth2/v2.0/token")
            .expect("signs");
        let parts: Vec<&str> = a.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(parts[0]).unwrap_or_default())
                .unwrap_or_default();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["x5t"], c.x5t.as_str());
        assert_eq!(
            B64URL
                .decode(header["x5t"].as_str().unwrap_or(""))
                .map(|v| v.len())
                .ok(),
            Some(20)
        );
        assert!(header["x5t#S256"].is_string());
        let claims: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(parts[1]).unwrap_or_default())
                .unwrap_or_default();
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["aud"], "https://login/t/oauth2/v2.0/token");
        assert_eq!(claims["jti"].as_str().map(str::len), Some(36));
        assert!(claims["exp"].as_u64() > claims["nbf"].as_u64());
        // The signature verifies with the certificate's public key.
        use ring::signature::KeyPair as _;
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            c.key.public_key().as_ref().to_vec(),
        );
        let sig = B64URL.decode(parts[2]).unwrap_or_default();
        assert!(public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .is_ok());
        // Two assertions differ (jti).
        assert_ne!(
            c.assertion("client-1", "aud").ok(),
            c.assertion("client-1", "aud").ok()
        );
        let debug = format!("{c:?}");
        assert!(debug.contains(c.thumbprint()) && !debug.contains("PRIVATE"));
    }

    #[test]
    fn separate_pkcs1_key_file_and_mismatches() {
        let cert = fixture("tests/fixtures/unregistered-app-cert.pem");
        let key = fixture("tests/fixtures/unregistered-app-key.pem");
        let emulator = emulator_pem();
        assert!(ClientCertificate::load(&cert, Some(&key)).is_ok());
        let failing: [(&Path, Option<&Path>, &str); 4] = [
            // Certificate without a key.
            (&cert, None, "has no private key"),
            // The emulator's key with the other certificate.
            (&cert, Some(&emulator), "does not belong"),
            // A key file given as the certificate.
            (&key, None, "BEGIN CERTIFICATE"),
            (
                Path::new("/nonexistent/app.pem"),
                None,
                "/nonexistent/app.pem",
            ),
        ];
        for (c, k, expected) in failing {
            let e = ClientCertificate::load(c, k)
                .expect_err(expected)
                .to_string();
            assert!(e.contains(expected), "{e}");
            // Key material never shows up in errors.
            assert!(!e.contains("MII"), "{e}");
        }
    }

    #[test]
    fn encrypted_keys_are_refused_with_advice() {
        let dir = std::env::temp_dir().join(format!("ps-cert-enc-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("enc.pem");
        let cert = std::fs::read_to_string(fixture("tests/fixtures/unregistered-app-cert.pem"))
            .unwrap_or_default();
        let text = format!(
            "{cert}-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBAA==\n-----END ENCRYPTED PRIVATE KEY-----\n"
        );
        assert!(std::fs::write(&path, text).is_ok());
        let e = ClientCertificate::load(&path, None).expect_err("encrypted");
        assert!(e.to_string().contains("unencrypted"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

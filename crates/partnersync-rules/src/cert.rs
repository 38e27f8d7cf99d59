//! Connect's certificate functions (`CertThumbprint`, `CertNotAfter`, `IsCert`, ...).
//!
//! Connect implements them over .NET's `X509Certificate2`, so each function returns what the
//! matching .NET property prints:
//!
//! * `CertThumbprint`, `CertHashString`: upper-case hex SHA-1 of the DER bytes.
//! * `CertSerialNumber`: upper-case hex of the serial's DER content bytes, big-endian, with the
//!   leading `00` DER adds to a serial whose top bit is set (`008F00…`), as .NET shows it.
//! * `CertSubject`, `CertSubjectNameDN`, `CertIssuer`, `CertIssuerDN`: the name the way
//!   `X500DistinguishedName.Name` prints it: last RDN first, `", "` between RDNs, `" + "` inside
//!   a multi-valued RDN, Windows' attribute keys (`CN`, `OU`, `O`, `L`, `S`, `C`, `E`, `DC`, ...,
//!   `OID.1.2.3=` for others), values quoted (`O="Contoso, Ltd"`) when they are empty, start or
//!   end with white space, or hold one of `, + = " \n < > # ;` (inner quotes doubled).
//! * `CertSubjectNameOid`, `CertIssuerOid`: `NULL`. A name read from a certificate has no OID in
//!   .NET (`X500DistinguishedName.Oid.Value` is null).
//! * `CertNotBefore`, `CertNotAfter`: dates (UTC).
//! * `CertVersion`: `"1"`, `"2"` or `"3"`.
//! * `CertFormat`: `"X509"`. `CertFriendlyName`: `""` (a friendly name lives in a certificate
//!   store, never in the certificate's bytes).
//! * `CertSignatureAlgorithmOid`, `CertKeyAlgorithm`, `CertPublicKeyOid`: dotted OIDs.
//!   `CertPublicKeyParametersOid` is .NET's `PublicKey.EncodedParameters.Oid.Value`, which is the
//!   key algorithm's OID again (`1.2.840.113549.1.1.1` for RSA).
//! * `CertKeyAlgorithmParams`: upper-case hex of the DER-encoded key algorithm parameters
//!   (`0500` for RSA, the curve OID `06082A8648CE3D030107` for P-256, `""` when absent).
//! * `CertExtensionOids`: the OIDs of the critical extensions, in certificate order, as a
//!   multi-valued result (`NULL` when none is critical).
//! * `CertNameInfo(cert, type, includesIssuerName)`: `X509Certificate2.GetNameInfo`, with the
//!   subject (or, when the flag is true, the issuer and the Issuer Alternative Name).
//! * `IsCert`: `True` when the value loads as a certificate, else `False` (also for `NULL`).
//!
//! The certificate may be DER bytes, or text (or bytes of text) holding base64 DER or PEM.

use std::borrow::Cow;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use sha1::{Digest as _, Sha1};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::asn1_rs::{Any, Class, FromDer as _};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::x509::X509Name;

use crate::eval::{fail, Res};
use crate::functions::{name_of, Func};
use crate::value::Value;
use crate::Dialect;

const OID_COMMON_NAME: &str = "2.5.4.3";
const OID_ORG_UNIT: &str = "2.5.4.11";
const OID_ORG: &str = "2.5.4.10";
const OID_EMAIL: &str = "1.2.840.113549.1.9.1";
const OID_SUBJECT_ALT_NAME: &str = "2.5.29.17";
const OID_ISSUER_ALT_NAME: &str = "2.5.29.18";
const OID_UPN: &str = "1.3.6.1.4.1.311.20.2.3";

/// Base64 that tolerates missing padding, as .NET's certificate loader does.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub(crate) fn evaluate<'a>(func: Func, cert: Value<'a>, b: Value<'a>, c: Value<'a>) -> Res<'a> {
    let name = name_of(Dialect::AadConnect, func);
    if func == Func::IsCert {
        return Ok(Value::Bool(is_cert(&cert)));
    }
    let der = match &cert {
        Value::Null => return Ok(Value::Null),
        Value::Bin(bytes) => load_bytes(bytes),
        Value::Str(text) => load_text(text),
        other => {
            return fail(format!(
                "{name} needs a certificate (binary DER, or base64 or PEM text), got a {} value",
                other.type_name()
            ))
        }
    };
    let der = match der {
        Ok(der) => der,
        Err(why) => {
            return fail(format!(
                "{name}: the value is not an X.509 certificate: {why}"
            ))
        }
    };
    let parsed = match parse(&der) {
        Ok(parsed) => parsed,
        Err(why) => {
            return fail(format!(
                "{name}: the value is not an X.509 certificate: {why}"
            ))
        }
    };
    property(func, name, &parsed, &der, b, c)
}

/// Whether a value loads as a certificate. A multi-valued value counts when every one of its
/// values does.
fn is_cert(value: &Value<'_>) -> bool {
    let der = match value {
        Value::Bin(bytes) => load_bytes(bytes),
        Value::Str(text) => load_text(text),
        Value::Multi(values) => {
            return !values.is_empty() && values.iter().all(is_cert);
        }
        _ => return false,
    };
    der.is_ok_and(|der| parse(&der).is_ok())
}

/// The DER bytes of a binary value: the bytes themselves, or, when they are text, the base64
/// or PEM they hold.
fn load_bytes(bytes: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    if bytes.first() == Some(&0x30) {
        return Ok(Cow::Borrowed(bytes));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => load_text(text).map(|der| Cow::Owned(der.into_owned())),
        Err(_) => Err("the bytes are neither DER (which starts with a SEQUENCE) nor text".into()),
    }
}

/// The DER bytes held by text: PEM (`-----BEGIN CERTIFICATE-----`) or bare base64.
fn load_text(text: &str) -> Result<Cow<'static, [u8]>, String> {
    let text = text.trim();
    let body = if let Some(start) = text.find("-----BEGIN") {
        let rest = &text[start..];
        let header_end = rest[10..]
            .find("-----")
            .map(|i| i + 15)
            .ok_or("the PEM header is not closed")?;
        let label = rest[10..header_end - 5].trim();
        if !matches!(
            label,
            "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE"
        ) {
            return Err(format!("the PEM block is a {label:?}, not a CERTIFICATE"));
        }
        let body = &rest[header_end..];
        let end = body
            .find("-----END")
            .ok_or("the PEM block has no END line")?;
        &body[..end]
    } else {
        text
    };
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err("the text is empty".into());
    }
    BASE64
        .decode(compact.as_bytes())
        .map(Cow::Owned)
        .map_err(|_| "the text is neither base64 nor PEM".into())
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok((rest, _)) => Err(format!(
            "{} unexpected byte(s) follow the certificate",
            rest.len()
        )),
        Err(e) => Err(format!("cannot read the DER ({e})")),
    }
}

fn property<'a>(
    func: Func,
    name: &str,
    cert: &X509Certificate<'_>,
    der: &[u8],
    b: Value<'a>,
    c: Value<'a>,
) -> Res<'a> {
    let tbs = &cert.tbs_certificate;
    let text = |s: String| Ok(Value::string(s));
    match func {
        Func::CertThumbprint | Func::CertHashString => text(hex(&Sha1::digest(der))),
        Func::CertSerialNumber => text(hex(tbs.raw_serial())),
        Func::CertSubject | Func::CertSubjectNameDn => text(dotnet_name(&tbs.subject)),
        Func::CertIssuer | Func::CertIssuerDn => text(dotnet_name(&tbs.issuer)),
        Func::CertSubjectNameOid | Func::CertIssuerOid => Ok(Value::Null),
        Func::CertNotBefore => date(name, tbs.validity.not_before.timestamp()),
        Func::CertNotAfter => date(name, tbs.validity.not_after.timestamp()),
        Func::CertVersion => text((tbs.version.0 + 1).to_string()),
        Func::CertFormat => Ok(Value::str("X509")),
        Func::CertFriendlyName => Ok(Value::str("")),
        Func::CertSignatureAlgorithmOid => text(cert.signature_algorithm.algorithm.to_id_string()),
        Func::CertKeyAlgorithm | Func::CertPublicKeyOid | Func::CertPublicKeyParametersOid => {
            text(tbs.subject_pki.algorithm.algorithm.to_id_string())
        }
        Func::CertKeyAlgorithmParams => text(match &tbs.subject_pki.algorithm.parameters {
            Some(any) => hex(&encode_any(any)),
            None => String::new(),
        }),
        Func::CertExtensionOids => {
            let oids: Vec<Value<'a>> = tbs
                .extensions()
                .iter()
                .filter(|e| e.critical)
                .map(|e| Value::string(e.oid.to_id_string()))
                .collect();
            Ok(if oids.is_empty() {
                Value::Null
            } else {
                Value::Multi(oids)
            })
        }
        Func::CertNameInfo => {
            let kind = name_type(name, &b)?;
            let for_issuer = flag(name, &c)?;
            text(name_info(cert, kind, for_issuer))
        }
        _ => fail(format!(
            "{name}: internal error: not a certificate function"
        )),
    }
}

fn date<'a>(name: &str, unix_seconds: i64) -> Res<'a> {
    match DateTime::<Utc>::from_timestamp(unix_seconds, 0) {
        Some(d) => Ok(Value::Date(d)),
        None => fail(format!("{name}: the certificate's date is out of range")),
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xF)] as char);
    }
    out
}

/// Re-encodes a parsed ASN.1 value as DER (identifier, length, content).
fn encode_any(any: &Any<'_>) -> Vec<u8> {
    let class: u8 = match any.class() {
        Class::Universal => 0,
        Class::Application => 1,
        Class::ContextSpecific => 2,
        Class::Private => 3,
    };
    let mut out = Vec::with_capacity(any.data.len() + 8);
    let first = (class << 6) | if any.header.is_constructed() { 0x20 } else { 0 };
    let tag = any.tag().0;
    if tag < 31 {
        out.push(first | tag as u8);
    } else {
        out.push(first | 0x1F);
        let mut groups = Vec::new();
        let mut t = tag;
        loop {
            groups.push((t & 0x7F) as u8);
            t >>= 7;
            if t == 0 {
                break;
            }
        }
        for (i, g) in groups.iter().enumerate().rev() {
            out.push(if i == 0 { *g } else { g | 0x80 });
        }
    }
    let len = any.data.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(any.data);
    out
}

/// Windows' key for an RDN attribute in `X500DistinguishedName.Name`.
fn rdn_key(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "SERIALNUMBER",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "S",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "T",
        "2.5.4.13" => "Description",
        "2.5.4.17" => "PostalCode",
        "2.5.4.18" => "POBox",
        "2.5.4.20" => "Phone",
        "2.5.4.24" => "X21Address",
        "2.5.4.42" => "G",
        "2.5.4.43" => "I",
        "2.5.4.46" => "dnQualifier",
        "1.2.840.113549.1.9.1" => "E",
        "0.9.2342.19200300.100.1.25" => "DC",
        _ => return None,
    })
}

/// The text of an attribute value: any ASN.1 string type, or `#` and the hex of the DER
/// encoding for anything else (as Windows prints it).
fn any_text(any: &Any<'_>) -> String {
    let data = any.data;
    if any.class() != Class::Universal {
        return format!("#{}", hex(&encode_any(any)));
    }
    match any.tag().0 {
        // UTF8String, NumericString, PrintableString, IA5String, VisibleString
        12 | 18 | 19 | 22 | 26 => String::from_utf8_lossy(data).into_owned(),
        // TeletexString: UTF-8 when it decodes, else Latin-1
        20 => match std::str::from_utf8(data) {
            Ok(s) => s.to_owned(),
            Err(_) => data.iter().map(|b| char::from(*b)).collect(),
        },
        // UniversalString (UTF-32BE)
        28 => data
            .chunks(4)
            .map(|c| {
                let mut v = [0u8; 4];
                v[..c.len()].copy_from_slice(c);
                char::from_u32(u32::from_be_bytes(v)).unwrap_or('\u{FFFD}')
            })
            .collect(),
        // BMPString (UTF-16BE)
        30 => {
            let units: Vec<u16> = data
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => format!("#{}", hex(&encode_any(any))),
    }
}

fn needs_quotes(value: &str) -> bool {
    let quotable_space = |c: char| c == ' ' || ('\u{9}'..='\u{D}').contains(&c);
    value.is_empty()
        || value.starts_with(quotable_space)
        || value.ends_with(quotable_space)
        || value.contains([',', '+', '=', '"', '\n', '<', '>', '#', ';'])
}

/// A name as .NET's `X500DistinguishedName.Name` prints it.
fn dotnet_name(name: &X509Name<'_>) -> String {
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push_str(" + ");
            }
            let oid = attr.attr_type().to_id_string();
            match rdn_key(&oid) {
                Some(key) => out.push_str(key),
                None => {
                    out.push_str("OID.");
                    out.push_str(&oid);
                }
            }
            out.push('=');
            let value = any_text(attr.attr_value());
            if needs_quotes(&value) {
                out.push('"');
                out.push_str(&value.replace('"', "\"\""));
                out.push('"');
            } else {
                out.push_str(&value);
            }
        }
    }
    out
}

/// .NET's `X509NameType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameType {
    Simple,
    Email,
    Upn,
    Dns,
    DnsFromAlternativeName,
    Url,
}

const NAME_TYPES: [(&str, NameType); 6] = [
    ("SimpleName", NameType::Simple),
    ("EmailName", NameType::Email),
    ("UpnName", NameType::Upn),
    ("DnsName", NameType::Dns),
    ("DnsFromAlternativeName", NameType::DnsFromAlternativeName),
    ("UrlName", NameType::Url),
];

/// Reads the `x509NameType` argument: a name (any case) or the enum's number (0 to 5).
fn name_type(name: &str, v: &Value<'_>) -> Result<NameType, crate::eval::Stop> {
    let text = match v {
        Value::Str(s) => s.trim().to_owned(),
        Value::Num(n) => n.to_string(),
        Value::Null => {
            return fail(format!(
                "{name} needs an X509NameType (SimpleName, EmailName, UpnName, DnsName, DnsFromAlternativeName or UrlName), got NULL"
            ))
        }
        other => {
            return fail(format!(
                "{name} needs an X509NameType as text, got a {} value",
                other.type_name()
            ))
        }
    };
    if let Ok(n) = text.parse::<usize>() {
        if let Some((_, t)) = NAME_TYPES.get(n) {
            return Ok(*t);
        }
    }
    match NAME_TYPES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(&text))
    {
        Some((_, t)) => Ok(*t),
        None => fail(format!(
            "{name}: unsupported X509NameType {text:?}; use SimpleName, EmailName, UpnName, DnsName, DnsFromAlternativeName or UrlName"
        )),
    }
}

/// Reads the `includesIssuerName` argument. `NULL` is False.
fn flag(name: &str, v: &Value<'_>) -> Result<bool, crate::eval::Stop> {
    match v {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        Value::Num(n) => Ok(*n != 0),
        Value::Str(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
        Value::Str(s) if s.trim().eq_ignore_ascii_case("false") || s.trim().is_empty() => Ok(false),
        other => fail(format!(
            "{name} needs True or False for includesIssuerName, got {other}"
        )),
    }
}

/// The attributes of a name, last RDN first (the order .NET prints them in), as
/// (OID, text) pairs.
fn reverse_attributes(name: &X509Name<'_>) -> Vec<(String, String)> {
    let rdns: Vec<_> = name.iter_rdn().collect();
    rdns.iter()
        .rev()
        .flat_map(|rdn| rdn.iter())
        .map(|a| (a.attr_type().to_id_string(), any_text(a.attr_value())))
        .collect()
}

/// `X509Certificate2.GetNameInfo(type, forIssuer)`, following Windows' `CertGetNameString`.
fn name_info(cert: &X509Certificate<'_>, kind: NameType, for_issuer: bool) -> String {
    let tbs = &cert.tbs_certificate;
    let name = if for_issuer {
        &tbs.issuer
    } else {
        &tbs.subject
    };
    let attrs = reverse_attributes(name);
    let first = |oid: &str| attrs.iter().find(|(o, _)| o == oid).map(|(_, v)| v.clone());

    if kind == NameType::Simple {
        // CN, then OU, O, E, then any other attribute; the first of each in display order.
        let simple = first(OID_COMMON_NAME)
            .or_else(|| first(OID_ORG_UNIT))
            .or_else(|| first(OID_ORG))
            .or_else(|| first(OID_EMAIL))
            .or_else(|| {
                attrs
                    .iter()
                    .find(|(o, _)| {
                        ![OID_COMMON_NAME, OID_ORG_UNIT, OID_ORG, OID_EMAIL].contains(&o.as_str())
                    })
                    .map(|(_, v)| v.clone())
            });
        if let Some(s) = simple {
            return s;
        }
    }

    let ext_oid = if for_issuer {
        OID_ISSUER_ALT_NAME
    } else {
        OID_SUBJECT_ALT_NAME
    };
    for ext in tbs.extensions() {
        if ext.oid.to_id_string() != ext_oid {
            continue;
        }
        let names = match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => &san.general_names,
            ParsedExtension::IssuerAlternativeName(ian) => &ian.general_names,
            _ => continue,
        };
        for general in names {
            let found = match (kind, general) {
                (NameType::Simple | NameType::Email, GeneralName::RFC822Name(s)) => {
                    Some((*s).to_owned())
                }
                (NameType::Dns | NameType::DnsFromAlternativeName, GeneralName::DNSName(s)) => {
                    Some((*s).to_owned())
                }
                (NameType::Url, GeneralName::URI(s)) => Some((*s).to_owned()),
                (NameType::Upn, GeneralName::OtherName(oid, value))
                    if oid.to_id_string() == OID_UPN =>
                {
                    explicit_string(value)
                }
                _ => None,
            };
            if let Some(found) = found {
                return found;
            }
        }
    }

    let fallback = match kind {
        NameType::Email => first(OID_EMAIL),
        NameType::Dns => first(OID_COMMON_NAME),
        _ => None,
    };
    fallback.unwrap_or_default()
}

/// The string inside an otherName's `[0] EXPLICIT` value.
fn explicit_string(encoded: &[u8]) -> Option<String> {
    let (_, outer) = Any::from_der(encoded).ok()?;
    let (_, inner) = Any::from_der(outer.data).ok()?;
    let text = any_text(&inner);
    (!text.starts_with('#')).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::Stop;

    const USER: &[u8] = include_bytes!("../tests/fixtures/certs/user.der");
    const EXPIRED: &[u8] = include_bytes!("../tests/fixtures/certs/expired.der");
    const CA_PEM: &str = include_str!("../tests/fixtures/certs/ca.pem");

    fn run(func: Func, cert: Value<'static>) -> Value<'static> {
        run3(func, cert, Value::Null, Value::Null)
    }

    fn run3(
        func: Func,
        cert: Value<'static>,
        b: Value<'static>,
        c: Value<'static>,
    ) -> Value<'static> {
        match evaluate(func, cert, b, c) {
            Ok(v) => v.into_owned(),
            Err(Stop::Error(e)) => panic!("{func:?} failed: {}", e.message),
            Err(_) => panic!("{func:?} stopped with a flow sentinel"),
        }
    }

    fn error(func: Func, cert: Value<'static>, b: Value<'static>, c: Value<'static>) -> String {
        match evaluate(func, cert, b, c) {
            Ok(v) => panic!("{func:?} should fail, got {v}"),
            Err(Stop::Error(e)) => e.message,
            Err(_) => panic!("{func:?} stopped with a flow sentinel"),
        }
    }

    fn user() -> Value<'static> {
        Value::Bin(Cow::Borrowed(USER))
    }

    fn expired() -> Value<'static> {
        Value::Bin(Cow::Borrowed(EXPIRED))
    }

    fn ca() -> Value<'static> {
        Value::str(CA_PEM)
    }

    fn s(text: &str) -> Value<'static> {
        Value::string(text.to_owned())
    }

    fn utc(text: &str) -> Value<'static> {
        Value::Date(text.parse::<DateTime<Utc>>().unwrap())
    }

    fn name_info_of(cert: Value<'static>, kind: &str, issuer: bool) -> Value<'static> {
        run3(Func::CertNameInfo, cert, s(kind), Value::Bool(issuer))
    }

    #[test]
    fn thumbprint_and_hash_string_are_upper_hex_sha1() {
        // openssl x509 -noout -fingerprint -sha1
        let want = s("0B5CA8D89FD1AA007E465FBE9CF2CC6741921A6E");
        assert_eq!(run(Func::CertThumbprint, user()), want);
        assert_eq!(run(Func::CertHashString, user()), want);
        assert_eq!(
            run(Func::CertThumbprint, expired()),
            s("375EAEB8792CFFA4A15F7135E35EFC12C5D06DFE")
        );
        assert_eq!(
            run(Func::CertThumbprint, ca()),
            s("E75275DF1B21F8A14EB11A32109B643DB1AD55CA")
        );
    }

    #[test]
    fn serial_number_keeps_the_der_sign_byte() {
        assert_eq!(run(Func::CertSerialNumber, user()), s("0A1B2C3D4E5F"));
        // openssl prints 8F00000000000001; the DER content (and .NET) has a leading 00.
        assert_eq!(
            run(Func::CertSerialNumber, expired()),
            s("008F00000000000001")
        );
        assert_eq!(run(Func::CertSerialNumber, ca()), s("1000"));
    }

    #[test]
    fn subject_and_issuer_print_like_dotnet() {
        let subject =
            s("CN=Jane Doe, OU=Partners, O=\"Contoso, Ltd\", L=Redmond, S=Washington, C=US");
        assert_eq!(run(Func::CertSubject, user()), subject);
        assert_eq!(run(Func::CertSubjectNameDn, user()), subject);
        let issuer = s("CN=Contoso Partner CA, O=Contoso, DC=contoso, DC=com");
        assert_eq!(run(Func::CertIssuer, user()), issuer);
        assert_eq!(run(Func::CertIssuerDn, user()), issuer);
        assert_eq!(run(Func::CertSubject, ca()), issuer);
        let old = s("E=old@fabrikam.com, OU=Legacy Partners, O=Fabrikam");
        assert_eq!(run(Func::CertSubject, expired()), old);
        assert_eq!(run(Func::CertIssuer, expired()), old);
    }

    #[test]
    fn name_oids_are_null() {
        assert_eq!(run(Func::CertSubjectNameOid, user()), Value::Null);
        assert_eq!(run(Func::CertIssuerOid, user()), Value::Null);
    }

    #[test]
    fn validity_dates_are_utc() {
        assert_eq!(
            run(Func::CertNotBefore, user()),
            utc("2020-01-01T00:00:00Z")
        );
        assert_eq!(run(Func::CertNotAfter, user()), utc("2099-12-31T23:59:59Z"));
        assert_eq!(
            run(Func::CertNotBefore, expired()),
            utc("1999-01-01T00:00:00Z")
        );
        assert_eq!(
            run(Func::CertNotAfter, expired()),
            utc("2000-01-01T00:00:00Z")
        );
    }

    #[test]
    fn version_format_and_friendly_name() {
        assert_eq!(run(Func::CertVersion, user()), s("3"));
        // No extensions: openssl wrote an X.509 v1 certificate.
        assert_eq!(run(Func::CertVersion, expired()), s("1"));
        assert_eq!(run(Func::CertFormat, user()), s("X509"));
        assert_eq!(run(Func::CertFriendlyName, user()), s(""));
    }

    #[test]
    fn algorithms_and_parameters() {
        assert_eq!(
            run(Func::CertSignatureAlgorithmOid, user()),
            s("1.2.840.10045.4.3.2")
        );
        assert_eq!(
            run(Func::CertSignatureAlgorithmOid, expired()),
            s("1.3.101.112")
        );
        let rsa = s("1.2.840.113549.1.1.1");
        assert_eq!(run(Func::CertKeyAlgorithm, user()), rsa);
        assert_eq!(run(Func::CertPublicKeyOid, user()), rsa);
        assert_eq!(run(Func::CertPublicKeyParametersOid, user()), rsa);
        assert_eq!(run(Func::CertKeyAlgorithmParams, user()), s("0500"));
        assert_eq!(run(Func::CertKeyAlgorithm, ca()), s("1.2.840.10045.2.1"));
        assert_eq!(
            run(Func::CertKeyAlgorithmParams, ca()),
            s("06082A8648CE3D030107")
        );
        assert_eq!(run(Func::CertKeyAlgorithm, expired()), s("1.3.101.112"));
        assert_eq!(run(Func::CertKeyAlgorithmParams, expired()), s(""));
    }

    #[test]
    fn extension_oids_lists_only_critical_ones() {
        assert_eq!(
            run(Func::CertExtensionOids, user()),
            Value::Multi(vec![s("2.5.29.19"), s("2.5.29.15")])
        );
        assert_eq!(run(Func::CertExtensionOids, expired()), Value::Null);
    }

    #[test]
    fn name_info_reads_the_alternative_names() {
        assert_eq!(name_info_of(user(), "SimpleName", false), s("Jane Doe"));
        assert_eq!(
            name_info_of(user(), "EmailName", false),
            s("jane@contoso.com")
        );
        assert_eq!(
            name_info_of(user(), "UpnName", false),
            s("jane.doe@contoso.com")
        );
        assert_eq!(
            name_info_of(user(), "DnsName", false),
            s("jane.contoso.com")
        );
        assert_eq!(
            name_info_of(user(), "DnsFromAlternativeName", false),
            s("jane.contoso.com")
        );
        assert_eq!(
            name_info_of(user(), "UrlName", false),
            s("https://contoso.com/jane")
        );
    }

    #[test]
    fn name_info_for_the_issuer() {
        assert_eq!(
            name_info_of(user(), "SimpleName", true),
            s("Contoso Partner CA")
        );
        // From the Issuer Alternative Name extension.
        assert_eq!(
            name_info_of(user(), "EmailName", true),
            s("pki@contoso.com")
        );
        // No DNS name in the IAN: the issuer's CN.
        assert_eq!(
            name_info_of(user(), "DnsName", true),
            s("Contoso Partner CA")
        );
        assert_eq!(name_info_of(user(), "DnsFromAlternativeName", true), s(""));
        assert_eq!(name_info_of(user(), "UpnName", true), s(""));
    }

    #[test]
    fn name_info_falls_back_to_the_subject() {
        // No CN: OU comes before O and E.
        assert_eq!(
            name_info_of(expired(), "SimpleName", false),
            s("Legacy Partners")
        );
        // No SAN: the E attribute.
        assert_eq!(
            name_info_of(expired(), "EmailName", false),
            s("old@fabrikam.com")
        );
        // No SAN and no CN.
        assert_eq!(name_info_of(expired(), "DnsName", false), s(""));
        assert_eq!(name_info_of(expired(), "UpnName", false), s(""));
        assert_eq!(name_info_of(expired(), "UrlName", false), s(""));
        assert_eq!(
            name_info_of(ca(), "DnsName", false),
            s("Contoso Partner CA")
        );
    }

    #[test]
    fn name_info_type_spellings_and_errors() {
        assert_eq!(
            name_info_of(user(), "upnname", false),
            s("jane.doe@contoso.com")
        );
        assert_eq!(
            run3(
                Func::CertNameInfo,
                user(),
                Value::Num(2),
                Value::Bool(false)
            ),
            s("jane.doe@contoso.com")
        );
        assert_eq!(
            run3(Func::CertNameInfo, user(), s("SimpleName"), s("true")),
            s("Contoso Partner CA")
        );
        assert_eq!(
            run3(Func::CertNameInfo, user(), s("SimpleName"), Value::Null),
            s("Jane Doe")
        );
        let e = error(
            Func::CertNameInfo,
            user(),
            s("FriendlyName"),
            Value::Bool(false),
        );
        assert!(
            e.starts_with("CertNameInfo: unsupported X509NameType \"FriendlyName\""),
            "{e}"
        );
        let e = error(Func::CertNameInfo, user(), Value::Null, Value::Bool(false));
        assert!(e.contains("needs an X509NameType"), "{e}");
        let e = error(Func::CertNameInfo, user(), s("SimpleName"), s("maybe"));
        assert!(e.contains("includesIssuerName"), "{e}");
    }

    #[test]
    fn loads_der_base64_and_pem_from_text_or_bytes() {
        use base64::engine::general_purpose::STANDARD;
        let b64 = STANDARD.encode(USER);
        let want = run(Func::CertThumbprint, user());
        assert_eq!(run(Func::CertThumbprint, Value::string(b64.clone())), want);
        assert_eq!(
            run(
                Func::CertThumbprint,
                Value::Bin(Cow::Owned(b64.clone().into_bytes()))
            ),
            want
        );
        // Without padding, wrapped over lines.
        let wrapped: String = b64
            .trim_end_matches('=')
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\r\n");
        assert_eq!(
            run(Func::CertThumbprint, Value::string(wrapped.clone())),
            want
        );
        let pem = format!("-----BEGIN CERTIFICATE-----\n{wrapped}\n-----END CERTIFICATE-----\n");
        assert_eq!(run(Func::CertThumbprint, Value::string(pem.clone())), want);
        assert_eq!(
            run(
                Func::CertThumbprint,
                Value::Bin(Cow::Owned(pem.into_bytes()))
            ),
            want
        );
    }

    #[test]
    fn is_cert() {
        let yes = Value::Bool(true);
        let no = Value::Bool(false);
        assert_eq!(run(Func::IsCert, user()), yes);
        assert_eq!(run(Func::IsCert, expired()), yes);
        assert_eq!(run(Func::IsCert, ca()), yes);
        assert_eq!(
            run(Func::IsCert, Value::Multi(vec![user(), expired()])),
            yes
        );
        assert_eq!(run(Func::IsCert, Value::Multi(vec![user(), s("x")])), no);
        assert_eq!(run(Func::IsCert, Value::Multi(vec![])), no);
        assert_eq!(run(Func::IsCert, Value::Null), no);
        assert_eq!(run(Func::IsCert, s("hello")), no);
        assert_eq!(run(Func::IsCert, s("")), no);
        assert_eq!(run(Func::IsCert, Value::Num(3)), no);
        assert_eq!(
            run(Func::IsCert, Value::Bin(Cow::Borrowed(&USER[..100]))),
            no
        );
        let mut trailing = USER.to_vec();
        trailing.push(0);
        assert_eq!(run(Func::IsCert, Value::Bin(Cow::Owned(trailing))), no);
        assert_eq!(
            run(Func::IsCert, Value::Bin(Cow::Borrowed(&[0xFF, 0xFE]))),
            no
        );
        assert_eq!(
            run(
                Func::IsCert,
                s("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
            ),
            no
        );
    }

    #[test]
    fn null_in_null_out() {
        for func in [
            Func::CertThumbprint,
            Func::CertNotAfter,
            Func::CertExtensionOids,
            Func::CertNameInfo,
            Func::CertSubject,
        ] {
            assert_eq!(run(func, Value::Null), Value::Null, "{func:?}");
        }
    }

    #[test]
    fn errors_name_the_function_and_the_reason() {
        let e = error(
            Func::CertThumbprint,
            s("not a cert"),
            Value::Null,
            Value::Null,
        );
        assert!(
            e.starts_with("CertThumbprint: the value is not an X.509 certificate:"),
            "{e}"
        );
        let e = error(
            Func::CertNotAfter,
            Value::Bin(Cow::Borrowed(&USER[..200])),
            Value::Null,
            Value::Null,
        );
        assert!(
            e.starts_with(
                "CertNotAfter: the value is not an X.509 certificate: cannot read the DER"
            ),
            "{e}"
        );
        let e = error(Func::CertSubject, Value::Num(1), Value::Null, Value::Null);
        assert_eq!(
            e,
            "CertSubject needs a certificate (binary DER, or base64 or PEM text), got a number value"
        );
        let e = error(
            Func::CertVersion,
            s("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----"),
            Value::Null,
            Value::Null,
        );
        assert!(e.contains("not a CERTIFICATE"), "{e}");
    }

    #[test]
    fn garbage_never_panics() {
        // Every prefix and a few corruptions of a real certificate.
        let funcs = [
            Func::CertThumbprint,
            Func::CertSubject,
            Func::CertKeyAlgorithmParams,
        ];
        for n in 0..USER.len() {
            for func in funcs {
                let _ = evaluate(
                    func,
                    Value::Bin(Cow::Borrowed(&USER[..n])),
                    Value::Null,
                    Value::Null,
                );
            }
        }
        for i in 0..USER.len() {
            let mut bytes = USER.to_vec();
            bytes[i] ^= 0x5A;
            let _ = evaluate(
                Func::CertNameInfo,
                Value::Bin(Cow::Owned(bytes)),
                s("UpnName"),
                Value::Bool(false),
            );
        }
    }

    #[test]
    fn dotnet_name_quoting() {
        assert!(needs_quotes(""));
        assert!(needs_quotes(" lead"));
        assert!(needs_quotes("trail\t"));
        assert!(needs_quotes("a+b"));
        assert!(needs_quotes("say \"hi\""));
        assert!(!needs_quotes("plain text"));
        assert!(!needs_quotes("a\rb"));
    }

    #[test]
    fn hex_and_der_header() {
        assert_eq!(hex(&[0x00, 0xAB, 0x0F]), "00AB0F");
        let (_, any) = Any::from_der(&[0x05, 0x00]).unwrap();
        assert_eq!(encode_any(&any), vec![0x05, 0x00]);
        let long = {
            let mut v = vec![0x04, 0x81, 0x80];
            v.extend(std::iter::repeat_n(7u8, 0x80));
            v
        };
        let (_, any) = Any::from_der(&long).unwrap();
        assert_eq!(encode_any(&any), long);
    }
}

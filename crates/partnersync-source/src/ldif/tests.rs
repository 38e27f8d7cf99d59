use partnersync_core::{Anchor, AttributeValue, Attributes, Entry};
use proptest::prelude::*;

use super::*;
use crate::error::{AnchorProblem, LdifProblem, SourceError};
use crate::AnchorPolicy;

const GUID_A: &str = "qMO40h4cXUuPcBI0VniavA==";

fn records(text: &str) -> Vec<LdifRecord> {
    match parse_records(text.as_bytes(), "t.ldif") {
        Ok(r) => r,
        Err(e) => panic!("parse failed: {e}"),
    }
}

fn one(text: &str) -> LdifRecord {
    let mut all = records(text);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

/// The line and problem of a parse error.
fn problem(text: &str) -> (usize, LdifProblem, String) {
    match parse_records(text.as_bytes(), "t.ldif") {
        Err(e @ SourceError::Ldif { .. }) => {
            let message = e.to_string();
            let SourceError::Ldif {
                line,
                problem,
                file,
            } = e
            else {
                unreachable!()
            };
            assert_eq!(file.to_str(), Some("t.ldif"));
            (line, problem, message)
        }
        other => panic!("expected an LDIF error, got {other:?}"),
    }
}

fn texts(values: Option<&[AttributeValue]>) -> Vec<&str> {
    values
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_text())
        .collect()
}

// ---- features ----

#[test]
fn plain_records_with_multiple_values() {
    let r = one("dn: cn=a,dc=x\ncn: a\nproxyAddresses: SMTP:a@x\nproxyAddresses: smtp:b@x\n");
    assert_eq!(r.dn, "cn=a,dc=x");
    assert_eq!(r.line, 1);
    assert_eq!(
        texts(r.attributes.get("proxyaddresses")),
        ["SMTP:a@x", "smtp:b@x"]
    );
    assert_eq!(r.attributes.first_text("CN"), Some("a"));
}

#[test]
fn version_is_optional_and_may_directly_precede_the_dn() {
    let with_blank = records("version: 1\n\ndn: cn=a\ncn: a\n");
    let direct = records("version: 1\ndn: cn=a\ncn: a\n");
    let without = records("dn: cn=a\ncn: a\n");
    assert_eq!(with_blank[0].dn, "cn=a");
    assert_eq!(with_blank[0].line, 3);
    assert_eq!(direct[0].line, 2);
    assert_eq!(with_blank[0].attributes, without[0].attributes);
    // Concatenated exports repeat the version line.
    assert_eq!(
        records("version: 1\n\ndn: cn=a\n\nversion: 1\n\ndn: cn=b\n").len(),
        2
    );
}

#[test]
fn records_are_separated_by_one_or_more_blank_lines() {
    let all = records("\n\ndn: cn=a\ncn: a\n\n\n\ndn: cn=b\ncn: b\n\n");
    assert_eq!(
        all.iter()
            .map(|r| (r.dn.as_str(), r.line))
            .collect::<Vec<_>>(),
        [("cn=a", 3), ("cn=b", 8)]
    );
    assert!(records("").is_empty());
    assert!(records("\n\n# only a comment\n").is_empty());
}

#[test]
fn folded_lines_are_joined() {
    let r = one("dn: cn=a very long na\n me,dc=x\ndescription: one\n  two\n three\ncn: a\n");
    assert_eq!(r.dn, "cn=a very long name,dc=x");
    assert_eq!(r.attributes.first_text("description"), Some("one twothree"));
}

#[test]
fn folding_may_split_utf8_and_base64() {
    let r = one("dn: cn=a\ndisplayName:: QW5hI\n EzDs3Bleg==\ncn: Jos\u{e9}\n");
    assert_eq!(r.attributes.first_text("displayName"), Some("Ana López"));
    // "é" is 0xC3 0xA9; split between the two bytes.
    let bytes = b"dn: cn=a\ncn: Jos\xc3\n \xa9\n";
    let r = parse_records(bytes.as_slice(), "t.ldif").unwrap();
    assert_eq!(r[0].attributes.first_text("cn"), Some("José"));
}

#[test]
fn base64_values_are_text_when_utf8_and_binary_otherwise() {
    let r = one(&format!(
        "dn: cn=a\nobjectGUID:: {GUID_A}\ndisplayName:: QW5hIEzDs3Bleg==\nempty::\n"
    ));
    let guid = &r.attributes.get("objectGUID").unwrap()[0];
    assert!(matches!(guid, AttributeValue::Binary(b) if b.len() == 16));
    assert_eq!(r.attributes.first_text("displayName"), Some("Ana López"));
    assert_eq!(r.attributes.first_text("empty"), Some(""));
}

#[test]
fn base64_dns_are_decoded() {
    // "cn=Zoë,dc=x"
    let r = one("dn:: Y249Wm/DqyxkYz14\ncn: z\n");
    assert_eq!(r.dn, "cn=Zoë,dc=x");
}

#[test]
fn fill_spaces_are_skipped_and_trailing_spaces_kept() {
    let r = one("dn:    cn=a\ncn:a\nsn:   b  \nempty:\nb64::   YQ==  \n");
    assert_eq!(r.dn, "cn=a");
    assert_eq!(r.attributes.first_text("cn"), Some("a"));
    assert_eq!(r.attributes.first_text("sn"), Some("b  "));
    assert_eq!(r.attributes.first_text("empty"), Some(""));
    assert_eq!(r.attributes.first_text("b64"), Some("a"));
}

#[test]
fn comments_and_their_continuations_are_ignored() {
    let all = records(
        "# header\n#  continued\n comment continuation\ndn: cn=a\n# inside\n  still comment\ncn: a\n#x\n\ndn: cn=b\ncn: b\n",
    );
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].attributes.len(), 1);
    assert_eq!(all[0].attributes.first_text("cn"), Some("a"));
    assert_eq!(all[1].line, 10);
}

#[test]
fn crlf_and_a_bom_are_tolerated() {
    let r = parse_records(
        b"\xef\xbb\xbfdn: cn=a\r\ncn: a\r\n b\r\n\r\ndn: cn=c\r\ncn: c".as_slice(),
        "t.ldif",
    )
    .unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].dn, "cn=a");
    assert_eq!(r[0].attributes.first_text("cn"), Some("ab"));
    assert_eq!(r[1].attributes.first_text("cn"), Some("c"));
}

#[test]
fn whitespace_only_lines_between_records_count_as_blank() {
    let all = records("dn: cn=a\ncn: a\n\n   \ndn: cn=b\ncn: b\n");
    assert_eq!(all.len(), 2);
}

#[test]
fn binary_option_is_dropped_and_other_options_kept() {
    let r = one(
        "dn: cn=a\nuserCertificate;binary:: AAEC\ndescription;lang-de: Partner\ndescription: x\n",
    );
    assert_eq!(
        r.attributes.get("userCertificate").unwrap()[0].as_bytes(),
        &[0, 1, 2]
    );
    assert!(!r.attributes.contains("userCertificate;binary"));
    assert_eq!(
        r.attributes.first_text("description;lang-de"),
        Some("Partner")
    );
    assert_eq!(r.attributes.first_text("description"), Some("x"));
    let r = one("dn: cn=a\ncn;BINARY;lang-en: x\n2.5.4.3: y\n");
    assert_eq!(r.attributes.first_text("cn;lang-en"), Some("x"));
    assert_eq!(r.attributes.first_text("2.5.4.3"), Some("y"));
}

#[test]
fn attribute_names_keep_their_spelling_and_merge_case_insensitively() {
    let r = one("dn: cn=a\nproxyAddresses: a\nPROXYADDRESSES: b\n");
    let (name, values) = r.attributes.iter().next().unwrap();
    assert_eq!(name.as_str(), "proxyAddresses");
    assert_eq!(values.len(), 2);
}

#[test]
fn changetype_add_is_read_as_an_entry() {
    let r = one("dn: cn=a\nchangetype: add\ncn: a\n");
    assert_eq!(r.attributes.len(), 1);
    assert!(!r.attributes.contains("changetype"));
}

#[test]
fn utf8_plain_values_are_accepted() {
    let r = one("dn: cn=Zoë,dc=x\ndisplayName: Zoë Ångström\n");
    assert_eq!(r.dn, "cn=Zoë,dc=x");
    assert_eq!(r.attributes.first_text("displayName"), Some("Zoë Ångström"));
}

#[test]
fn a_last_line_without_newline_is_read() {
    assert_eq!(
        one("dn: cn=a\ncn: a").attributes.first_text("cn"),
        Some("a")
    );
}

// ---- errors ----

#[test]
fn url_values_are_rejected() {
    let (line, p, msg) = problem("dn: cn=a\ncn: a\njpegPhoto:< file:///tmp/a.jpg\n");
    assert_eq!(line, 3);
    assert_eq!(
        p,
        LdifProblem::UrlValue {
            attribute: "jpegPhoto".into()
        }
    );
    assert!(
        msg.starts_with("t.ldif:3: 'jpegPhoto' takes its value from a URL (':<')"),
        "{msg}"
    );
    assert!(msg.contains("base64-encoded after '::'"), "{msg}");
    let (line, p, _) = problem("\ndn:< file:///dn\n");
    assert_eq!(
        (line, p),
        (
            2,
            LdifProblem::UrlValue {
                attribute: "dn".into()
            }
        )
    );
}

#[test]
fn change_records_are_rejected() {
    let (line, p, msg) =
        problem("dn: cn=a\ncn: a\n\ndn: cn=b\nchangetype: modify\nreplace: cn\ncn: b\n-\n");
    assert_eq!(line, 5);
    assert_eq!(
        p,
        LdifProblem::ChangeRecord {
            changetype: "modify".into()
        }
    );
    assert!(
        msg.starts_with("t.ldif:5: this is an LDIF change record ('changetype: modify')"),
        "{msg}"
    );
    let (line, p, _) = problem("dn: cn=b\nchangetype: delete\n");
    assert_eq!(
        (line, p),
        (
            2,
            LdifProblem::ChangeRecord {
                changetype: "delete".into()
            }
        )
    );
    let (line, p, msg) = problem("dn: cn=b\ncn: b\nchangetype: add\n");
    assert_eq!((line, p), (3, LdifProblem::MisplacedChangetype));
    assert!(
        msg.starts_with("t.ldif:3: 'changetype:' may only appear directly after 'dn:'"),
        "{msg}"
    );
    let (line, p, msg) = problem("dn: cn=b\ncontrol: 1.2.3 true\nchangetype: delete\n");
    assert_eq!((line, p), (2, LdifProblem::Control));
    assert!(
        msg.contains("'control:' lines belong to LDIF change records"),
        "{msg}"
    );
}

#[test]
fn invalid_base64_is_reported_with_the_attribute() {
    let (line, p, msg) = problem("dn: cn=a\ncn: a\n\ndn: cn=b\nobjectGUID:: not*base64\n");
    assert_eq!(line, 5);
    assert!(
        matches!(&p, LdifProblem::InvalidBase64 { attribute, .. } if attribute == "objectGUID")
    );
    assert!(
        msg.starts_with("t.ldif:5: the value of 'objectGUID' after '::' is not valid base64"),
        "{msg}"
    );
    let (line, p, _) = problem("dn:: @@@\n");
    assert_eq!(line, 1);
    assert!(matches!(p, LdifProblem::InvalidBase64 { attribute, .. } if attribute == "dn"));
}

#[test]
fn a_line_without_colon_is_reported() {
    let (line, p, msg) = problem("dn: cn=a\ncn: a\nthis line is broken\n");
    assert_eq!((line, p), (3, LdifProblem::MissingColon));
    assert!(msg.contains("must start with exactly one space"), "{msg}");
}

#[test]
fn invalid_attribute_names_are_reported() {
    for (text, name) in [
        ("dn: cn=a\ncn : a\n", "cn "),
        ("dn: cn=a\n_x: a\n", "_x"),
        ("dn: cn=a\ncn;: a\n", "cn;"),
        ("dn: cn=a\n1..2: a\n", "1..2"),
        ("dn: cn=a\n: a\n", ""),
        ("dn: cn=a\n\tcn: a\n", "\tcn"),
    ] {
        let (line, p, _) = problem(text);
        assert_eq!(
            (line, p),
            (2, LdifProblem::InvalidAttributeName { name: name.into() }),
            "{text:?}"
        );
    }
    let (_, _, msg) = problem("dn: cn=a\ncn : a\n");
    assert!(
        msg.starts_with("t.ldif:2: 'cn ' is not a valid attribute name"),
        "{msg}"
    );
    assert!(msg.contains("check for stray spaces"), "{msg}");
}

#[test]
fn a_continuation_without_a_line_is_reported() {
    let (line, p, msg) = problem("dn: cn=a\ncn: a\n\n continued\n");
    assert_eq!((line, p), (4, LdifProblem::ContinuationWithoutLine));
    assert!(msg.contains("remove the leading space"), "{msg}");
    let (line, p, _) = problem(" dn: cn=a\n");
    assert_eq!((line, p), (1, LdifProblem::ContinuationWithoutLine));
}

#[test]
fn a_record_must_start_with_dn() {
    let (line, p, msg) = problem("dn: cn=a\ncn: a\n\ncn: b\n");
    assert_eq!(
        (line, p),
        (4, LdifProblem::ExpectedDn { found: "cn".into() })
    );
    assert!(
        msg.starts_with("t.ldif:4: a record must start with 'dn:' but this one starts with 'cn:'"),
        "{msg}"
    );
}

#[test]
fn a_missing_blank_line_is_reported_as_a_second_dn() {
    let (line, p, msg) = problem("dn: cn=a\ncn: a\ndn: cn=b\ncn: b\n");
    assert_eq!((line, p), (3, LdifProblem::SecondDn));
    assert!(msg.contains("separated by a blank line"), "{msg}");
}

#[test]
fn non_utf8_plain_values_are_reported() {
    let err = parse_records(b"dn: cn=a\ncn: \xff\xfe\n".as_slice(), "t.ldif").unwrap_err();
    assert_eq!(
        err.to_string(),
        "t.ldif:2: the value of 'cn' is not valid UTF-8; write binary or non-UTF-8 values base64-encoded after '::'"
    );
    // A base64 DN must decode to UTF-8 as well.
    let err = parse_records(b"dn:: //4=\n".as_slice(), "t.ldif").unwrap_err();
    assert!(matches!(
        err,
        SourceError::Ldif {
            line: 1,
            problem: LdifProblem::NotUtf8 { .. },
            ..
        }
    ));
}

#[test]
fn other_versions_and_utf16_are_reported() {
    let (line, p, msg) = problem("# c\nversion: 2\n\ndn: cn=a\n");
    assert_eq!(
        msg,
        "t.ldif:2: LDIF version '2' is not supported; only 'version: 1' exists — fix or remove the line"
    );
    assert_eq!(
        (line, p),
        (
            2,
            LdifProblem::UnsupportedVersion {
                version: "2".into()
            }
        )
    );
    let err = parse_records(b"\xff\xfed\x00n\x00".as_slice(), "t.ldif").unwrap_err();
    assert!(matches!(
        err,
        SourceError::Ldif {
            line: 1,
            problem: LdifProblem::Utf16,
            ..
        }
    ));
    assert!(err.to_string().contains("iconv -f UTF-16 -t UTF-8"));
}

#[test]
fn the_line_of_a_folded_line_is_where_it_starts() {
    let (line, p, _) = problem("dn: cn=a\ndescription: a\n b\nbroken\n line\n");
    assert_eq!((line, p), (4, LdifProblem::MissingColon));
}

#[test]
fn the_parser_stops_after_an_error() {
    let mut parser = LdifParser::new("dn: cn=a\nbad\n\ndn: cn=b\ncn: b\n".as_bytes(), "t.ldif");
    assert!(parser.next().unwrap().is_err());
    assert!(parser.next().is_none());
}

#[test]
fn records_before_an_error_are_yielded() {
    let mut parser = LdifParser::new("dn: cn=a\ncn: a\n\ndn: cn=b\nbad\n".as_bytes(), "t.ldif");
    assert_eq!(parser.next().unwrap().unwrap().dn, "cn=a");
    assert!(parser.next().unwrap().is_err());
    assert!(parser.next().is_none());
}

// ---- entries and anchors ----

#[test]
fn entries_get_their_anchor_from_the_policy() {
    let text = format!(
        "dn: cn=a,dc=x\nobjectGUID:: {GUID_A}\n\ndn: cn=b,dc=x\nentryUUID: 00112233-4455-6677-8899-aabbccddeeff\n"
    );
    let entries = parse_entries(text.as_bytes(), "t.ldif", &AnchorPolicy::default()).unwrap();
    assert_eq!(
        entries[0].anchor.to_guid_string().as_deref(),
        Some("d2b8c3a8-1c1e-4b5d-8f70-123456789abc")
    );
    assert_eq!(
        entries[1].anchor.to_immutable_id(),
        "00112233-4455-6677-8899-aabbccddeeff"
    );
    let custom = parse_entries(
        b"dn: cn=a\nuid: ana\n".as_slice(),
        "t.ldif",
        &AnchorPolicy::new(["uid"]),
    )
    .unwrap();
    assert_eq!(custom[0].anchor.as_bytes(), b"ana");
}

#[test]
fn an_entry_without_anchor_is_an_error_naming_the_dn_and_line() {
    let text = format!("dn: cn=a\nobjectGUID:: {GUID_A}\n\n# no anchor\ndn: cn=b,dc=x\ncn: b\n");
    let err = parse_entries(text.as_bytes(), "t.ldif", &AnchorPolicy::default()).unwrap_err();
    assert!(
        matches!(&err, SourceError::Anchor { line: 5, dn, problem: AnchorProblem::Missing { .. }, .. } if dn == "cn=b,dc=x"),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(
            "t.ldif:5: entry 'cn=b,dc=x' has no anchor: none of objectGUID, entryUUID, nsUniqueId is present"
        ),
        "{err}"
    );
    let bad = parse_entries(
        b"dn: cn=a\nobjectGUID:: AAEC\n".as_slice(),
        "t.ldif",
        &AnchorPolicy::default(),
    )
    .unwrap_err();
    assert!(
        bad.to_string()
            .starts_with("t.ldif:1: entry 'cn=a' has an unusable anchor attribute 'objectGUID'"),
        "{bad}"
    );
}

#[test]
fn duplicate_anchors_are_an_error() {
    let text = format!("dn: cn=a\nobjectGUID:: {GUID_A}\n\ndn: cn=b\nobjectGUID:: {GUID_A}\n");
    let err = parse_entries(text.as_bytes(), "t.ldif", &AnchorPolicy::default()).unwrap_err();
    assert!(
        matches!(&err, SourceError::DuplicateAnchor { line: 4, first_line: 1, dn, .. } if dn == "cn=b"),
        "{err:?}"
    );
    assert!(err.to_string().contains("as the entry at line 1"), "{err}");
}

// ---- writer ----

fn entry(guid: u8, dn: &str, attrs: &[(&str, AttributeValue)]) -> Entry {
    let bytes = vec![guid; 16];
    let mut e = Entry::new(Anchor::from_bytes(bytes.clone()).unwrap(), dn);
    e.attributes
        .insert("objectGUID", AttributeValue::from_bytes(bytes));
    for (n, v) in attrs {
        e.attributes.insert(*n, v.clone());
    }
    e
}

#[test]
fn the_writer_base64_encodes_unsafe_values_and_folds_long_lines() {
    let e = entry(
        0xa0,
        "cn=Zoë,dc=x",
        &[
            ("cn", "plain".into()),
            ("lead", " space".into()),
            ("colon", ":x".into()),
            ("angle", "<x".into()),
            ("trail", "x ".into()),
            ("empty", "".into()),
            ("multi", "a\nb".into()),
            ("description", "x".repeat(100).into()),
        ],
    );
    let text = entries_to_string([&e]).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "version: 1");
    assert_eq!(lines[1], "");
    assert_eq!(lines[2], "dn:: Y249Wm/DqyxkYz14");
    assert_eq!(lines[3], "objectGUID:: oKCgoKCgoKCgoKCgoKCgoA==");
    assert!(lines.contains(&"cn: plain"));
    assert!(lines.contains(&"lead:: IHNwYWNl"));
    assert!(lines.contains(&"colon:: Ong="));
    assert!(lines.contains(&"angle:: PHg="));
    assert!(lines.contains(&"trail:: eCA="));
    assert!(lines.contains(&"empty:"));
    assert!(lines.contains(&"multi:: YQpi"));
    assert!(lines.iter().all(|l| l.len() <= 76), "{text}");
    let desc = lines
        .iter()
        .position(|l| l.starts_with("description: "))
        .unwrap();
    assert_eq!(lines[desc].len(), 76);
    assert_eq!(lines[desc + 1], format!(" {}", "x".repeat(100 - 63)));
    let back = parse_entries(text.as_bytes(), "t.ldif", &AnchorPolicy::default()).unwrap();
    assert_eq!(back, vec![e]);
}

#[test]
fn the_writer_separates_records_and_writes_the_version_once() {
    let a = entry(1, "cn=a", &[]);
    let b = entry(2, "cn=b", &[]);
    let text = entries_to_string([&a, &b]).unwrap();
    assert_eq!(text.matches("version: 1").count(), 1);
    assert!(text.contains("\n\ndn: cn=b\n"), "{text}");
    assert_eq!(entries_to_string([]).unwrap(), "");
}

#[test]
fn the_writer_refuses_names_ldif_cannot_carry() {
    for (name, reason) in [
        ("dn", "is reserved by LDIF"),
        ("changeType", "is reserved by LDIF"),
        ("control", "is reserved by LDIF"),
        ("bad name", "is not a valid LDIF attribute description"),
        ("x:y", "is not a valid LDIF attribute description"),
        ("cert;binary", "is not a valid LDIF attribute description"),
    ] {
        let mut attrs = Attributes::new();
        attrs.insert(name, "v");
        let mut out = Vec::new();
        let err = LdifWriter::new(&mut out)
            .write_record("cn=a", &attrs)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot write entry 'cn=a' as LDIF: attribute '{name}' {reason}"),
        );
        assert!(out.is_empty(), "nothing is written for a refused record");
    }
}

#[test]
fn write_errors_are_reported() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::Error::other("disk full"))
        }
    }
    let mut w = LdifWriter::new(Broken);
    let err = w.write_entry(&entry(1, "cn=a", &[])).unwrap_err();
    assert_eq!(err.to_string(), "cannot write LDIF: disk full");
    assert!(w.flush().is_err());
}

// ---- round trip ----

/// Values that exercise every encoding path: Unicode, binary, leading space/colon/`<`,
/// trailing space, control characters, empty and long values.
fn value() -> impl Strategy<Value = AttributeValue> {
    prop_oneof![
        "[ -~]{0,20}".prop_map(AttributeValue::from),
        any::<String>().prop_map(AttributeValue::from),
        "[ :<][ -~]{0,10}".prop_map(AttributeValue::from),
        "[a-z]{1,5} ".prop_map(AttributeValue::from),
        "[a-zA-Z0-9 ]{70,300}".prop_map(AttributeValue::from),
        "\\PC{0,80}".prop_map(AttributeValue::from),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(AttributeValue::from_bytes),
    ]
}

fn attribute_name() -> impl Strategy<Value = String> {
    (
        "[a-zA-Z][a-zA-Z0-9-]{0,15}",
        proptest::option::of("[a-z0-9-]{1,6}"),
    )
        .prop_map(|(name, option)| match option {
            Some(o) if !o.eq_ignore_ascii_case("binary") => format!("{name};{o}"),
            _ => name,
        })
        .prop_filter("reserved or anchor names", |n| {
            !["dn", "changetype", "control", "objectGUID"]
                .iter()
                .any(|r| n.eq_ignore_ascii_case(r))
        })
}

fn arbitrary_entry() -> impl Strategy<Value = Entry> {
    (
        proptest::array::uniform16(any::<u8>()),
        prop_oneof![
            any::<String>(),
            "[ :<]?[a-z]{1,8}=[^,]{0,20},dc=contoso,dc=com ?"
        ],
        proptest::collection::vec(
            (attribute_name(), proptest::collection::vec(value(), 1..4)),
            0..6,
        ),
    )
        .prop_map(|(guid, dn, attrs)| {
            let mut e = Entry::new(
                Anchor::from_bytes(guid.to_vec()).unwrap_or_else(|_| unreachable!()),
                dn,
            );
            e.attributes
                .insert("objectGUID", AttributeValue::from_bytes(guid.to_vec()));
            for (name, values) in attrs {
                for v in values {
                    e.attributes.insert(name.as_str(), v);
                }
            }
            e
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn written_ldif_parses_back_to_equal_entries(
        entries in proptest::collection::vec(arbitrary_entry(), 0..5)
            .prop_map(|mut v| { v.sort_by(|a, b| a.anchor.cmp(&b.anchor)); v.dedup_by(|a, b| a.anchor == b.anchor); v })
    ) {
        let text = entries_to_string(&entries).unwrap();
        prop_assert!(text.is_ascii());
        prop_assert!(text.lines().all(|l| l.len() <= 76));
        let back = parse_entries(text.as_bytes(), "roundtrip.ldif", &AnchorPolicy::default()).unwrap();
        prop_assert_eq!(back, entries);
    }

    #[test]
    fn the_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_entries(&bytes, "fuzz.ldif", &AnchorPolicy::default());
    }

    #[test]
    fn parsed_records_survive_a_write_and_reparse(text in "(dn|cn|#|x|:| |\n|::|YQ==|a| b|version: 1){0,40}") {
        if let Ok(records) = parse_records(text.as_bytes(), "p.ldif") {
            let mut w = LdifWriter::new(Vec::new());
            for r in &records {
                w.write_record(&r.dn, &r.attributes).unwrap();
            }
            let again = parse_records(&w.into_inner(), "p.ldif").unwrap();
            prop_assert_eq!(
                again.iter().map(|r| (&r.dn, &r.attributes)).collect::<Vec<_>>(),
                records.iter().map(|r| (&r.dn, &r.attributes)).collect::<Vec<_>>()
            );
        }
    }
}

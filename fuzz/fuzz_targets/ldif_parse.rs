//! Feeds arbitrary bytes to the LDIF parser. Beyond "never panics", it checks that what
//! the parser accepts survives the writer: parse → write → parse gives the same records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use partnersync_source::ldif::{parse_records, LdifWriter};
use partnersync_source::AnchorPolicy;

fuzz_target!(|data: &[u8]| {
    // The entry layer (anchors, duplicate detection) must not panic either.
    let _ = partnersync_source::ldif::parse_entries(data, "fuzz.ldif", &AnchorPolicy::default());

    let Ok(records) = parse_records(data, "fuzz.ldif") else {
        return;
    };
    let mut writer = LdifWriter::new(Vec::new());
    for record in &records {
        writer
            .write_record(&record.dn, &record.attributes)
            .expect("every parsed record can be written");
    }
    let written = writer.into_inner();
    let again = parse_records(&written, "rewritten.ldif").expect("written LDIF parses");
    assert_eq!(again.len(), records.len());
    for (a, b) in again.iter().zip(&records) {
        assert_eq!(a.dn, b.dn);
        assert_eq!(a.attributes, b.attributes);
    }
});

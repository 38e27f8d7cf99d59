//! Fuzzes the provisioning expression parser: arbitrary text must parse or fail with a
//! diagnostic, never panic; whatever parses must print back to text that parses to the
//! same tree, and must evaluate (over a small fixed entry) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use partnersync_rules::{print, Context, Dialect, Expression};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let dialect = Dialect::Provisioning;
    let Ok(expr) = Expression::parse(text, dialect) else { return };
    let printed = print(expr.ast(), dialect);
    let again = Expression::parse(&printed, dialect).expect("printed expression parses");
    assert_eq!(expr.ast(), again.ast(), "print/parse round trip changed the tree");
    let mut attrs = partnersync_core::Attributes::new();
    attrs.insert_text("userPrincipalName", "Ana@Partners.Contoso.com");
    attrs.insert_text("proxyAddresses", "SMTP:ana@contoso.com");
    attrs.insert_text("proxyAddresses", "smtp:a@contoso.com");
    let mut ctx = Context::default();
    ctx.parameters.insert("Domain.FQDN".into(), "contoso.com".into());
    let _ = expr.evaluate(&attrs, &ctx);
});

//! Connect's certificate functions (`CertThumbprint`, `CertNotAfter`, `IsCert`, ...).
//!
//! They parse, type-check and run, but reading X.509 is not built in yet: every call
//! except `IsCert` on a non-binary value ends in a clear error rather than a guess.

use crate::eval::{fail, Res};
use crate::functions::{name_of, Func};
use crate::value::Value;
use crate::Dialect;

pub(crate) fn evaluate<'a>(func: Func, cert: Value<'a>, _b: Value<'a>, _c: Value<'a>) -> Res<'a> {
    let name = name_of(Dialect::AadConnect, func);
    match cert {
        Value::Null => Ok(Value::Null),
        Value::Bin(_) | Value::Str(_) => fail(format!(
            "{name}: certificate functions are not supported by partnersync yet (no X.509 reader is built in)"
        )),
        other => {
            if func == Func::IsCert {
                return Ok(Value::Bool(false));
            }
            fail(format!("{name} needs a certificate (binary), got a {} value", other.type_name()))
        }
    }
}

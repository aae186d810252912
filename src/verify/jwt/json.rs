//! A JSON reader that notices repeated member names.
//!
//! `serde_json` keeps the last of two members with the same name. In a JOSE
//! header or a claims set that is an attack surface: two parsers (ours and
//! the issuer's, or a logging proxy's) may disagree on which copy counts.
//! RFC 7515 section 4 and RFC 7519 section 4 let a recipient reject such
//! input, and we do. Names are compared after unescaping, so `"a"` and
//! `"\u0061"` are the same name.
//!
//! [`Checked`] parses any JSON value into a [`serde_json::Value`] and records
//! whether some object in it, at any depth, repeated a name. It never fails
//! on a repetition itself, so a caller can decide per element (a key set
//! drops one bad key and keeps the others). Nesting depth is bounded by
//! `serde_json`'s recursion limit.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A parsed JSON value and whether any object in it repeated a member name.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Checked {
    pub(crate) value: Value,
    pub(crate) duplicate: bool,
}

impl Checked {
    fn plain(value: Value) -> Self {
        Self {
            value,
            duplicate: false,
        }
    }
}

/// Why [`object`] refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjectError {
    /// Not JSON, or JSON but not an object.
    Malformed,
    /// An object repeated a member name.
    Duplicate,
}

/// Parses `bytes` as one JSON object without repeated member names at any depth.
pub(crate) fn object(bytes: &[u8]) -> Result<Map<String, Value>, ObjectError> {
    let checked: Checked = serde_json::from_slice(bytes).map_err(|_| ObjectError::Malformed)?;
    if checked.duplicate {
        return Err(ObjectError::Duplicate);
    }
    match checked.value {
        Value::Object(map) => Ok(map),
        _ => Err(ObjectError::Malformed),
    }
}

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Checked, E> {
        Ok(Checked::plain(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Checked, E> {
        Ok(Checked::plain(Value::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Checked, E> {
        Ok(Checked::plain(Value::Number(v.into())))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Checked, E> {
        Number::from_f64(v)
            .map(|n| Checked::plain(Value::Number(n)))
            .ok_or_else(|| E::custom("a number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Checked, E> {
        Ok(Checked::plain(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Checked, E> {
        Ok(Checked::plain(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked::plain(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Checked, E> {
        Ok(Checked::plain(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Checked, D::Error> {
        Checked::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        let mut items = Vec::new();
        let mut duplicate = false;
        while let Some(item) = seq.next_element::<Checked>()? {
            duplicate |= item.duplicate;
            items.push(item.value);
        }
        Ok(Checked {
            value: Value::Array(items),
            duplicate,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        let mut members = Map::new();
        let mut duplicate = false;
        while let Some(name) = map.next_key::<String>()? {
            let item = map.next_value::<Checked>()?;
            duplicate |= item.duplicate;
            if members.insert(name, item.value).is_some() {
                duplicate = true;
            }
        }
        Ok(Checked {
            value: Value::Object(members),
            duplicate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7515 section 4 / RFC 7519 section 4: duplicate names are refused.
    #[test]
    fn duplicates_at_any_depth_are_seen() {
        assert_eq!(object(br#"{"a":1,"a":2}"#), Err(ObjectError::Duplicate));
        assert_eq!(
            object(br#"{"a":1,"\u0061":2}"#),
            Err(ObjectError::Duplicate)
        );
        assert_eq!(
            object(br#"{"x":{"b":1,"b":1}}"#),
            Err(ObjectError::Duplicate)
        );
        assert_eq!(
            object(br#"{"x":[{"b":1,"b":1}]}"#),
            Err(ObjectError::Duplicate)
        );
        let ok = object(br#"{"a":1,"b":{"a":[1,2.5,"s",null,true]},"c":{"a":1}}"#).unwrap();
        assert_eq!(ok["b"]["a"][1], serde_json::json!(2.5));
        assert_eq!(ok.len(), 3);
    }

    #[test]
    fn non_objects_and_garbage_are_malformed() {
        for bad in [
            &b"[]"[..],
            b"1",
            b"\"s\"",
            b"null",
            b"{",
            b"{\"a\":1}x",
            b"{\"a\":1e999}",
            b"\xff",
        ] {
            assert_eq!(object(bad), Err(ObjectError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn matches_serde_json_without_duplicates() {
        let text = br#"{"n":-3,"u":18446744073709551615,"f":1.5e3,"s":"\u00e9\n","a":[[],{}]}"#;
        let ours = object(text).unwrap();
        let theirs: Map<String, Value> = serde_json::from_slice(text).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(object(deep.as_bytes()), Err(ObjectError::Malformed));
    }
}

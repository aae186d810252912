//! A JSON reader that notices repeated member names.
//!
//! `serde_json` keeps the last of two members with the same name. In a JOSE
//! header or a claims set that is an attack surface: two parsers (ours and
//! the issuer's, or a logging proxy's) may disagree on which copy counts.
//! RFC 7515 section 4 and RFC 7519 section 4 let a recipient reject such
//! input, and we do. Names are compared after unescaping, so `"a"` and
//! `"\u0061"` are the same name.
//!
//! [`Members`] reads a JOSE header or a claims set: one object, its members
//! kept as raw JSON text, refused whole on any repeated name. [`is_clean`]
//! checks any one value, so that a caller can decide per element (a key set
//! drops one bad key and keeps the others). Nesting depth is bounded by
//! `serde_json`'s recursion limit.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;
use serde_json::value::RawValue;

/// Why [`Members::parse`] refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjectError {
    /// Not JSON, or JSON but not an object.
    Malformed,
    /// An object repeated a member name.
    Duplicate,
}

/// Above this many names, repeated names are found by sorting rather than
/// by comparing every pair (a hostile object with thousands of members must
/// not cost quadratic time).
const PAIRWISE_MAX: usize = 24;

/// How many names of up to seven bytes an object's repeated-name check
/// compares in place before it collects names in a vector.
const SHORT_NAMES: usize = 8;

/// Whether `names` holds a repeated name.
fn has_duplicate<S: AsRef<str> + Ord>(names: &mut [S]) -> bool {
    if names.len() <= PAIRWISE_MAX {
        return names.iter().enumerate().any(|(i, a)| {
            let later = names.get(i + 1..).unwrap_or_default();
            later.iter().any(|b| a.as_ref() == b.as_ref())
        });
    }
    names.sort_unstable();
    names
        .windows(2)
        .any(|w| matches!(w, [a, b] if a.as_ref() == b.as_ref()))
}

/// The members of one JSON object, parsed once: names unescaped (borrowed
/// from the input when they have no escapes), values kept as their raw JSON
/// text and decoded only when asked for.
///
/// This is the token path: a JOSE header or a claims set is read once, its
/// few interesting members decoded in place, and the remaining members
/// copied as text (no tree of [`serde_json::Value`]s is built, no member is serialized
/// again).
#[derive(Debug)]
pub(crate) struct Members<'a> {
    /// Name tag ([`tag`]), name, value.
    members: Vec<(u64, Cow<'a, str>, &'a RawValue)>,
}

/// A name's length and first seven bytes in one word: names up to seven
/// bytes (most JOSE and JWT names) are equal exactly when their tags are,
/// so lookups and the repeated-name check compare integers, not strings.
fn tag(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let mut word = [0u8; 8];
    for (w, b) in word.iter_mut().zip(bytes.iter().take(7)) {
        *w = *b;
    }
    if let Some(len) = word.last_mut() {
        *len = u8::try_from(bytes.len()).unwrap_or(u8::MAX);
    }
    u64::from_le_bytes(word)
}

/// Whether a member with tag `t` and name `a` has the name `b` (whose tag is `t` too).
fn same_name(a: &str, b: &str) -> bool {
    a.len() <= 7 || a == b
}

impl<'a> Members<'a> {
    /// Parses `text` as one JSON object without repeated member names at
    /// any depth (nested objects included).
    pub(crate) fn parse(text: &'a str) -> Result<Self, ObjectError> {
        let members = serde_json::from_str::<MembersOf<'a>>(text)
            .map_err(|_| ObjectError::Malformed)?
            .0;
        let repeated = if members.len() <= PAIRWISE_MAX {
            // The usual case, without allocating.
            members.iter().enumerate().any(|(i, (ta, a, _))| {
                let later = members.get(i + 1..).unwrap_or_default();
                later.iter().any(|(tb, b, _)| ta == tb && same_name(a, b))
            })
        } else {
            let mut names: Vec<&str> = members.iter().map(|(_, n, _)| n.as_ref()).collect();
            has_duplicate(&mut names)
        };
        if repeated {
            return Err(ObjectError::Duplicate);
        }
        for (_, _, value) in &members {
            if !is_clean(value.get())? {
                return Err(ObjectError::Duplicate);
            }
        }
        Ok(Self { members })
    }

    /// The raw JSON text of member `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&'a RawValue> {
        let t = tag(name);
        self.members
            .iter()
            .find(|(tn, n, _)| *tn == t && same_name(n, name))
            .map(|(_, _, v)| *v)
    }

    /// Whether member `name` is present.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Member `name`: `Ok(None)` when absent, `Err(())` when present but not
    /// a string.
    pub(crate) fn str(&self, name: &str) -> Result<Option<Cow<'a, str>>, ()> {
        self.get(name).map(as_str).transpose()
    }

    /// The members as they came, in document order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &'a RawValue)> + '_ {
        self.members.iter().map(|(_, n, v)| (n.as_ref(), *v))
    }

    /// A JSON object of the members for which `keep` is true, written from
    /// their raw text (values are copied, not re-serialized), in a string of
    /// exactly its length when no name needs escaping.
    pub(crate) fn to_json_without(&self, keep: impl Fn(&str, &RawValue) -> bool) -> String {
        let kept = || self.iter().filter(|(n, v)| keep(n, v));
        // `"name":value` and a comma each, less one comma, plus the braces.
        let size = kept()
            .map(|(n, v)| n.len() + v.get().len() + 4)
            .sum::<usize>()
            + 1;
        let mut out = String::with_capacity(size.max(2));
        out.push('{');
        for (name, value) in kept() {
            if out.len() > 1 {
                out.push(',');
            }
            push_json_string(&mut out, name);
            out.push(':');
            out.push_str(value.get());
        }
        out.push('}');
        out
    }
}

/// A JSON string value as text: borrowed from the input when it has no
/// escapes. `Err(())` when `raw` is not a string.
pub(crate) fn as_str(raw: &RawValue) -> Result<Cow<'_, str>, ()> {
    let text = raw.get();
    let inner = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or(())?;
    // The raw text was validated as JSON: without a backslash, the string
    // has no escapes and is exactly its content.
    if !inner.contains('\\') {
        return Ok(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(text)
        .map(Cow::Owned)
        .map_err(|_| ())
}

/// A JSON array of strings. `Err(())` when `raw` is not an array or any of
/// its members is not a string.
pub(crate) fn str_array(raw: &RawValue) -> Result<Vec<Cow<'_, str>>, ()> {
    let items: Vec<&RawValue> = serde_json::from_str(raw.get()).map_err(|_| ())?;
    items.into_iter().map(as_str).collect()
}

/// Appends `s` as a JSON string (RFC 8259 section 7).
fn push_json_string(out: &mut String, s: &str) {
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    // Serializing a `str` cannot fail.
    if let Ok(quoted) = serde_json::to_string(s) {
        out.push_str(&quoted);
    }
}

/// Whether a JSON value (whose syntax was already checked, as when it was
/// skipped to be kept raw) is free of repeated member names at any depth.
/// `Err(Malformed)` when it would not parse as a [`serde_json::Value`].
///
/// Skipping a value to keep it raw checks its syntax but neither the range
/// of its numbers, nor its depth, nor that its `\u` escapes are valid
/// UTF-16 (a lone surrogate); this second look does, so that a value
/// accepted here parses as a [`serde_json::Value`] later (`serde_json`'s recursion
/// limit bounds the depth). Literals, strings without `\u` escapes and
/// integers that fit 64 bits need no second look.
pub(crate) fn is_clean(text: &str) -> Result<bool, ObjectError> {
    match text.as_bytes().first() {
        Some(b'"') if text.contains("\\u") => serde_json::from_str::<String>(text)
            .map(|_| true)
            .map_err(|_| ObjectError::Malformed),
        Some(b'{' | b'[') => serde_json::from_str::<NoDuplicates>(text)
            .map(|c| c.0)
            .map_err(|_| ObjectError::Malformed),
        Some(b'-' | b'0'..=b'9') => {
            if text.parse::<u64>().is_ok() || text.parse::<i64>().is_ok() {
                return Ok(true);
            }
            serde_json::from_str::<Number>(text)
                .map(|_| true)
                .map_err(|_| ObjectError::Malformed)
        }
        _ => Ok(true),
    }
}

/// A member name, borrowed when it needs no unescaping.
pub(crate) struct Name<'a>(pub(crate) Cow<'a, str>);

/// The names of one object, collected to tell whether one repeats.
///
/// Names of up to seven bytes are equal exactly when their [`tag`]s are:
/// the first [`SHORT_NAMES`] of them are compared as integers in place,
/// without allocating (most objects of a request body or a JOSE header
/// have only such names). Any other name goes to a vector checked at the
/// end; a short one beyond the first [`SHORT_NAMES`] is also compared with
/// those.
#[derive(Default)]
pub(crate) struct NameSet<'a> {
    tags: [u64; SHORT_NAMES],
    short: usize,
    repeated: bool,
    others: Vec<Cow<'a, str>>,
}

impl<'a> NameSet<'a> {
    /// Adds one member name.
    pub(crate) fn add(&mut self, name: Cow<'a, str>) {
        if name.len() > 7 {
            self.others.push(name);
            return;
        }
        let t = tag(&name);
        self.repeated |= self.tags.get(..self.short).unwrap_or_default().contains(&t);
        match self.tags.get_mut(self.short) {
            Some(slot) => {
                *slot = t;
                self.short += 1;
            }
            None => self.others.push(name),
        }
    }

    /// Whether no name was added twice.
    pub(crate) fn distinct(mut self) -> bool {
        !self.repeated && !has_duplicate(&mut self.others)
    }
}

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// The top level of an object: names and raw values.
struct MembersOf<'a>(Vec<(u64, Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for MembersOf<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = MembersOf<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MembersOf<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
                    members.push((tag(&name), name, map.next_value::<&'de RawValue>()?));
                }
                Ok(MembersOf(members))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// Walks any JSON value without building it; `true` when no object in it
/// repeats a name.
struct NoDuplicates(bool);

impl<'de> Deserialize<'de> for NoDuplicates {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WalkVisitor;
        impl<'de> Visitor<'de> for WalkVisitor {
            type Value = NoDuplicates;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates(true))
            }
            fn visit_i64<E>(self, _: i64) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates(true))
            }
            fn visit_u64<E>(self, _: u64) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates(true))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<NoDuplicates, E> {
                // As `Value` would: a number out of range is malformed.
                Number::from_f64(v)
                    .map(|_| NoDuplicates(true))
                    .ok_or_else(|| E::custom("a number out of range"))
            }
            fn visit_str<E>(self, _: &str) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates(true))
            }
            fn visit_unit<E>(self) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates(true))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicates, A::Error> {
                let mut clean = true;
                while let Some(NoDuplicates(c)) = seq.next_element()? {
                    clean &= c;
                }
                Ok(NoDuplicates(clean))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicates, A::Error> {
                let mut clean = true;
                let mut names = NameSet::default();
                while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
                    clean &= map.next_value::<NoDuplicates>()?.0;
                    names.add(name);
                }
                Ok(NoDuplicates(clean && names.distinct()))
            }
        }
        deserializer.deserialize_any(WalkVisitor)
    }
}

/// A NumericDate (RFC 7519 section 2): a non-negative JSON number, possibly
/// fractional (truncated), in seconds. `None` for anything else (negative,
/// `1e300`, a string, `null`). The `exp`, `nbf` and `iat` of a token and the
/// `iat` of a DPoP proof are read so.
pub(crate) fn numeric_date(raw: &RawValue) -> Option<u64> {
    // The common case, plain digits (the text is valid JSON, so no sign).
    if let Ok(u) = raw.get().parse::<u64>() {
        return Some(u);
    }
    // Anything else is a fraction, an exponent or a sign (a JSON integer
    // that does not parse as `u64` is negative or out of range, `-0` aside,
    // which the range below takes as 0).
    let n: Number = serde_json::from_str(raw.get()).ok()?;
    match n.as_f64() {
        // Below 1e15 the cast is exact in its integer part and cannot saturate.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(f) if (0.0..1e15).contains(&f) => Some(f as u64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value};

    use super::*;

    fn object(text: &[u8]) -> Result<Map<String, Value>, ObjectError> {
        let text = std::str::from_utf8(text).map_err(|_| ObjectError::Malformed)?;
        let members = Members::parse(text)?;
        Ok(members
            .iter()
            .map(|(n, v)| (n.to_owned(), serde_json::from_str(v.get()).unwrap()))
            .collect())
    }

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
        assert_eq!(
            object(br#"{"x":[1,{"y":{"c":1,"\u0063":2}}]}"#),
            Err(ObjectError::Duplicate)
        );
        let ok = object(br#"{"a":1,"b":{"a":[1,2.5,"s",null,true]},"c":{"a":1}}"#).unwrap();
        assert_eq!(ok["b"]["a"][1], serde_json::json!(2.5));
        assert_eq!(ok.len(), 3);
    }

    // The in-place comparison of short names (SHORT_NAMES of them) and the
    // vector beyond: a repeat is seen wherever its two copies fall.
    #[test]
    fn repeats_seen_across_the_short_name_boundary() {
        let names: Vec<String> = (0..12).map(|i| format!("n{i}")).collect();
        let object_of = |names: &[&str]| {
            let members: Vec<String> = names
                .iter()
                .map(|n| format!("\"{n}\":{{\"{n}\":1}}"))
                .collect();
            format!("{{{}}}", members.join(","))
        };
        let all: Vec<&str> = names.iter().map(String::as_str).collect();
        assert!(object(object_of(&all).as_bytes()).is_ok());
        for (first, second) in [(0, 8), (7, 11), (8, 10), (3, 3), (0, 1), (9, 11)] {
            let mut with_repeat = all.clone();
            with_repeat.insert(second + 1, all[first]);
            let text = object_of(&with_repeat);
            assert_eq!(
                object(text.as_bytes()),
                Err(ObjectError::Duplicate),
                "{text}"
            );
            // Nested: the same object one level down.
            let nested = format!("{{\"x\":[{text}]}}");
            assert_eq!(
                object(nested.as_bytes()),
                Err(ObjectError::Duplicate),
                "{nested}"
            );
        }
        // Long names and short names never collide; long repeats are seen.
        let mixed = r#"{"a":1,"abcdefgh":{"abcdefgh":1,"abcdefg":2,"a":3},"abcdefg":4}"#;
        assert!(object(mixed.as_bytes()).is_ok());
        let long_repeat = r#"{"a":1,"x":{"abcdefgh":1,"b":2,"abcdefgh":3}}"#;
        assert_eq!(object(long_repeat.as_bytes()), Err(ObjectError::Duplicate));
    }

    #[test]
    fn many_members_sorted_check() {
        let mut text = String::from("{");
        for i in 0..5000 {
            text.push_str(&format!("\"m{i}\":{i},"));
        }
        let clean = format!("{}\"last\":0}}", text);
        assert_eq!(object(clean.as_bytes()).unwrap().len(), 5001);
        let repeated = format!("{}\"m4321\":0}}", text);
        let long = r#"{"long_name_1":1,"long_name_2":2,"long_name_1":3}"#;
        assert_eq!(object(long.as_bytes()), Err(ObjectError::Duplicate));
        let distinct = r#"{"long_name_1":1,"long_name_2":2,"long_name_3":3}"#;
        assert_eq!(object(distinct.as_bytes()).unwrap().len(), 3);
        assert_eq!(object(repeated.as_bytes()), Err(ObjectError::Duplicate));
        let nested = format!("{{\"x\":{}\"m17\":0}}}}", text);
        assert_eq!(object(nested.as_bytes()), Err(ObjectError::Duplicate));
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
            b"{\"a\":{\"b\":1e999}}",
            // RFC 8259 section 8.2: a lone surrogate is no character.
            b"{\"a\":\"\\ud800\"}",
            b"{\"a\":[\"x\\udc00\"]}",
            b"{\"a\":{\"\\ud800\":1}}",
            b"\xff",
        ] {
            assert_eq!(object(bad), Err(ObjectError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn matches_serde_json_without_duplicates() {
        let text = br#"{"n":-3,"u":18446744073709551615,"f":1.5e3,"s":"\u00e9\n","e":"\ud83d\ude00","a":[[],{}], "w" : { "x" : [ 1 , 2 ] } }"#;
        let ours = object(text).unwrap();
        let theirs: Map<String, Value> = serde_json::from_slice(text).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn strings_borrowed_or_unescaped() {
        let members = Members::parse(
            r#"{"a":"plain","b":"e\u0301\"q","c":5,"\u0064":"d","long_name_1":1,"long_name_2":2}"#,
        )
        .unwrap();
        assert!(matches!(members.str("a"), Ok(Some(Cow::Borrowed("plain")))));
        assert_eq!(members.str("b").unwrap().unwrap(), "e\u{301}\"q");
        assert_eq!(members.str("c"), Err(()));
        assert_eq!(members.str("zz"), Ok(None));
        assert_eq!(members.str("d").unwrap().unwrap(), "d");
        // Names longer than a tag holds are compared in full.
        assert_eq!(members.get("long_name_2").unwrap().get(), "2");
        assert!(members.get("long_name_3").is_none());
    }

    #[test]
    fn rest_json_round_trips() {
        let text = r#"{"iss":"i","q\"uote":[1, {"k" : "v"}],"n":1.50,"\u0007":true}"#;
        let members = Members::parse(text).unwrap();
        let rest = members.to_json_without(|n, _| n != "iss");
        let back: Map<String, Value> = serde_json::from_str(&rest).unwrap();
        let mut expected: Map<String, Value> = serde_json::from_str(text).unwrap();
        expected.remove("iss");
        assert_eq!(back, expected);
        assert_eq!(members.to_json_without(|_, _| false), "{}");
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(object(deep.as_bytes()), Err(ObjectError::Malformed));
        let deep = format!(
            "{{\"a\":{}1{}}}",
            "{\"b\":".repeat(10_000),
            "}".repeat(10_000)
        );
        assert_eq!(object(deep.as_bytes()), Err(ObjectError::Malformed));
    }
}

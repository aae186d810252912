//! One pass over a request body: the strict checks of [`json::is_clean`]
//! (no repeated member name at any depth, no lone surrogate, numbers in
//! range, nesting within `serde_json`'s recursion limit, nothing after the
//! value) and, on the way, the few members that name each message's
//! operation. Nothing else is kept: no tree of values is built.
//!
//! Hand-written (see [`Reader`] for why): it finds where each token ends
//! and leaves the value of every escaped string and every number but a
//! plain integer to `serde_json`, so strings, escapes and numbers are read
//! as rmcp reads them.
//!
//! [`json::is_clean`]: crate::json::is_clean

use std::borrow::Cow;

use serde_json::Number;

use super::Unreadable;
use crate::json::NameSet;

/// A member that must be a string, as found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) enum Text<'a> {
    /// The member is not there.
    #[default]
    Absent,
    /// A string.
    Str(Cow<'a, str>),
    /// Another kind of value (`null` included).
    Other,
}

/// A member that must be an object, as found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// The member is not there.
    #[default]
    Absent,
    /// An object.
    Object,
    /// Another kind of value (`null` included).
    Other,
}

/// `resourceSubscriptions`, as found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) enum List<'a> {
    /// The member is not there.
    #[default]
    Absent,
    /// `null`.
    Null,
    /// An array of strings.
    Strs(Vec<Cow<'a, str>>),
    /// Anything else (an array with a non-string element included).
    Other,
}

/// A message's `id`, as found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) enum Id<'a> {
    /// The member is not there.
    #[default]
    Absent,
    /// A string.
    Str(Cow<'a, str>),
    /// A number, as `serde_json` reads it.
    Num(Number),
    /// Another kind of value (`null` included).
    Other,
}

impl Id<'_> {
    /// The id spelled as rmcp compares the ids of a session's requests: a
    /// string by its value (`s:`), a number by its integer value when it has
    /// one (`n:`; `5.0` is rmcp's integer 5). `None`: not an id rmcp routes
    /// an answer by.
    pub(super) fn key(&self) -> Option<Box<str>> {
        match self {
            Self::Str(s) => Some(string_key(s)),
            Self::Num(n) => Some(number_key(n)),
            Self::Absent | Self::Other => None,
        }
    }
}

/// A string id as rmcp compares it: by its value.
fn string_key(s: &str) -> Box<str> {
    key("s:", s)
}

/// `prefix` then `text`, without `format!` (about 700 instructions a
/// call's id with it).
fn key(prefix: &str, text: &str) -> Box<str> {
    let mut key = String::with_capacity(prefix.len() + text.len());
    key.push_str(prefix);
    key.push_str(text);
    key.into_boxed_str()
}

/// A JSON-RPC id read as a `serde_json::Value` (a `requestId` of a
/// `notifications/cancelled`), spelled as [`Id::key`] spells the ids the
/// scan reads; `None` for anything but a string or a number.
pub(crate) fn value_key(id: &serde_json::Value) -> Option<Box<str>> {
    match id {
        serde_json::Value::String(s) => Some(string_key(s)),
        serde_json::Value::Number(n) => Some(number_key(n)),
        _ => None,
    }
}

/// A number id as rmcp compares it: by its integer value when it has one
/// (`5.0` is rmcp's integer 5), else as written by `serde_json`.
pub(super) fn number_key(n: &Number) -> Box<str> {
    let mut digits = itoa::Buffer::new();
    match (n.as_i64(), n.as_u64(), n.as_f64()) {
        (Some(i), _, _) => key("n:", digits.format(i)),
        (None, Some(u), _) => key("n:", digits.format(u)),
        #[allow(clippy::cast_possible_truncation)]
        (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
            key("n:", digits.format(f as i64))
        }
        _ => format!("n:{n}").into(),
    }
}

/// What one message says about its operation.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Facts<'a> {
    /// The message is an object.
    pub(super) object: bool,
    /// `id`.
    pub(super) id: Id<'a>,
    /// `method`.
    pub(super) method: Text<'a>,
    /// `params`.
    pub(super) params: Shape,
    /// `params.name`.
    pub(super) name: Text<'a>,
    /// `params.uri`.
    pub(super) uri: Text<'a>,
    /// `params.notifications`.
    pub(super) notifications: Shape,
    /// `params.notifications.resourceSubscriptions`.
    pub(super) subscriptions: List<'a>,
    /// `params.ref` (`completion/complete`).
    pub(super) reference: Shape,
    /// `params.ref.type`.
    pub(super) ref_type: Text<'a>,
    /// `params.ref.name` (a prompt's).
    pub(super) ref_name: Text<'a>,
    /// `params.ref.uri` (a resource template's).
    pub(super) ref_uri: Text<'a>,
    /// `params.taskId` (`tasks/get`, `tasks/update`, `tasks/cancel`).
    pub(super) task_id: Text<'a>,
    /// `params._meta` holds the client capabilities of MCP 2026-07-28
    /// with the tasks extension (SEP-2663) among their `extensions`,
    /// whatever its value: what rmcp reads before it lets a handler answer
    /// a `tools/call` with a task.
    pub(super) declares_tasks: bool,
    /// `params.capabilities.extensions` holds the tasks extension: what an
    /// `initialize` declares for the whole of its legacy session (rmcp
    /// keeps those capabilities as its peer's and reads them for every
    /// later call of the session whose `_meta` declares none).
    pub(super) declares_tasks_for_session: bool,
}

/// Where in a message a value sits: what is kept of it.
#[derive(Debug, Clone, Copy)]
enum Role {
    /// Checked, not kept.
    Skip,
    /// A message (the body, or an element of a batch).
    Message,
    Id,
    Method,
    Params,
    Name,
    Uri,
    Notifications,
    Subscriptions,
    /// An element of `resourceSubscriptions`.
    Subscription,
    /// `params.ref`.
    Ref,
    RefType,
    RefName,
    RefUri,
    /// `params.taskId`.
    TaskId,
    /// `params._meta`.
    Meta,
    /// `params._meta["io.modelcontextprotocol/clientCapabilities"]`.
    Capabilities,
    /// Their `extensions`.
    Extensions,
    /// `extensions["io.modelcontextprotocol/tasks"]`: its presence is
    /// the declaration.
    TasksExtension,
    /// `params.capabilities` (an `initialize`'s client capabilities).
    SessionCapabilities,
    /// Their `extensions`.
    SessionExtensions,
    /// `extensions["io.modelcontextprotocol/tasks"]` there.
    SessionTasksExtension,
}

/// The `_meta` key of a request's client capabilities (MCP 2026-07-28),
/// and the tasks extension's id (SEP-2663), as rmcp reads them.
const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";

/// serde_json's recursion limit, as its reader applies it: the 128th
/// array or object open inside one another is refused (`serde_json`
/// counts down from 128 and refuses at 0).
const MAX_DEPTH: u32 = 127;

/// What an object counts toward `max_values` (see [`scan`]).
pub(crate) const OBJECT_WEIGHT: usize = 5;

/// A member's name counts one toward `max_values`, and one more per this
/// many bytes of it (see [`scan`]).
pub(crate) const NAME_BYTES_PER_VALUE: usize = 16;

/// Reads `text` (one JSON value) strictly. `Err`: not strictly valid JSON
/// (which rule it broke), or its top level is neither an object nor an
/// array. Otherwise one [`Facts`] per message: one for an object, one per
/// element of an array.
///
/// Refuses exactly what reading `text` with `serde_json` (and refusing a
/// repeated name at each object's end) refuses, with the same [`Unreadable`]
/// for the first rule broken in reading order; the test oracle
/// (`oracle::scan`, the reader this one replaced) checks that.
///
/// At most `max_values` JSON values are read (each element, member value
/// and top-level value counts one, an object [`OBJECT_WEIGHT`], a member's
/// name one plus one per [`NAME_BYTES_PER_VALUE`] bytes of it): past them,
/// [`Unreadable::TooManyValues`].
pub(super) fn scan(text: &str, max_values: usize) -> Result<Vec<Facts<'_>>, Unreadable> {
    let mut reader = Reader {
        text,
        at: 0,
        depth: 0,
        values_left: max_values,
    };
    let facts = match reader.next_token() {
        Some(b'{') => {
            let mut facts = Facts::default();
            reader.value(Role::Message, &mut facts)?;
            vec![facts]
        }
        Some(b'[') => {
            // The batch itself is a value, as a message's array would be.
            reader.spend(1)?;
            reader.batch()?
        }
        Some(_) => return Err(Unreadable::NotAMessage),
        None => return Err(Unreadable::Truncated),
    };
    if reader.next_token().is_some() {
        return Err(Unreadable::Trailing);
    }
    Ok(facts)
}

/// The rule a `serde_json` error says the body broke (the reader asks
/// `serde_json` for the values of numbers and escaped strings).
fn why(e: &serde_json::Error) -> Unreadable {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => Unreadable::Truncated,
        // serde_json's own ("number out of range").
        _ if e.to_string().contains(OUT_OF_RANGE) => Unreadable::OutOfRange,
        Category::Data => Unreadable::NotAMessage,
        Category::Syntax | Category::Io => Unreadable::Syntax,
    }
}

/// serde_json's text for a number out of range.
const OUT_OF_RANGE: &str = "number out of range";

/// One pass over a body's bytes.
///
/// Hand-written rather than driven by `serde_json`'s deserializer: that
/// path cost about 6,000 instructions on a 200-byte `tools/call`, more than
/// any other part of the layer's work a call (issue 13, BENCHMARKS.md
/// "twenty-third pass"), and no JSON crate offers a pull reader that is as
/// strict as `serde_json` (which rmcp reads the body with) in every case.
/// This one only finds where each token ends and reads the plain ones
/// itself: a string without escapes (borrowed as it stands) and a
/// non-negative integer of at most 19 digits. The value of every other
/// string and number is `serde_json`'s own, read from its span, so escapes,
/// surrogates and the range of numbers are judged by `serde_json`.
struct Reader<'a> {
    text: &'a str,
    /// The next byte to read.
    at: usize,
    /// Arrays and objects open.
    depth: u32,
    /// How many more values may be read ([`scan`]'s `max_values`).
    values_left: usize,
}

impl<'a> Reader<'a> {
    /// Counts `values` against the cap ([`scan`]'s `max_values`).
    fn spend(&mut self, values: usize) -> Result<(), Unreadable> {
        self.values_left = self
            .values_left
            .checked_sub(values)
            .ok_or(Unreadable::TooManyValues)?;
        Ok(())
    }

    /// The next byte after JSON whitespace (RFC 8259 section 2), not taken.
    fn next_token(&mut self) -> Option<u8> {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.at) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    /// Takes the `[` or `{` at `at`: one more level open.
    fn open(&mut self) -> Result<(), Unreadable> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Unreadable::Syntax);
        }
        self.at += 1;
        Ok(())
    }

    /// After an element or a member: `Ok(true)` when `close` ends the
    /// array or object (taken, one level less open), `Ok(false)` after a
    /// `,` (taken: another must follow).
    fn ends(&mut self, close: u8) -> Result<bool, Unreadable> {
        match self.next_token() {
            Some(b',') => {
                self.at += 1;
                Ok(false)
            }
            Some(b) if b == close => {
                self.at += 1;
                self.depth -= 1;
                Ok(true)
            }
            Some(_) => Err(Unreadable::Syntax),
            None => Err(Unreadable::Truncated),
        }
    }

    /// Whether the array or object just opened is empty (its `close`
    /// taken when it is).
    fn empty(&mut self, close: u8) -> bool {
        if self.next_token() == Some(close) {
            self.at += 1;
            self.depth -= 1;
            return true;
        }
        false
    }

    /// The top-level array: a batch, one [`Facts`] per element.
    fn batch(&mut self) -> Result<Vec<Facts<'a>>, Unreadable> {
        self.open()?;
        let mut all = Vec::new();
        if self.empty(b']') {
            return Ok(all);
        }
        loop {
            let mut facts = Facts::default();
            self.value(Role::Message, &mut facts)?;
            all.push(facts);
            if self.ends(b']')? {
                return Ok(all);
            }
        }
    }

    /// One value in `role`, kept in `facts` as the role asks.
    fn value(&mut self, role: Role, facts: &mut Facts<'a>) -> Result<(), Unreadable> {
        self.spend(1)?;
        let walk = Walk { role, facts }.declared();
        match self.next_token() {
            Some(b'{') => self.object(walk),
            Some(b'[') => self.array(walk),
            Some(b'"') => {
                walk.string(self.string()?);
                Ok(())
            }
            Some(b't') => self.literal(b"true").map(|()| walk.other()),
            Some(b'f') => self.literal(b"false").map(|()| walk.other()),
            Some(b'n') => self.literal(b"null").map(|()| walk.null()),
            Some(b'-' | b'0'..=b'9') => {
                walk.number(self.number()?);
                Ok(())
            }
            Some(_) => Err(Unreadable::Syntax),
            None => Err(Unreadable::Truncated),
        }
    }

    fn object(&mut self, walk: Walk<'_, 'a>) -> Result<(), Unreadable> {
        // An object costs rmcp a map and its keys, about five times a
        // number's memory (found from outside: 50,000 one-member objects
        // took 53 MB where 100,000 zeros take 17): weighed as five values
        // (one was spent by `value`).
        self.spend(OBJECT_WEIGHT - 1)?;
        self.open()?;
        let (role, facts) = walk.open_object();
        let mut names = NameSet::default();
        if !self.empty(b'}') {
            loop {
                match self.next_token() {
                    Some(b'"') => {}
                    Some(_) => return Err(Unreadable::Syntax),
                    None => return Err(Unreadable::Truncated),
                }
                let name = self.string()?;
                // rmcp keeps each name as a string of its own in the map
                // (found from outside: 99,900 members of 35-byte names,
                // under the cap when names were free, took 86 MB).
                self.spend(1 + name.len() / NAME_BYTES_PER_VALUE)?;
                match self.next_token() {
                    Some(b':') => self.at += 1,
                    Some(_) => return Err(Unreadable::Syntax),
                    None => return Err(Unreadable::Truncated),
                }
                self.value(member_role(role, &name), facts)?;
                names.add(name);
                if self.ends(b'}')? {
                    break;
                }
            }
        }
        // As the reader this one replaced: checked once the object ends.
        if names.distinct() {
            Ok(())
        } else {
            Err(Unreadable::RepeatedName)
        }
    }

    fn array(&mut self, walk: Walk<'_, 'a>) -> Result<(), Unreadable> {
        self.open()?;
        let (element, facts) = walk.open_array();
        if self.empty(b']') {
            return Ok(());
        }
        loop {
            self.value(element, facts)?;
            if self.ends(b']')? {
                return Ok(());
            }
        }
    }

    /// `true`, `false` or `null`, its first byte seen.
    fn literal(&mut self, word: &[u8]) -> Result<(), Unreadable> {
        for &want in word {
            match self.text.as_bytes().get(self.at) {
                Some(&b) if b == want => self.at += 1,
                Some(_) => return Err(Unreadable::Syntax),
                None => return Err(Unreadable::Truncated),
            }
        }
        Ok(())
    }

    /// A string, its opening quote at `at`.
    fn string(&mut self) -> Result<Cow<'a, str>, Unreadable> {
        let start = self.at + 1;
        let rest = self.text.as_bytes().get(start..).unwrap_or_default();
        let end = match first_special(rest) {
            Some(i) => start + i,
            None => return Err(Unreadable::Truncated),
        };
        match self.text.as_bytes().get(end) {
            Some(b'"') => {}
            Some(b'\\') => return self.escaped_string(),
            // serde_json refuses a control character in a string.
            _ => return Err(Unreadable::Syntax),
        }
        // Both ends are ASCII bytes, so character boundaries.
        let plain = self.text.get(start..end).ok_or(Unreadable::Syntax)?;
        self.at = end + 1;
        Ok(Cow::Borrowed(plain))
    }

    /// A string with an escape, its opening quote at `at`: it ends at the
    /// first quote that no backslash escapes (the bytes of an escape after
    /// its backslash are neither a quote nor a backslash, or serde_json
    /// refuses it), and its value, or the refusal, is serde_json's reading
    /// of the string from `at` on, with the rest of the body after it (a
    /// `\u` escape cut by the body's end is refused differently from one
    /// with non-hex digits).
    fn escaped_string(&mut self) -> Result<Cow<'a, str>, Unreadable> {
        use serde::Deserialize as _;
        let bytes = self.text.as_bytes();
        let mut end = self.at + 1;
        let close = loop {
            match bytes.get(end) {
                Some(b'"') => break Some(end + 1),
                Some(b'\\') => end += 2,
                Some(_) => end += 1,
                None => break None,
            }
        };
        let rest = self.text.get(self.at..).ok_or(Unreadable::Syntax)?;
        let value = String::deserialize(&mut serde_json::Deserializer::from_str(rest))
            .map_err(|e| why(&e))?;
        // A string serde_json reads to its end has a closing quote.
        self.at = close.ok_or(Unreadable::Syntax)?;
        Ok(Cow::Owned(value))
    }

    /// A number, its first byte (`-` or a digit) at `at`.
    fn number(&mut self) -> Result<Number, Unreadable> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let mut end = start;
        let negative = bytes.get(end) == Some(&b'-');
        if negative {
            end += 1;
        }
        // One leading zero, or digits from 1 to 9 (a digit after a leading
        // zero is refused by what reads the next token).
        match bytes.get(end) {
            Some(b'0') => end += 1,
            Some(b'1'..=b'9') => end = digits_from(bytes, end),
            Some(_) => return Err(Unreadable::Syntax),
            None => return Err(Unreadable::Truncated),
        }
        let integer_end = end;
        if bytes.get(end) == Some(&b'.') {
            end = at_least_one_digit(bytes, end + 1)?;
        }
        if matches!(bytes.get(end), Some(b'e' | b'E')) {
            end += 1;
            if matches!(bytes.get(end), Some(b'+' | b'-')) {
                end += 1;
            }
            end = at_least_one_digit(bytes, end)?;
        }
        self.at = end;
        let span = self.text.get(start..end).ok_or(Unreadable::Syntax)?;
        // At most 19 digits always fit in a u64 (u64::MAX has 20).
        if !negative && end == integer_end && span.len() <= 19 {
            let value = span.bytes().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            return Ok(value.into());
        }
        serde_json::from_str(span).map_err(|e| why(&e))
    }
}

/// Where the first quote, backslash or control character (a byte below
/// 0x20) of `bytes` is: where a string ends, or needs a closer look.
///
/// Eight bytes at a time: a byte-at-a-time loop cost about 15
/// instructions a byte of a body's strings (BENCHMARKS.md, "twenty-third
/// pass"). In each word, `(w - 0x01..01 * n) & !w & 0x80..80` sets the top
/// bit of every byte below `n` (for `n` up to 0x80): exactly so for the
/// lowest such byte, while a borrow can mark bytes above it too. Bytes that
/// equal a quote or a backslash are those below 1 once xored with it. The
/// lowest bit set of the three masks is then the first byte wanted.
fn first_special(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const TOPS: u64 = 0x8080_8080_8080_8080;
    const QUOTES: u64 = ONES * b'"' as u64;
    const BACKSLASHES: u64 = ONES * b'\\' as u64;
    let below = |word: u64, n: u64| word.wrapping_sub(ONES * n) & !word & TOPS;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let found = below(word ^ QUOTES, 1) | below(word ^ BACKSLASHES, 1) | below(word, 0x20);
        if found != 0 {
            // Little-endian: the lowest bit set is in the first byte found.
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|i| offset + i)
}

/// The end of the run of digits starting at `from`.
fn digits_from(bytes: &[u8], mut from: usize) -> usize {
    while matches!(bytes.get(from), Some(b'0'..=b'9')) {
        from += 1;
    }
    from
}

/// [`digits_from`], refusing an empty run as serde_json does.
fn at_least_one_digit(bytes: &[u8], from: usize) -> Result<usize, Unreadable> {
    match bytes.get(from) {
        Some(b'0'..=b'9') => Ok(digits_from(bytes, from)),
        Some(_) => Err(Unreadable::Syntax),
        None => Err(Unreadable::Truncated),
    }
}

/// The role of member `name` of an object in role `parent`.
fn member_role(parent: Role, name: &str) -> Role {
    match (parent, name) {
        (Role::Message, "id") => Role::Id,
        (Role::Message, "method") => Role::Method,
        (Role::Message, "params") => Role::Params,
        (Role::Params, "name") => Role::Name,
        (Role::Params, "uri") => Role::Uri,
        (Role::Params, "notifications") => Role::Notifications,
        (Role::Notifications, "resourceSubscriptions") => Role::Subscriptions,
        (Role::Params, "ref") => Role::Ref,
        (Role::Ref, "type") => Role::RefType,
        (Role::Ref, "name") => Role::RefName,
        (Role::Ref, "uri") => Role::RefUri,
        (Role::Params, "taskId") => Role::TaskId,
        (Role::Params, "_meta") => Role::Meta,
        (Role::Meta, CLIENT_CAPABILITIES) => Role::Capabilities,
        (Role::Capabilities, "extensions") => Role::Extensions,
        (Role::Extensions, TASKS_EXTENSION) => Role::TasksExtension,
        (Role::Params, "capabilities") => Role::SessionCapabilities,
        (Role::SessionCapabilities, "extensions") => Role::SessionExtensions,
        (Role::SessionExtensions, TASKS_EXTENSION) => Role::SessionTasksExtension,
        _ => Role::Skip,
    }
}

/// Checks one value and keeps what its role asks for in `facts`.
struct Walk<'f, 'de> {
    role: Role,
    facts: &'f mut Facts<'de>,
}

impl<'f, 'de> Walk<'f, 'de> {
    /// Records a number.
    fn number(self, n: Number) {
        match self.role {
            Role::Id => self.facts.id = Id::Num(n),
            _ => self.other(),
        }
    }

    /// Records a value that is neither a string nor an object nor an array
    /// (`null` is handled apart).
    fn other(self) {
        let facts = self.facts;
        match self.role {
            // What a client declares is read for the tasks extension's
            // key only: any other shape declares nothing.
            Role::Skip
            | Role::Message
            | Role::Meta
            | Role::Capabilities
            | Role::Extensions
            | Role::TasksExtension
            | Role::SessionCapabilities
            | Role::SessionExtensions
            | Role::SessionTasksExtension => {}
            Role::Id => facts.id = Id::Other,
            Role::Method => facts.method = Text::Other,
            Role::Params => facts.params = Shape::Other,
            Role::Name => facts.name = Text::Other,
            Role::Uri => facts.uri = Text::Other,
            Role::Notifications => facts.notifications = Shape::Other,
            Role::Subscriptions | Role::Subscription => facts.subscriptions = List::Other,
            Role::Ref => facts.reference = Shape::Other,
            Role::RefType => facts.ref_type = Text::Other,
            Role::RefName => facts.ref_name = Text::Other,
            Role::RefUri => facts.ref_uri = Text::Other,
            Role::TaskId => facts.task_id = Text::Other,
        }
    }

    fn string(self, s: Cow<'de, str>) {
        let facts = self.facts;
        match self.role {
            Role::Id => facts.id = Id::Str(s),
            Role::Method => facts.method = Text::Str(s),
            Role::Name => facts.name = Text::Str(s),
            Role::Uri => facts.uri = Text::Str(s),
            Role::RefType => facts.ref_type = Text::Str(s),
            Role::RefName => facts.ref_name = Text::Str(s),
            Role::RefUri => facts.ref_uri = Text::Str(s),
            Role::TaskId => facts.task_id = Text::Str(s),
            Role::Subscription => {
                if let List::Strs(all) = &mut facts.subscriptions {
                    all.push(s);
                }
            }
            _ => Walk {
                role: self.role,
                facts,
            }
            .other(),
        }
    }

    /// The walk of the value itself: the tasks extension's key is a
    /// declaration whatever its value (rmcp asks whether the key is
    /// there), and the value is then read (strictly) as any other.
    fn declared(self) -> Self {
        match self.role {
            Role::TasksExtension => self.facts.declares_tasks = true,
            Role::SessionTasksExtension => self.facts.declares_tasks_for_session = true,
            _ => return self,
        }
        Walk {
            role: Role::Skip,
            facts: self.facts,
        }
    }

    /// Records `null`.
    fn null(self) {
        match self.role {
            Role::Subscriptions => self.facts.subscriptions = List::Null,
            _ => self.other(),
        }
    }

    /// Records an object: the role its members are read in, and where.
    fn open_object(self) -> (Role, &'f mut Facts<'de>) {
        let Walk { role, facts } = self;
        match role {
            Role::Message => facts.object = true,
            Role::Params => facts.params = Shape::Object,
            Role::Notifications => facts.notifications = Shape::Object,
            Role::Ref => facts.reference = Shape::Object,
            Role::Skip
            | Role::Meta
            | Role::Capabilities
            | Role::Extensions
            | Role::SessionCapabilities
            | Role::SessionExtensions => {}
            _ => Walk {
                role,
                facts: &mut *facts,
            }
            .other(),
        }
        (role, facts)
    }

    /// Records an array: the role its elements are read in, and where.
    fn open_array(self) -> (Role, &'f mut Facts<'de>) {
        let Walk { role, facts } = self;
        let element = match role {
            Role::Subscriptions => {
                facts.subscriptions = List::Strs(Vec::new());
                Role::Subscription
            }
            role => {
                Walk {
                    role,
                    facts: &mut *facts,
                }
                .other();
                Role::Skip
            }
        };
        (element, facts)
    }
}

#[cfg(test)]
mod tests {
    use super::first_special;

    fn naive(bytes: &[u8]) -> Option<usize> {
        bytes
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
    }

    #[test]
    fn every_byte_value_at_every_place_of_a_word() {
        for len in 0..20 {
            for at in 0..len {
                for byte in 0..=255u8 {
                    // Bytes around it that a borrow could mistake.
                    for fill in [b'a', 0x21, 0x23, 0x5b, 0x5d, 0x80, 0xff, 0x7f] {
                        let mut bytes = vec![fill; len];
                        bytes[at] = byte;
                        assert_eq!(first_special(&bytes), naive(&bytes), "{bytes:?}");
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn finds_what_a_byte_at_a_time_finds(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            proptest::prop_assert_eq!(first_special(&bytes), naive(&bytes));
        }
    }
}

/// The reader [`scan`] replaced, on `serde_json`'s deserializer: the
/// reference it must agree with, result for result and refusal for
/// refusal.
#[cfg(test)]
pub(super) mod oracle {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::Number;

    use super::{Facts, OUT_OF_RANGE, Role, Unreadable, Walk, member_role};
    use crate::json::{Name, NameSet};

    /// Reads `text` as [`super::scan`] does.
    pub(in crate::operation) fn scan(text: &str) -> Result<Vec<Facts<'_>>, Unreadable> {
        let mut de = serde_json::Deserializer::from_str(text);
        let facts = Body.deserialize(&mut de).map_err(|e| why(&e))?;
        de.end().map_err(|_| Unreadable::Trailing)?;
        Ok(facts)
    }

    fn why(e: &serde_json::Error) -> Unreadable {
        use serde_json::error::Category;
        let text = e.to_string();
        match e.classify() {
            Category::Eof => Unreadable::Truncated,
            Category::Data if text.starts_with(REPEATED) => Unreadable::RepeatedName,
            _ if text.contains(OUT_OF_RANGE) => Unreadable::OutOfRange,
            Category::Data => Unreadable::NotAMessage,
            Category::Syntax | Category::Io => Unreadable::Syntax,
        }
    }

    const REPEATED: &str = "a repeated member name";

    struct Body;

    impl<'de> DeserializeSeed<'de> for Body {
        type Value = Vec<Facts<'de>>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Body {
        type Value = Vec<Facts<'de>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON-RPC message or batch")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            let mut facts = Facts::default();
            Walk {
                role: Role::Message,
                facts: &mut facts,
            }
            .visit_map(map)?;
            Ok(vec![facts])
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut all = Vec::new();
            loop {
                let mut facts = Facts::default();
                let more = seq.next_element_seed(Walk {
                    role: Role::Message,
                    facts: &mut facts,
                })?;
                if more.is_none() {
                    return Ok(all);
                }
                all.push(facts);
            }
        }
    }

    impl<'de> DeserializeSeed<'de> for Walk<'_, 'de> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self.declared())
        }
    }

    impl<'de> Visitor<'de> for Walk<'_, 'de> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            self.other();
            Ok(())
        }
        fn visit_i64<E>(self, v: i64) -> Result<(), E> {
            self.number(v.into());
            Ok(())
        }
        fn visit_u64<E>(self, v: u64) -> Result<(), E> {
            self.number(v.into());
            Ok(())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
            let n = Number::from_f64(v).ok_or_else(|| E::custom(OUT_OF_RANGE))?;
            self.number(n);
            Ok(())
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<(), E> {
            self.string(Cow::Borrowed(v));
            Ok(())
        }
        fn visit_str<E>(self, v: &str) -> Result<(), E> {
            self.string(Cow::Owned(v.to_owned()));
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            self.null();
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let (element, facts) = self.open_array();
            while seq
                .next_element_seed(Walk {
                    role: element,
                    facts: &mut *facts,
                })?
                .is_some()
            {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let (role, facts) = self.open_object();
            let mut names = NameSet::default();
            while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
                map.next_value_seed(Walk {
                    role: member_role(role, &name),
                    facts: &mut *facts,
                })?;
                names.add(name);
            }
            if names.distinct() {
                Ok(())
            } else {
                Err(de::Error::custom(REPEATED))
            }
        }
    }
}

//! One pass over a request body: the strict checks of [`json::is_clean`]
//! (no repeated member name at any depth, no lone surrogate, numbers in
//! range, nesting within `serde_json`'s recursion limit, nothing after the
//! value) and, on the way, the few members that name each message's
//! operation. Nothing else is kept: no tree of values is built.
//!
//! Hand-written on serde's visitor API because no JSON crate offers a
//! strict reader that also refuses repeated names; it walks what
//! `serde_json` parses, so numbers, strings and escapes are `serde_json`'s.
//!
//! [`json::is_clean`]: crate::json::is_clean

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

use super::Unreadable;
use crate::json::{Name, NameSet};

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
    format!("s:{s}").into()
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
    match (n.as_i64(), n.as_u64(), n.as_f64()) {
        (Some(i), _, _) => format!("n:{i}").into(),
        (None, Some(u), _) => format!("n:{u}").into(),
        #[allow(clippy::cast_possible_truncation)]
        (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
            format!("n:{}", f as i64).into()
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

/// Reads `text` (one JSON value) strictly. `Err`: not strictly valid JSON
/// (which rule it broke), or its top level is neither an object nor an
/// array. Otherwise one [`Facts`] per message: one for an object, one per
/// element of an array.
pub(super) fn scan(text: &str) -> Result<Vec<Facts<'_>>, Unreadable> {
    let mut de = serde_json::Deserializer::from_str(text);
    let facts = Body.deserialize(&mut de).map_err(|e| why(&e))?;
    de.end().map_err(|_| Unreadable::Trailing)?;
    Ok(facts)
}

/// The rule a `serde_json` error of [`scan`] says the body broke.
fn why(e: &serde_json::Error) -> Unreadable {
    use serde_json::error::Category;
    let text = e.to_string();
    match e.classify() {
        Category::Eof => Unreadable::Truncated,
        Category::Data if text.starts_with(REPEATED) => Unreadable::RepeatedName,
        // serde_json's own ("number out of range") and ours alike.
        _ if text.contains(OUT_OF_RANGE) => Unreadable::OutOfRange,
        Category::Data => Unreadable::NotAMessage,
        Category::Syntax | Category::Io => Unreadable::Syntax,
    }
}

/// The texts of this module's own errors, which [`why`] tells apart.
const REPEATED: &str = "a repeated member name";
const OUT_OF_RANGE: &str = "number out of range";

/// The top level.
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
        let mut all = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(64));
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

impl<'de> DeserializeSeed<'de> for Walk<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        // Any value: rmcp asks whether the key is there. Still read
        // (strictly) as any other value.
        match self.role {
            Role::TasksExtension => self.facts.declares_tasks = true,
            Role::SessionTasksExtension => self.facts.declares_tasks_for_session = true,
            _ => return d.deserialize_any(self),
        }
        d.deserialize_any(Walk {
            role: Role::Skip,
            facts: self.facts,
        })
    }
}

impl<'de> Walk<'_, 'de> {
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
        // As `serde_json::Value` would: a number out of range is malformed.
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
        match self.role {
            Role::Subscriptions => self.facts.subscriptions = List::Null,
            _ => self.other(),
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
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

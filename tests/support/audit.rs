//! Audit events captured by a real `tracing` subscriber layer: every event
//! on the target `mcp_oauth2::audit`, its fields as text (and its `level`).
//! Install it once per test binary (a global subscriber), beside whatever
//! other layers the test needs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// One audit event: field name to text.
pub type Event = BTreeMap<String, String>;

/// Every audit event seen, in order.
#[derive(Clone, Default)]
pub struct Audit(Arc<Mutex<Vec<Event>>>);

struct Fields<'a>(&'a mut Event);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Audit {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "mcp_oauth2::audit" {
            return;
        }
        let mut fields = Event::new();
        fields.insert("level".into(), event.metadata().level().to_string());
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(fields);
    }
}

impl Audit {
    /// The events whose `request_id` satisfies `keep`.
    fn filtered(&self, keep: impl Fn(&str) -> bool) -> Vec<Event> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.get("request_id").is_some_and(|id| keep(id)))
            .cloned()
            .collect()
    }

    /// The events of the request with this id.
    pub fn of(&self, request_id: &str) -> Vec<Event> {
        self.filtered(|id| id == request_id)
    }

    /// The events whose `request_id` starts with `prefix`.
    pub fn with_prefix(&self, prefix: &str) -> Vec<Event> {
        self.filtered(|id| id.starts_with(prefix))
    }

    /// The one event of the request with this id.
    pub fn one(&self, request_id: &str) -> Event {
        let events = self.of(request_id);
        assert_eq!(events.len(), 1, "{request_id}: {events:#?}");
        events.into_iter().next().unwrap()
    }

    /// The count the lines of their own (`audit.suppressed`) told of
    /// `kind`'s events left unwritten.
    #[allow(dead_code)] // not every test binary reads them
    pub fn flushed(&self, kind: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| {
                e.get("event").map(String::as_str) == Some("audit.suppressed")
                    && e.get("of").map(String::as_str) == Some(kind)
            })
            .filter_map(|e| e.get("suppressed")?.parse::<u64>().ok())
            .sum()
    }

    /// Every event, as one text.
    pub fn all_text(&self) -> String {
        format!("{:?}", self.0.lock().unwrap())
    }
}

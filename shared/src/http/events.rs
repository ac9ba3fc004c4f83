//! The query of `GET events/` (SPEC §8.5), read with DRF's messages.

use std::time::Duration;

use crate::domain::error::FieldErrors;
use crate::domain::events::EventType;
use crate::domain::ids::StoryId;
use crate::http::QueryParams;
use crate::ports::EventFilter;

/// The longest `wait` (API Gateway answers within 30 s).
pub const MAX_WAIT_SECONDS: u64 = 20;

/// What `GET events/` asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventQuery {
    /// `type` and `story`.
    pub filter: EventFilter,
    /// `after`: the event id to start after.
    pub after: Option<String>,
    /// `wait`: how long to hold the request for an event.
    pub wait: Duration,
}

/// Reads `type` (repeatable, or a comma list), `story`, `after` and `wait`, adding their errors.
pub fn event_query(query: &QueryParams, errors: &mut FieldErrors) -> EventQuery {
    let mut read = EventQuery::default();
    for raw in query.get_all("type").iter().flat_map(|v| v.split(',')).map(str::trim).filter(|t| !t.is_empty()) {
        match EventType::parse(raw) {
            Ok(t) => read.filter.types.push(t),
            Err(m) => errors.add("type", m),
        }
    }
    if let Some(raw) = query.get("story").filter(|s| !s.is_empty()) {
        match StoryId::parse(raw) {
            Some(id) => read.filter.story = Some(id),
            None => errors.add("story", "Must be a valid story id."),
        }
    }
    match query.get("after").filter(|s| !s.is_empty()) {
        // Event ids are ULIDs: 26 letters and digits.
        Some(raw) if raw.len() == 26 && raw.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            read.after = Some(raw.to_ascii_uppercase());
        }
        Some(_) => errors.add("after", "Must be an event id."),
        None => {}
    }
    if let Some(raw) = query.get("wait").filter(|s| !s.is_empty()) {
        match raw.parse::<u64>().ok().filter(|w| *w <= MAX_WAIT_SECONDS) {
            Some(w) => read.wait = Duration::from_secs(w),
            None => errors
                .add("wait", format!("Ensure this value is a whole number of seconds from 0 to {MAX_WAIT_SECONDS}.")),
        }
    }
    read
}

//! The event feed (SPEC §8.5) in one table, `owner/<event id>` → event. `put` runs inside the
//! write transactions of the changes the events report; ids come from a clock kept in the same
//! database, so they increase strictly in the order the transactions commit (redb serialises
//! them), and a reader that resumes `after` an id never misses a later event.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{ReadableTable, WriteTransaction};

use super::store::{EmbeddedStore, Table, decode, encode, internal, key, scan_page};
use crate::domain::error::Result;
use crate::domain::events::{Event, EventDraft};
use crate::domain::ids::UserId;
use crate::domain::pagination::{Page, PageRequest};
use crate::ports::EventFilter;

/// `owner/<id>` → `Event`.
pub(super) const EVENTS: Table = redb::TableDefinition::new("events");
/// `last` → the last event id issued.
pub(super) const EVENT_CLOCK: Table = redb::TableDefinition::new("event_clock");

/// Writes `drafts` in the caller's transaction, each with the next id.
pub(super) fn put(txn: &WriteTransaction, drafts: Vec<EventDraft>) -> Result<Vec<Event>> {
    if drafts.is_empty() {
        return Ok(Vec::new());
    }
    let mut clock = txn.open_table(EVENT_CLOCK).map_err(internal)?;
    let mut last: Option<ulid::Ulid> = match clock.get("last").map_err(internal)? {
        Some(bytes) => decode::<String>(bytes.value())?.parse().ok(),
        None => None,
    };
    let mut table = txn.open_table(EVENTS).map_err(internal)?;
    let mut written = Vec::with_capacity(drafts.len());
    for draft in drafts {
        let at = ulid::Ulid::from_datetime(draft.at.into());
        // Strictly after the last one, whatever the clock says.
        let id = match last {
            Some(prev) if at <= prev => prev.increment().unwrap_or(at),
            _ => at,
        };
        last = Some(id);
        let event = Event::of(id.to_string(), draft);
        table.insert(key(&[event.owner.as_str(), &event.id]).as_str(), encode(&event)?.as_slice()).map_err(internal)?;
        written.push(event);
    }
    if let Some(last) = last {
        clock.insert("last", encode(&last.to_string())?.as_slice()).map_err(internal)?;
    }
    Ok(written)
}

/// Writes a story's move in the caller's transaction: its history record and its events.
pub(super) fn record_move(
    txn: &WriteTransaction,
    story: &crate::domain::story::Story,
    record: &crate::domain::transition::StoryStateTransition,
) -> Result<()> {
    let seq = format!("{:020}", record.sequence);
    txn.open_table(super::store::TRANSITIONS)
        .map_err(internal)?
        .insert(key(&[record.story.as_str(), &seq]).as_str(), encode(record)?.as_slice())
        .map_err(internal)?;
    put(txn, crate::domain::events::story_moved(story, record))?;
    Ok(())
}

/// Writes the events of job writes (their changes, `domain::events::job_changed`).
pub(super) fn record_job_changes(
    txn: &WriteTransaction,
    jobs: &[crate::domain::job::Job],
    at: DateTime<Utc>,
) -> Result<()> {
    put(txn, jobs.iter().flat_map(|j| crate::domain::events::job_changed(j, at)).collect())?;
    Ok(())
}

#[async_trait]
impl crate::ports::EventStore for EmbeddedStore {
    async fn events(&self, owner: &UserId, filter: &EventFilter, page: &PageRequest) -> Result<Page<Event>> {
        let (owner, filter, page) = (owner.clone(), filter.clone(), page.clone());
        self.read(move |txn| {
            let table = txn.open_table(EVENTS).map_err(internal)?;
            let scanned = scan_page(&table, owner.as_str(), &page, |_, bytes| {
                let event: Event = decode(bytes)?;
                Ok(filter.admits(&event).then_some(event))
            })?;
            Ok(Page::from_scan(scanned, &page))
        })
        .await
    }

    async fn append_event(&self, draft: EventDraft) -> Result<Event> {
        self.write(move |txn| put(txn, vec![draft])?.pop().ok_or_else(|| crate::Error::internal("no event written")))
            .await
    }

    async fn forget_events_before(&self, before: DateTime<Utc>) -> Result<usize> {
        self.write(move |txn| {
            let mut table = txn.open_table(EVENTS).map_err(internal)?;
            let mut old = Vec::new();
            // An id is a ULID of the event's time (or just after it): the key says how old it is,
            // so this minute's sweep decodes no event.
            let horizon = ulid::Ulid::from_datetime(before.into()).to_string();
            for entry in table.iter().map_err(internal)? {
                let (k, _) = entry.map_err(internal)?;
                let key = k.value();
                let id = key.rsplit(|c: char| !c.is_ascii_alphanumeric()).next().unwrap_or(key);
                if id.len() == 26 && id < horizon.as_str() {
                    old.push(key.to_owned());
                }
            }
            for k in &old {
                table.remove(k.as_str()).map_err(internal)?;
            }
            // What was delivered of them goes with them: the webhooks' log and finished deliveries.
            super::webhooks::forget_deliveries_before(txn, &horizon)?;
            Ok(old.len())
        })
        .await
    }
}

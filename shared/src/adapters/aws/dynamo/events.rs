//! The event feed (SPEC §8.5): one item per event in its owner's partition (`EVENTS#<owner>`,
//! `EVENT#<id>`), put inside the transaction of the change it reports, and expired by the table's
//! TTL (`expires_at`) after 7 days. Ids are ULIDs from one monotonic generator per process: they
//! sort by creation time, and strictly within a process.

use std::sync::{Mutex, OnceLock};

use super::*;
use crate::domain::events::{Event, EventDraft};
use crate::ports::EventFilter;

fn events_pk(owner: &UserId) -> String {
    format!("EVENTS#{owner}")
}

fn event_item(event: &Event) -> Result<Item> {
    let mut item = to_item(event)?;
    item.insert("PK".into(), s(events_pk(&event.owner)));
    item.insert("SK".into(), s(format!("EVENT#{}", event.id)));
    item.insert("expires_at".into(), AttributeValue::N(event.expires_at().timestamp().to_string()));
    Ok(item)
}

/// The next event id at `at` (never before the last one this process issued).
fn next_id(at: DateTime<Utc>) -> String {
    static GENERATOR: OnceLock<Mutex<ulid::Generator>> = OnceLock::new();
    let generator = GENERATOR.get_or_init(|| Mutex::new(ulid::Generator::new()));
    let mut generator = generator.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    generator
        .generate_from_datetime(at.into())
        .or_else(|_| generator.generate())
        .map(|id| id.to_string())
        .unwrap_or_else(|_| ulid::Ulid::from_datetime(at.into()).to_string())
}

impl DynamoStore {
    /// The Puts of `drafts` for a transaction.
    pub(super) fn event_puts(&self, drafts: Vec<EventDraft>) -> Result<Vec<TransactWriteItem>> {
        drafts.into_iter().map(|d| self.put_plain(event_item(&Event::of(next_id(d.at), d))?)).collect()
    }

    /// A story's move for a transaction: its history record (new) and its events.
    pub(super) fn move_items(&self, story: &Story, record: &StoryStateTransition) -> Result<Vec<TransactWriteItem>> {
        let mut items = vec![self.put_new(transition_item(record)?)?];
        items.extend(self.event_puts(crate::domain::events::story_moved(story, record))?);
        Ok(items)
    }

    /// The events of job writes, for the same transaction.
    pub(super) fn job_event_puts(&self, jobs: &[Job], at: DateTime<Utc>) -> Result<Vec<TransactWriteItem>> {
        self.event_puts(jobs.iter().flat_map(|j| crate::domain::events::job_changed(j, at)).collect())
    }
}

#[async_trait]
impl crate::ports::EventStore for DynamoStore {
    async fn events(&self, owner: &UserId, filter: &EventFilter, page: &PageRequest) -> Result<Page<Event>> {
        let query = self.client.query().table_name(&self.table).expression_attribute_values(":pk", s(events_pk(owner)));
        // Reading forward from a position (`after`, a long poll, the next page) reads only what
        // lies past it: a waiting request looks again every 50 ms and finds little or nothing.
        let query = match (&page.position, page.scan_descending()) {
            (Some(position), false) => query
                .key_condition_expression("PK = :pk AND SK > :after")
                .expression_attribute_values(":after", s(format!("EVENT#{position}"))),
            _ => query
                .key_condition_expression("PK = :pk AND begins_with(SK, :event)")
                .expression_attribute_values(":event", s("EVENT#")),
        }
        .consistent_read(true);
        let items: Vec<Event> = self.query_all(query).await?;
        let now = Utc::now();
        // TTL deletes within days, not at once: what has expired is not shown.
        let listed =
            items.into_iter().filter(|e| e.expires_at() > now && filter.admits(e)).map(|e| (e.id.clone(), e)).collect();
        Ok(Page::from_sorted(listed, page))
    }

    async fn append_event(&self, draft: EventDraft) -> Result<Event> {
        let event = Event::of(next_id(draft.at), draft);
        self.client.put_item().table_name(&self.table).set_item(Some(event_item(&event)?)).send().await.map_err(sdk)?;
        Ok(event)
    }

    async fn forget_events_before(&self, _before: DateTime<Utc>) -> Result<usize> {
        // The table's TTL forgets them.
        Ok(0)
    }

    /// Ids come from each process's clock and are committed by each process's transactions: an
    /// id may reach the table after a later one from another process, by the clocks' skew plus a
    /// transaction's retries (well under this).
    fn reorder_window(&self) -> std::time::Duration {
        std::time::Duration::from_secs(30)
    }
}

//! The spend counters and per-user caps (SPEC §8.7) in two tables. `apply` runs inside the write
//! transactions that start and end paid jobs, so a counter changes exactly when its job does.

use async_trait::async_trait;
use redb::{ReadableTable, WriteTransaction};

use super::store::{EmbeddedStore, Table, decode, encode, internal};
use crate::domain::error::Result;
use crate::domain::ids::UserId;
use crate::domain::usage::{Counters, UsageChange, UsageKey};

/// `story/<id>` or `month/<owner>/<YYYY-MM>` → `Counters`.
pub(super) const USAGE: Table = redb::TableDefinition::new("usage");
/// owner → the cap an admin set (`null`: no cap).
pub(super) const USER_CAPS: Table = redb::TableDefinition::new("user_caps");

fn key_of(key: &UsageKey) -> String {
    match key {
        UsageKey::Story(story) => format!("story/{story}"),
        UsageKey::Monthly(owner, month) => format!("month/{owner}/{month}"),
    }
}

/// Applies one write's changes; refuses the whole write (the caller's transaction aborts) when a
/// reservation does not fit its limit.
pub(super) fn apply(txn: &WriteTransaction, changes: &[UsageChange]) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut table = txn.open_table(USAGE).map_err(internal)?;
    for change in changes {
        let k = key_of(&change.key);
        let mut counters: Counters = match table.get(k.as_str()).map_err(internal)? {
            Some(bytes) => decode(bytes.value())?,
            None => Counters::default(),
        };
        if let Some(check) = &change.check
            && !check.admits(&counters)
        {
            return Err(check.refusal(change.key.limit_kind(), &counters));
        }
        counters.committed_micros += change.committed_micros;
        counters.spent_micros += change.spent_micros;
        table.insert(k.as_str(), encode(&counters)?.as_slice()).map_err(internal)?;
    }
    Ok(())
}

#[async_trait]
impl crate::ports::UsageStore for EmbeddedStore {
    async fn counters(&self, key: &UsageKey) -> Result<Counters> {
        let k = key_of(key);
        self.read(move |txn| match txn.open_table(USAGE).map_err(internal)?.get(k.as_str()).map_err(internal)? {
            Some(bytes) => decode(bytes.value()),
            None => Ok(Counters::default()),
        })
        .await
    }

    async fn user_cap(&self, owner: &UserId) -> Result<Option<Option<f64>>> {
        let owner = owner.clone();
        self.read(move |txn| {
            match txn.open_table(USER_CAPS).map_err(internal)?.get(owner.as_str()).map_err(internal)? {
                Some(bytes) => Ok(Some(decode(bytes.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn set_user_cap(&self, owner: &UserId, cap_usd: Option<f64>) -> Result<()> {
        let owner = owner.clone();
        self.write(move |txn| {
            txn.open_table(USER_CAPS)
                .map_err(internal)?
                .insert(owner.as_str(), encode(&cap_usd)?.as_slice())
                .map_err(internal)?;
            Ok(())
        })
        .await
    }
}

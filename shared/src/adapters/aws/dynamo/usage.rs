//! The spend counters and per-user caps (SPEC §8.7). A counter is an item changed by `ADD` inside
//! the transactions that start and end paid jobs; a reservation's Update carries the limit as its
//! condition (`committed_micros <= limit − reserving`), so concurrent starts are serialised by
//! DynamoDB and never overshoot: of two that would each fit alone but not together, one fails.

use super::*;
use crate::domain::usage::{Counters, UsageChange, UsageKey};

fn usage_key(counter: &UsageKey) -> Item {
    match counter {
        UsageKey::Story(story) => key(format!("USAGE#STORY#{story}"), "USAGE".into()),
        UsageKey::Monthly(owner, month) => key(format!("USAGE#{owner}"), format!("MONTH#{month}")),
    }
}

fn cap_key(owner: &UserId) -> Item {
    key(format!("USAGE#{owner}"), "CAP".into())
}

fn signed(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl DynamoStore {
    /// The Update of one counter in a transaction.
    pub(super) fn usage_update(&self, change: &UsageChange) -> Result<TransactWriteItem> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(usage_key(&change.key)))
            .update_expression("ADD committed_micros :committed, spent_micros :spent")
            .expression_attribute_values(":committed", signed(change.committed_micros))
            .expression_attribute_values(":spent", signed(change.spent_micros));
        if let Some(check) = &change.check {
            update = update
                .condition_expression("attribute_not_exists(committed_micros) OR committed_micros <= :most")
                .expression_attribute_values(":most", signed(check.max_committed_before()));
        }
        Ok(TransactWriteItem::builder().update(update.build().map_err(internal)?).build())
    }

    /// Refuses before writing anything when a reservation cannot fit even an unused limit (the
    /// condition above would let a missing counter through).
    pub(super) async fn refuse_impossible(&self, changes: &[UsageChange]) -> Result<()> {
        for change in changes {
            if let Some(check) = &change.check
                && check.max_committed_before() < 0
            {
                let current = self.read_counters(&change.key).await?;
                return Err(check.refusal(change.key.limit_kind(), &current));
            }
        }
        Ok(())
    }

    /// The refusal for the counter whose condition failed in a cancelled transaction whose last
    /// `changes.len()` items were the counters' Updates; `None` when none of them failed.
    pub(super) async fn budget_refusal(
        &self,
        reasons: &[aws_sdk_dynamodb::types::CancellationReason],
        items: usize,
        changes: &[UsageChange],
    ) -> Result<Option<Error>> {
        let first = items - changes.len();
        for (i, change) in changes.iter().enumerate() {
            let failed = reasons.get(first + i).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
            if let (true, Some(check)) = (failed, &change.check) {
                let current = self.read_counters(&change.key).await?;
                return Ok(Some(check.refusal(change.key.limit_kind(), &current)));
            }
        }
        Ok(None)
    }

    async fn read_counters(&self, key: &UsageKey) -> Result<Counters> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(usage_key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk)?;
        let item = out.item.unwrap_or_default();
        let signed_of = |name: &str| -> i64 {
            item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        Ok(Counters { committed_micros: signed_of("committed_micros"), spent_micros: signed_of("spent_micros") })
    }
}

#[async_trait]
impl crate::ports::UsageStore for DynamoStore {
    async fn counters(&self, key: &UsageKey) -> Result<Counters> {
        self.read_counters(key).await
    }

    async fn user_cap(&self, owner: &UserId) -> Result<Option<Option<f64>>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(cap_key(owner)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk)?;
        Ok(out.item.map(|item| item.get("cap_usd").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())))
    }

    async fn set_user_cap(&self, owner: &UserId, cap_usd: Option<f64>) -> Result<()> {
        let mut item = cap_key(owner);
        if let Some(cap) = cap_usd {
            item.insert("cap_usd".into(), AttributeValue::N(cap.to_string()));
        }
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(sdk)?;
        Ok(())
    }
}

//! Webhooks on DynamoDB (SPEC §8.6). One partition per endpoint: the endpoint (`WEBHOOK`), its
//! deliveries (`DELIVERY#<event id>`) and its log (`ATTEMPT#<attempt id>`). GSI1 lists an owner's
//! endpoints (`WEBHOOKS#<owner>`); the sparse GSI4 key `ACTIVE_WEBHOOKS` lists the active ones
//! for the fan-out. Every write of an endpoint or a delivery is conditioned on the version read,
//! and an attempt's outcome is one transaction.

use super::*;
use crate::domain::ids::WebhookId;
use crate::domain::webhooks::{AttemptOutcome, DeliveryAttempt, DeliveryKey, DeliveryState, Webhook, WebhookDelivery};

/// GSI4 key of an active endpoint.
const ACTIVE_WEBHOOKS: &str = "ACTIVE_WEBHOOKS";

fn webhook_pk(id: &WebhookId) -> String {
    format!("WEBHOOK#{id}")
}

fn webhook_item(webhook: &Webhook) -> Result<Item> {
    let mut item = to_item(webhook)?;
    item.insert("PK".into(), s(webhook_pk(&webhook.id)));
    item.insert("SK".into(), s("WEBHOOK"));
    item.insert("GSI1PK".into(), s(format!("WEBHOOKS#{}", webhook.owner)));
    item.insert("GSI1SK".into(), s(format!("WEBHOOK#{}", webhook.id)));
    if webhook.is_active {
        item.insert("GSI4PK".into(), s(ACTIVE_WEBHOOKS));
        item.insert("GSI4SK".into(), s(webhook.id.to_string()));
    }
    Ok(item)
}

/// When a delivery or a log entry made at `at` may go: with the events they deliver (the table's
/// TTL removes them, as it does the events).
fn expiry(at: DateTime<Utc>) -> AttributeValue {
    let days = chrono::Duration::days(crate::domain::events::EVENT_RETENTION_DAYS);
    AttributeValue::N((at + days).timestamp().to_string())
}

fn delivery_item(delivery: &WebhookDelivery) -> Result<Item> {
    let mut item = to_item(delivery)?;
    item.insert("PK".into(), s(webhook_pk(&delivery.webhook)));
    item.insert("SK".into(), s(format!("DELIVERY#{}", delivery.event.id)));
    item.insert("expires_at".into(), expiry(delivery.created_at));
    Ok(item)
}

fn delivery_key(k: &DeliveryKey) -> Item {
    key(webhook_pk(&k.webhook), format!("DELIVERY#{}", k.event))
}

fn attempt_item(attempt: &DeliveryAttempt) -> Result<Item> {
    let mut item = to_item(attempt)?;
    item.insert("PK".into(), s(webhook_pk(&attempt.webhook)));
    item.insert("SK".into(), s(format!("ATTEMPT#{}", attempt.id)));
    item.insert("expires_at".into(), expiry(attempt.created_at));
    Ok(item)
}

fn is_condition_failure<E: aws_smithy_types::error::metadata::ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException")
}

impl DynamoStore {
    async fn get_plain<T: DeserializeOwned>(&self, k: Item) -> Result<Option<T>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(k))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk)?;
        out.item.map(from_item).transpose()
    }

    /// Puts `item` if the stored one is at `version` (else `VersionMismatch`).
    async fn put_versioned(&self, item: Item, version: u64) -> Result<()> {
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_exists(PK) AND version = :v")
            .expression_attribute_values(":v", n(version))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(Error::VersionMismatch { current_version: 0 }),
            Err(e) => Err(sdk(e)),
        }
    }

    fn put_versioned_in_transaction(&self, item: Item, version: u64) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_exists(PK) AND version = :v")
            .expression_attribute_values(":v", n(version))
            .build()
            .map_err(internal)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

#[async_trait]
impl crate::ports::WebhookStore for DynamoStore {
    async fn create_webhook(&self, webhook: &Webhook, max: usize) -> Result<()> {
        // The limit is a guard against runaway clients, not an invariant: counted, then written.
        if self.owner_webhooks(&webhook.owner).await?.len() >= max {
            return Err(Error::Conflict {
                detail: format!("A user may have at most {max} webhook endpoints."),
                current_status: None,
            });
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(webhook_item(webhook)?))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await
            .map_err(sdk)?;
        Ok(())
    }

    async fn webhook(&self, owner: &UserId, id: &WebhookId) -> Result<Webhook> {
        match self.get_plain::<Webhook>(key(webhook_pk(id), "WEBHOOK".into())).await? {
            Some(webhook) if &webhook.owner == owner => Ok(webhook),
            _ => Err(Error::NotFound),
        }
    }

    async fn owner_webhooks(&self, owner: &UserId) -> Result<Vec<Webhook>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("GSI1PK = :pk AND begins_with(GSI1SK, :w)")
            .expression_attribute_values(":pk", s(format!("WEBHOOKS#{owner}")))
            .expression_attribute_values(":w", s("WEBHOOK#"));
        self.query_all(query).await
    }

    async fn active_webhooks(&self) -> Result<Vec<Webhook>> {
        self.under_way(ACTIVE_WEBHOOKS).await
    }

    async fn save_webhook(&self, webhook: &Webhook, expected_version: u64) -> Result<()> {
        self.put_versioned(webhook_item(webhook)?, expected_version).await
    }

    async fn delete_webhook(&self, owner: &UserId, id: &WebhookId) -> Result<()> {
        self.webhook(owner, id).await?;
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", s(webhook_pk(id)))
            .projection_expression("PK, SK");
        let keys: Vec<HashMap<String, String>> = self.query_all(query).await?;
        // The endpoint first: once it is gone nothing is delivered, whatever a crash leaves below.
        let mut ordered: Vec<String> = keys.iter().filter_map(|k| k.get("SK").cloned()).collect();
        ordered.sort_by_key(|sk| sk != "WEBHOOK");
        for sk in ordered {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(webhook_pk(id), sk)))
                .send()
                .await
                .map_err(sdk)?;
        }
        Ok(())
    }

    async fn add_deliveries(&self, deliveries: Vec<WebhookDelivery>) -> Result<Vec<WebhookDelivery>> {
        let mut waiting = Vec::new();
        let mut by_webhook: HashMap<WebhookId, Vec<WebhookDelivery>> = HashMap::new();
        for d in deliveries {
            by_webhook.entry(d.webhook.clone()).or_default().push(d);
        }
        for (webhook, deliveries) in by_webhook {
            // One Query for what already exists in the events' range: a fan-out that looks back
            // over events it has handled reads them, rather than trying a Put for each.
            let (Some(first), Some(last)) =
                (deliveries.iter().map(|d| &d.event.id).min(), deliveries.iter().map(|d| &d.event.id).max())
            else {
                continue;
            };
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND SK BETWEEN :first AND :last")
                .expression_attribute_values(":pk", s(webhook_pk(&webhook)))
                .expression_attribute_values(":first", s(format!("DELIVERY#{first}")))
                .expression_attribute_values(":last", s(format!("DELIVERY#{last}")))
                .consistent_read(true);
            let existing: HashMap<String, WebhookDelivery> =
                self.query_all::<WebhookDelivery>(query).await?.into_iter().map(|d| (d.event.id.clone(), d)).collect();
            for d in deliveries {
                if let Some(stored) = existing.get(&d.event.id) {
                    if stored.state == DeliveryState::Pending && stored.attempts == 0 {
                        waiting.push(stored.clone());
                    }
                    continue;
                }
                let added = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(delivery_item(&d)?))
                    .condition_expression("attribute_not_exists(PK)")
                    .send()
                    .await;
                match added {
                    Ok(_) => waiting.push(d),
                    // Added by a fan-out running beside this one: theirs to send.
                    Err(e) if is_condition_failure(&e) => {}
                    Err(e) => return Err(sdk(e)),
                }
            }
        }
        Ok(waiting)
    }

    async fn delivery(&self, k: &DeliveryKey) -> Result<WebhookDelivery> {
        self.get_plain(delivery_key(k)).await?.ok_or(Error::NotFound)
    }

    async fn save_delivery(&self, delivery: &WebhookDelivery, expected_version: u64) -> Result<()> {
        self.put_versioned(delivery_item(delivery)?, expected_version).await
    }

    async fn finish_attempt(&self, outcome: AttemptOutcome, webhook_version: u64) -> Result<()> {
        let claimed_version = outcome.delivery.version - 1;
        let mut items = vec![self.put_versioned_in_transaction(delivery_item(&outcome.delivery)?, claimed_version)?];
        if let Some(webhook) = &outcome.webhook {
            items.push(self.put_versioned_in_transaction(webhook_item(webhook)?, webhook_version)?);
        }
        items.push(self.put_new(attempt_item(&outcome.attempt)?)?);
        items.extend(self.event_puts(outcome.event.into_iter().collect())?);
        match self.transact(items).await? {
            Written::Done => Ok(()),
            Written::Raced(_) => Err(Error::VersionMismatch { current_version: 0 }),
        }
    }

    async fn attempts(&self, webhook: &WebhookId, page: &PageRequest) -> Result<Page<DeliveryAttempt>> {
        let descending = page.scan_descending();
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", s(webhook_pk(webhook)))
            .scan_index_forward(!descending)
            .consistent_read(true);
        let query = match &page.position {
            Some(position) => {
                let bound = if descending { "SK < :at AND SK > :first" } else { "SK > :at AND SK < :last" };
                query
                    .key_condition_expression(format!("PK = :pk AND {bound}"))
                    .expression_attribute_values(":at", s(format!("ATTEMPT#{position}")))
                    .expression_attribute_values(
                        if descending { ":first" } else { ":last" },
                        s(if descending { "ATTEMPT#" } else { "ATTEMPT$" }),
                    )
            }
            None => query
                .key_condition_expression("PK = :pk AND begins_with(SK, :a)")
                .expression_attribute_values(":a", s("ATTEMPT#")),
        };
        // One page and one more: whether another exists.
        let mut found: Vec<DeliveryAttempt> = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = query
                .clone()
                .limit(i32::try_from(page.limit + 1).unwrap_or(101))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk)?;
            for item in out.items.unwrap_or_default() {
                found.push(from_item(item)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && found.len() <= page.limit => start = Some(k),
                _ => break,
            }
        }
        let scanned = found.into_iter().map(|a| (a.id.clone(), a)).collect();
        Ok(Page::from_scan(scanned, page))
    }

    async fn attempt(&self, webhook: &WebhookId, id: &str) -> Result<DeliveryAttempt> {
        self.get_plain(key(webhook_pk(webhook), format!("ATTEMPT#{id}"))).await?.ok_or(Error::NotFound)
    }
}

//! Provider configurations written by admins, conditioned on the version read.

use super::*;

/// Provider configurations share one partition, so one Query lists them all.
const PROVIDERS_PK: &str = "PROVIDERS";

fn provider_item(config: &crate::domain::provider::AiProviderConfig) -> Result<Item> {
    let mut item = to_item(config)?;
    item.insert("PK".into(), s(PROVIDERS_PK));
    item.insert("SK".into(), s(format!("PROVIDER#{}", config.provider)));
    Ok(item)
}

#[async_trait]
impl crate::ports::ProviderConfigStore for DynamoStore {
    async fn stored_provider_configs(&self) -> Result<Vec<crate::domain::provider::AiProviderConfig>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", s(PROVIDERS_PK))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk)?;
        out.items.unwrap_or_default().into_iter().map(from_item).collect()
    }

    async fn put_provider_config(
        &self,
        config: &crate::domain::provider::AiProviderConfig,
        expected: u64,
    ) -> Result<()> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(provider_item(config)?))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        put = if expected == 0 {
            put.condition_expression("attribute_not_exists(PK)")
        } else {
            put.condition_expression("version = :expected").expression_attribute_values(":expected", n(expected))
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(failed)) => {
                    let current = failed.item().map_or(0, |item| number_of(item, "version"));
                    Err(Error::VersionMismatch { current_version: current })
                }
                _ => Err(sdk(e)),
            },
        }
    }
}

/// A provider's submissions of the last minute, one item per provider.
fn window_key(provider: crate::domain::values::AiProvider) -> Item {
    key(format!("SUBMITS#{provider}"), "WINDOW".into())
}

#[async_trait]
impl crate::ports::SubmitBudget for DynamoStore {
    async fn take_submission(
        &self,
        provider: crate::domain::values::AiProvider,
        per_minute: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        // Read, decide, write conditioned on the version read: of concurrent takers one wins each
        // round, the others decide again on what it wrote.
        for attempt in 0..ATTEMPTS {
            back_off(attempt).await;
            let found = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(window_key(provider)))
                .consistent_read(true)
                .send()
                .await
                .map_err(sdk)?;
            let window: crate::domain::provider::SubmitWindow = match found.item {
                Some(item) => from_item(item)?,
                None => crate::domain::provider::SubmitWindow::default(),
            };
            let next = match window.take(per_minute, now) {
                Ok(next) => next,
                Err(free_at) => return Ok(Some(free_at)),
            };
            let mut item = to_item(&next)?;
            item.extend(window_key(provider));
            let mut put = self.client.put_item().table_name(&self.table).set_item(Some(item));
            put = if window.version == 0 {
                put.condition_expression("attribute_not_exists(PK)")
            } else {
                put.condition_expression("version = :expected")
                    .expression_attribute_values(":expected", n(window.version))
            };
            match put.send().await {
                Ok(_) => return Ok(None),
                Err(e)
                    if matches!(
                        e.as_service_error(),
                        Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_))
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(sdk(e)),
            }
        }
        Err(busy())
    }
}

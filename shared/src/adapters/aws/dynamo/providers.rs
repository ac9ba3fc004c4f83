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

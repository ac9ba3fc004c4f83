//! `Idempotency-Key` records: a claim is one conditional put; the stored answer replays.

use super::*;

impl DynamoStore {
    /// Takes over a claim last renewed at `claimed_at` whose request never answered.
    async fn take_over(&self, pk: &str, claimed_at: u64, old: &Item, now: DateTime<Utc>) -> Result<IdempotencyClaim> {
        let first_ms = match number_of(old, "first_claimed_at") {
            0 => claimed_at.saturating_mul(1000),
            ms => ms,
        };
        let first_claimed_at = DateTime::<Utc>::from_timestamp_millis(i64::try_from(first_ms).unwrap_or(0))
            .ok_or_else(|| Error::internal("idempotency record with an impossible first claim time"))?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_owned(), "IDEM".into())))
            .update_expression("SET claimed_at = :now, first_claimed_at = :first")
            .condition_expression("claimed_at = :was AND attribute_not_exists(#response)")
            .expression_attribute_names("#response", "response")
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .expression_attribute_values(":first", AttributeValue::N(first_ms.to_string()))
            .expression_attribute_values(":was", AttributeValue::N(claimed_at.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(IdempotencyClaim::Fresh { first_claimed_at }),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                // Another retry took it over first (or it was answered meanwhile).
                Ok(IdempotencyClaim::InProgress)
            }
            Err(e) => Err(sdk(e)),
        }
    }
}

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn claim(
        &self,
        owner: &UserId,
        key_text: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<IdempotencyClaim> {
        let pk = format!("IDEM#{owner}#{key_text}");
        let expired = (now - ChronoDuration::hours(IDEMPOTENCY_TTL_HOURS)).timestamp();
        let abandoned = (now - self.claim_lease).timestamp();
        let item = HashMap::from([
            ("PK".to_owned(), s(pk.clone())),
            ("SK".to_owned(), s("IDEM")),
            ("fingerprint".to_owned(), s(fingerprint)),
            ("claimed_at".to_owned(), AttributeValue::N(now.timestamp().to_string())),
            ("first_claimed_at".to_owned(), AttributeValue::N(now.timestamp_millis().to_string())),
            (
                "expires_at".to_owned(),
                AttributeValue::N((now + ChronoDuration::hours(IDEMPOTENCY_TTL_HOURS)).timestamp().to_string()),
            ),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK) OR claimed_at < :expired")
            .expression_attribute_values(":expired", AttributeValue::N(expired.to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(IdempotencyClaim::Fresh { first_claimed_at: now }),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => {
                    let old = c.item().cloned().unwrap_or_default();
                    if text_of(&old, "fingerprint") != Some(fingerprint) {
                        return Ok(IdempotencyClaim::Mismatch);
                    }
                    if let Some(stored) = text_of(&old, "response") {
                        return Ok(IdempotencyClaim::Replay(serde_json::from_str(stored).map_err(internal)?));
                    }
                    let claimed_at = number_of(&old, "claimed_at");
                    if claimed_at as i64 >= abandoned {
                        return Ok(IdempotencyClaim::InProgress);
                    }
                    // The holder died before answering: take its claim over (one conditional
                    // write: of several retries one wins), keeping the first claim's time.
                    self.take_over(&pk, claimed_at, &old, now).await
                }
                _ => Err(sdk(e)),
            },
        }
    }

    async fn complete(
        &self,
        owner: &UserId,
        key_text: &str,
        response: &StoredResponse,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let stored = serde_json::to_string(response).map_err(internal)?;
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("IDEM#{owner}#{key_text}"), "IDEM".into())))
            .update_expression("SET #response = :r, claimed_at = :now, expires_at = :ttl")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_names("#response", "response")
            .expression_attribute_values(":r", s(stored))
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .expression_attribute_values(
                ":ttl",
                AttributeValue::N((now + ChronoDuration::hours(IDEMPOTENCY_TTL_HOURS)).timestamp().to_string()),
            )
            .send()
            .await
            .map(|_| ())
            .or_else(|e| match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(_)) => {
                    Ok(())
                }
                _ => Err(sdk(e)),
            })
    }

    async fn release(&self, owner: &UserId, key_text: &str) -> Result<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("IDEM#{owner}#{key_text}"), "IDEM".into())))
            .send()
            .await
            .map(|_| ())
            .map_err(sdk)
    }
}

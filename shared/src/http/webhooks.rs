//! The body of `POST webhooks/` and `PATCH webhooks/{id}/` (SPEC §8.6), read with DRF's messages.

use crate::domain::error::FieldErrors;
use crate::domain::events::EventType;
use crate::domain::webhooks::MAX_DESCRIPTION_LENGTH;
use crate::services::WebhookPatch;

/// Reads an endpoint's fields from a request body (`url`, `event_types`, `description`,
/// `is_active`), adding DRF-style errors; `creating` requires `url`.
pub fn read_webhook_fields(
    body: &serde_json::Map<String, serde_json::Value>,
    creating: bool,
    errors: &mut FieldErrors,
) -> WebhookPatch {
    let mut patch = WebhookPatch::default();
    // Unknown and read-only fields are ignored, as DRF serializers do.
    match body.get("url") {
        Some(serde_json::Value::String(url)) if !url.trim().is_empty() => patch.url = Some(url.trim().to_owned()),
        Some(serde_json::Value::String(_)) => errors.add("url", "This field may not be blank."),
        Some(serde_json::Value::Null) => errors.add("url", "This field may not be null."),
        Some(_) => errors.add("url", "Not a valid string."),
        None if creating => errors.add("url", "This field is required."),
        None => {}
    }
    match body.get("event_types") {
        Some(serde_json::Value::Array(items)) => {
            let mut types = Vec::new();
            for item in items {
                match item.as_str().map(EventType::parse) {
                    Some(Ok(t)) if !types.contains(&t) => types.push(t),
                    Some(Ok(_)) => {}
                    Some(Err(m)) => errors.add("event_types", m),
                    None => errors.add("event_types", "Each item must be an event type."),
                }
            }
            patch.event_types = Some(types);
        }
        Some(serde_json::Value::Null) => errors.add("event_types", "This field may not be null."),
        Some(_) => errors.add("event_types", "Expected a list of items."),
        None => {}
    }
    match body.get("description") {
        Some(serde_json::Value::String(d)) if d.chars().count() <= MAX_DESCRIPTION_LENGTH => {
            patch.description = Some(d.clone());
        }
        Some(serde_json::Value::String(_)) => errors
            .add("description", format!("Ensure this field has no more than {MAX_DESCRIPTION_LENGTH} characters.")),
        Some(serde_json::Value::Null) => errors.add("description", "This field may not be null."),
        Some(_) => errors.add("description", "Not a valid string."),
        None => {}
    }
    match body.get("is_active") {
        Some(serde_json::Value::Bool(b)) => patch.is_active = Some(*b),
        Some(_) => errors.add("is_active", "Must be a valid boolean."),
        None => {}
    }
    patch
}

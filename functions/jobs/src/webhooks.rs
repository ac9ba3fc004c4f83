//! The webhook routes (SPEC §8.6): the caller's endpoints, their delivery log, redelivery and
//! ping. Everything is the caller's own: anyone else's endpoint is 404.

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use shared::domain::ids::WebhookId;
use shared::http::error::ApiResult;
use shared::http::json::JsonObject;
use shared::http::webhooks::read_webhook_fields;
use shared::http::{AppState, Caller, Listing, QueryParams, views};
use shared::services::WebhookDraft;
use shared::{Error, FieldErrors};

fn webhook_id(raw: &str) -> Result<WebhookId, Error> {
    WebhookId::parse(raw).ok_or(Error::NotFound)
}

/// `GET webhooks/`: the caller's endpoints, oldest first (no secrets).
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let query = QueryParams::from_uri(&uri);
    let orderings = [("created_at", false)];
    let (listing, _) =
        Listing::parse(&query, &state.cursors, &caller.user, "webhooks".into(), &orderings, FieldErrors::new())?;
    let page = state.webhooks.list(&caller.user, &listing.page).await?;
    Ok(listing.respond(page, &state.cursors, &uri, &headers, |w| views::webhook(&w, false)))
}

/// `POST webhooks/` `{url, event_types?, description?}`: 201 with the endpoint and, this once,
/// its secret.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let mut errors = FieldErrors::new();
    let fields = read_webhook_fields(&body, true, &mut errors);
    errors.into_result()?;
    let draft = WebhookDraft {
        url: fields.url.unwrap_or_default(),
        event_types: fields.event_types.unwrap_or_default(),
        description: fields.description.unwrap_or_default(),
    };
    let webhook = state.webhooks.create(&caller.user, draft).await?;
    Ok((StatusCode::CREATED, axum::Json(views::webhook(&webhook, true))).into_response())
}

/// `GET webhooks/{id}/`.
pub async fn retrieve(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let webhook = state.webhooks.get(&caller.user, &webhook_id(&id)?).await?;
    Ok(axum::Json(views::webhook(&webhook, false)).into_response())
}

/// `PATCH webhooks/{id}/`: `url`, `event_types`, `description`, `is_active` (switching it on
/// again clears what disabled it).
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let id = webhook_id(&id)?;
    let mut errors = FieldErrors::new();
    let patch = read_webhook_fields(&body, false, &mut errors);
    // A malformed change to someone else's endpoint is still 404, not a list of field errors.
    state.webhooks.get(&caller.user, &id).await?;
    errors.into_result()?;
    let webhook = state.webhooks.update(&caller.user, &id, patch).await?;
    Ok(axum::Json(views::webhook(&webhook, false)).into_response())
}

/// `DELETE webhooks/{id}/`: 204; its deliveries stop.
pub async fn destroy(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    state.webhooks.delete(&caller.user, &webhook_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET webhooks/{id}/deliveries/`: the delivery log, newest first.
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = webhook_id(&id)?;
    let query = QueryParams::from_uri(&uri);
    let orderings = [("-created_at", true), ("created_at", false)];
    let name = format!("webhook-deliveries|{id}");
    let (listing, _) = Listing::parse(&query, &state.cursors, &caller.user, name, &orderings, FieldErrors::new())?;
    let page = state.webhooks.log(&caller.user, &id, &listing.page).await?;
    Ok(listing.respond(page, &state.cursors, &uri, &headers, |a| views::delivery_attempt(&a)))
}

/// `POST webhooks/{id}/deliveries/{delivery_id}/redeliver/`: 202; the logged attempt's event is
/// sent again with the same `webhook-id`.
pub async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, delivery)): Path<(String, String)>,
    JsonObject(_): JsonObject,
) -> ApiResult<Response> {
    let id = webhook_id(&id)?;
    // Log entry ids are ULIDs, as every id the server issues.
    if delivery.len() != 26 || !delivery.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) {
        return Err(Error::NotFound.into());
    }
    let queued = state.webhooks.redeliver(&caller.user, &id, &delivery).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(views::webhook_delivery(&queued))).into_response())
}

/// `POST webhooks/{id}/ping/`: 202; a `webhook.ping` event to this endpoint only.
pub async fn ping(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonObject(_): JsonObject,
) -> ApiResult<Response> {
    let queued = state.webhooks.ping(&caller.user, &webhook_id(&id)?).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(views::webhook_delivery(&queued))).into_response())
}

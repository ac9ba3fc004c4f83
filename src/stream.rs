//! `GET /api/ai-video/events/stream/` (SPEC §8.5; `aivideo serve` only — API Gateway HTTP APIs do
//! not stream): the caller's events as server-sent events, `id:` the event id, resuming after
//! `Last-Event-ID`. It reads the same feed as `events/`, so it shows exactly what that lists.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use shared::domain::pagination::PageRequest;
use shared::http::{AppState, Caller, views};
use shared::ports::EventFilter;

/// How often the stream looks for new events.
const STEP: Duration = Duration::from_millis(100);

/// The route's path.
pub const PATH: &str = "/events/stream/";

/// A channel's receiving end as a stream.
struct Received(tokio::sync::mpsc::Receiver<Result<SseEvent, std::convert::Infallible>>);

impl futures_core::Stream for Received {
    type Item = Result<SseEvent, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// The stream: every event after `Last-Event-ID` (or all kept), then each new one as it is
/// written, until the client goes.
pub async fn stream(State(state): State<AppState>, caller: Caller, headers: HeaderMap) -> Response {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|id| id.len() == 26 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_ascii_uppercase);
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let mut position = resume;
        loop {
            let page = PageRequest { position: position.clone(), limit: 100, ..PageRequest::default() };
            let found = match state.events.events(&caller.user, &EventFilter::default(), &page).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "the event stream could not read the feed; it ends");
                    return;
                }
            };
            let more = found.next.is_some();
            for event in found.items {
                position = Some(event.id.clone());
                let sse = SseEvent::default().id(event.id.clone()).event(event.kind.as_str());
                let sse = match sse.json_data(views::event(&event)) {
                    Ok(sse) => sse,
                    Err(e) => {
                        tracing::warn!(error = %e, "an event could not be written to the stream");
                        continue;
                    }
                };
                if tx.send(Ok(sse)).await.is_err() {
                    return;
                }
            }
            if tx.is_closed() {
                return;
            }
            if !more {
                tokio::time::sleep(STEP).await;
            }
        }
    });
    Sse::new(Received(rx)).keep_alive(KeepAlive::default()).into_response()
}

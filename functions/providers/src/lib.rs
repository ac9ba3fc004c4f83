//! The Providers Lambda: which AI providers may render, with which model and at what price.
//! Every user lists the enabled providers with their prices; admins (`roles: ["admin"]`) see
//! all of them and create, change, disable and enable them.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use shared::domain::provider::{AiProviderConfig, PricePerSecond};
use shared::domain::values::AiProvider;
use shared::http::error::ApiResult;
use shared::http::etag::{IfMatch, with_etag};
use shared::http::json::{Fields, JsonObject, Parse, boolean, integer, number, string};
use shared::http::routing::{RouteSpec, Routes, get, post};
use shared::http::{AppState, Caller, api};
use shared::services::ProviderEdit;
use shared::{Error, FieldErrors};

/// The Providers routes as declared: each path and its handler per method. `routes()` is built
/// from this and `route_table()` exports it, so the two cannot differ.
fn declared() -> Routes {
    Routes::new()
        .at("/providers/", get(list).post(create))
        .at("/providers/{provider}/", get(retrieve).put(replace).patch(update))
        .at("/providers/{provider}/disable/", post(disable))
        .at("/providers/{provider}/enable/", post(enable))
}

/// The Providers routes.
pub fn routes() -> Router<AppState> {
    declared().into_router()
}

/// The Providers routes as data: each path (under `/api/ai-video`, with its trailing slash) and
/// the methods it answers — the table `routes()` is built from.
pub fn route_table() -> Vec<RouteSpec> {
    declared().into_table()
}

/// The Providers Lambda's whole router.
pub fn router(state: AppState) -> Router {
    api(routes(), state)
}

/// A configuration as a client sees it; the secret's name is for admins only.
fn view(config: &AiProviderConfig, admin: bool) -> Value {
    let mut v = json!({
        "provider": config.provider,
        "enabled": config.enabled,
        "model": config.model,
        "price_per_second_usd": config.price_per_second_usd,
        "max_clip_seconds": config.max_clip_seconds,
        "rate_limit_per_minute": config.rate_limit_per_minute,
        "default_parameters": config.default_parameters,
        "version": config.version,
    });
    if admin {
        v["secret_name"] = json!(config.secret_name);
    }
    v
}

fn admin_only(caller: &Caller) -> Result<(), Error> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(Error::Forbidden("Only admins may change provider configuration.".into()))
    }
}

fn provider_of(raw: &str) -> Result<AiProvider, Error> {
    AiProvider::parse(raw).map_err(|_| Error::NotFound)
}

/// `GET providers/`: enabled providers for everyone, all of them for admins.
async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let configs = state.providers.all().await?;
    let results: Vec<Value> =
        configs.iter().filter(|c| c.enabled || caller.is_admin).map(|c| view(c, caller.is_admin)).collect();
    Ok(axum::Json(json!({"count": results.len(), "next": null, "previous": null, "results": results})).into_response())
}

async fn retrieve(State(state): State<AppState>, caller: Caller, Path(p): Path<String>) -> ApiResult<Response> {
    let config = state.providers.get(provider_of(&p)?).await?;
    if !config.enabled && !caller.is_admin {
        return Err(Error::NotFound.into());
    }
    Ok(with_etag(config.version, axum::Json(view(&config, caller.is_admin))))
}

fn take<T>(f: &mut Fields, whole: bool, name: &str, parse: Parse<T>) -> Option<T> {
    if whole { f.required(name, parse) } else { f.optional(name, parse) }
}

fn model(v: &Value) -> Result<String, String> {
    let s = string(v)?.trim();
    if s.is_empty() || s.chars().count() > 200 || s.chars().any(char::is_control) {
        return Err("A model name of 1 to 200 characters is required.".into());
    }
    Ok(s.to_owned())
}

fn prices(v: &Value) -> Result<PricePerSecond, String> {
    let obj = v.as_object().ok_or("An object with low, medium and high prices is required.")?;
    if let Some(extra) = obj.keys().find(|k| !["low", "medium", "high"].contains(&k.as_str())) {
        return Err(format!("{extra}: Only low, medium and high prices exist."));
    }
    let price = |name: &str| -> Result<f64, String> {
        let p = obj.get(name).ok_or(format!("{name}: This field is required."))?;
        let p = number(p).map_err(|m| format!("{name}: {m}"))?;
        if !(0.0..=100.0).contains(&p) {
            return Err(format!("{name}: A price between 0 and 100 USD per second is required."));
        }
        Ok(p)
    };
    Ok(PricePerSecond { low: price("low")?, medium: price("medium")?, high: price("high")? })
}

fn whole_number(v: &Value, min: i64, max: i64) -> Result<u32, String> {
    let n = integer(v)?;
    if n < min || n > max {
        return Err(format!("Ensure this value is between {min} and {max}."));
    }
    u32::try_from(n).map_err(|_| "Out of range.".to_owned())
}

fn secret_name(v: &Value) -> Result<String, String> {
    let s = string(v)?.trim();
    let valid =
        !s.is_empty() && s.len() <= 512 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b));
    if valid { Ok(s.to_owned()) } else { Err("A secret name of letters, digits and /_+=.@- is required.".into()) }
}

fn parameters(v: &Value) -> Result<Map<String, Value>, String> {
    let obj = v.as_object().ok_or("An object is required.")?;
    if serde_json::to_vec(obj).map(|b| b.len()).unwrap_or(usize::MAX) > 16 * 1024 {
        return Err("At most 16 KiB of parameters.".into());
    }
    Ok(obj.clone())
}

/// Reads the writable fields; `whole` (POST, PUT) requires every one of them but the optional
/// `secret_name` (`local` has no key) and `default_parameters`.
fn edit_of(body: &Map<String, Value>, whole: bool) -> Result<ProviderEdit, Error> {
    let mut f = Fields::new(body);
    let edit = ProviderEdit {
        enabled: take(&mut f, whole, "enabled", boolean),
        model: take(&mut f, whole, "model", model),
        price_per_second_usd: take(&mut f, whole, "price_per_second_usd", prices),
        max_clip_seconds: take(&mut f, whole, "max_clip_seconds", |v| whole_number(v, 1, 600)),
        rate_limit_per_minute: take(&mut f, whole, "rate_limit_per_minute", |v| whole_number(v, 1, 100_000)),
        secret_name: f.optional("secret_name", secret_name),
        default_parameters: f.optional("default_parameters", parameters),
    };
    f.finish()?;
    Ok(edit)
}

/// `POST providers/` (admins): the first stored configuration of a provider; 409 if it has one.
async fn create(State(state): State<AppState>, caller: Caller, JsonObject(body): JsonObject) -> ApiResult<Response> {
    admin_only(&caller)?;
    let mut rest = body.clone();
    let provider = match rest.remove("provider") {
        Some(Value::String(p)) => AiProvider::parse(&p).map_err(|m| field_error("provider", m))?,
        Some(_) => return Err(field_error("provider", "A valid choice is required.".into()).into()),
        None => return Err(field_error("provider", "This field is required.".into()).into()),
    };
    let edit = edit_of(&rest, true)?;
    let seed = shared::domain::pricing::seed_provider_config(provider);
    let config = state.providers.create(edit.apply(&seed)).await?;
    Ok((StatusCode::CREATED, with_etag(config.version, axum::Json(view(&config, true)))).into_response())
}

fn field_error(name: &str, message: String) -> Error {
    let mut errors = FieldErrors::new();
    errors.add(name, message);
    Error::Validation(errors)
}

async fn write(state: &AppState, p: &str, edit: ProviderEdit, expected: Option<u64>) -> ApiResult<Response> {
    let config = state.providers.update(provider_of(p)?, &edit, expected).await?;
    Ok(with_etag(config.version, axum::Json(view(&config, true))))
}

/// PUT (`whole`) or PATCH of one provider, by an admin.
async fn edit(
    state: &AppState,
    caller: &Caller,
    p: &str,
    expected: Option<u64>,
    mut body: Map<String, Value>,
    whole: bool,
) -> ApiResult<Response> {
    admin_only(caller)?;
    check_provider_field(&mut body, p)?;
    write(state, p, edit_of(&body, whole)?, expected).await
}

/// `PUT providers/{provider}/` (admins): every writable field.
async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
    IfMatch(expected): IfMatch,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    edit(&state, &caller, &p, expected, body, true).await
}

/// `PATCH providers/{provider}/` (admins): the fields sent.
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
    IfMatch(expected): IfMatch,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    edit(&state, &caller, &p, expected, body, false).await
}

/// A `provider` in the body must be the one in the path (it cannot be renamed).
fn check_provider_field(body: &mut Map<String, Value>, path: &str) -> Result<(), Error> {
    match body.remove("provider") {
        Some(Value::String(p)) if p == path => Ok(()),
        Some(_) => Err(field_error("provider", "The provider cannot be changed.".into())),
        None => Ok(()),
    }
}

async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
    JsonObject(_): JsonObject,
) -> ApiResult<Response> {
    admin_only(&caller)?;
    write(&state, &p, ProviderEdit { enabled: Some(false), ..ProviderEdit::default() }, None).await
}

async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
    JsonObject(_): JsonObject,
) -> ApiResult<Response> {
    admin_only(&caller)?;
    write(&state, &p, ProviderEdit { enabled: Some(true), ..ProviderEdit::default() }, None).await
}

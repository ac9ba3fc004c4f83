//! `template.yaml` maps exactly the routes the code serves, each to the function that serves it:
//! the set of (function, method, path) in the template equals the set in the functions' route
//! tables (`<function>::route_table()`, the data each `routes()` is built from), and every one of
//! them answers through the real router (never the unknown-route 404 or a 405).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use shared::http::routing::RouteSpec;
use support::TestApp;

type Route = (String, String, String);

/// Each API function's route table: the data its `routes()` is built from (the worker has no
/// HTTP routes).
fn route_tables() -> [(&'static str, Vec<RouteSpec>); 5] {
    [
        ("stories", stories::route_table()),
        ("scenes", scenes::route_table()),
        ("prompts", prompts::route_table()),
        ("jobs", jobs::route_table()),
        ("providers", providers::route_table()),
    ]
}

/// The routes each function serves, from its route table; and the OpenAPI document, which the
/// shared router serves in every function and the template maps to the Stories function.
fn routes_in_code() -> BTreeSet<Route> {
    let mut routes = BTreeSet::new();
    for path in shared::http::public_paths() {
        routes.insert(("stories".to_owned(), "GET".to_owned(), path));
    }
    for (function, table) in route_tables() {
        for spec in table {
            for method in &spec.methods {
                routes.insert((function.to_owned(), method.to_string(), spec.full_path()));
            }
        }
    }
    routes
}

/// The HTTP API events of the template, by function.
fn routes_in_template() -> BTreeSet<Route> {
    let template = std::fs::read_to_string("template.yaml").unwrap();
    let mut routes = BTreeSet::new();
    let mut function = None;
    for line in template.lines() {
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix("Function:"))
            && !name.starts_with(' ')
        {
            function = Some(name.to_lowercase());
        }
        if let Some(props) = line.trim().strip_prefix("Properties: { ApiId: !Ref Api,") {
            let method = props.split("Method: ").nth(1).unwrap().split(',').next().unwrap().trim();
            let path = props.split("Path: \"").nth(1).unwrap().split('"').next().unwrap();
            routes.insert((function.clone().unwrap(), method.to_owned(), path.to_owned()));
        }
    }
    routes
}

#[test]
fn the_template_maps_every_route_of_the_code_to_its_function_and_nothing_else() {
    let code = routes_in_code();
    let template = routes_in_template();
    assert!(code.len() >= 47, "the route tables list every route: {}", code.len());
    let missing: Vec<_> = code.difference(&template).collect();
    let extra: Vec<_> = template.difference(&code).collect();
    assert!(missing.is_empty() && extra.is_empty(), "not in the template: {missing:#?}\nnot in the code: {extra:#?}");
}

/// Sends every (method, path) to the whole API. Without a token each must answer 401: only a
/// route the router matched (path and method) asks for one — the router's own 404 and 405 come
/// first — except the OpenAPI document and the API's root, which need none. As an admin, none may answer 405, and a
/// 404 must be about the (unknown) object the path names.
async fn assert_served(routes: impl IntoIterator<Item = (String, String)>) {
    let app = TestApp::new().await;
    let unknown_route = app.get("/api/ai-video/no-such-route/", "admin-ann").await;
    assert_eq!(unknown_route.status, StatusCode::NOT_FOUND);
    let anonymous = app.send(Method::GET, "/api/ai-video/no-such-route/", None, None, &[]).await;
    assert_eq!(anonymous.status, StatusCode::NOT_FOUND, "an unknown route is 404 even without a token");
    for (method, path) in routes {
        let concrete = path
            .replace("{id}", "01JCZ5T8Y9E6K3W7QX4M2N1P0R")
            .replace("{provider}", "local")
            .replace("{user}", "someone");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let body = (method != Method::GET && method != Method::DELETE).then_some("{}");
        let anonymous = app.send(method.clone(), &concrete, None, body, &[]).await;
        let public = shared::http::public_paths().contains(&path);
        let expected = if public { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
        assert_eq!(anonymous.status, expected, "{method} {concrete} without a token: {}", anonymous.body);
        let reply = app.send(method.clone(), &concrete, Some("admin-ann"), body, &[]).await;
        assert_ne!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {concrete}");
        if reply.status == StatusCode::NOT_FOUND {
            assert!(concrete.contains("01JCZ5T8Y9E6K3W7QX4M2N1P0R"), "{method} {concrete}: {}", reply.body);
        }
    }
}

#[tokio::test]
async fn every_route_in_the_template_answers_through_the_router() {
    assert_served(routes_in_template().into_iter().map(|(_, method, path)| (method, path))).await;
}

/// The exported tables are the routers' own: every row is routed by the whole API.
#[tokio::test]
async fn every_route_in_the_functions_tables_answers_through_the_router() {
    assert_served(routes_in_code().into_iter().map(|(_, method, path)| (method, path))).await;
}

#[test]
fn the_openapi_document_describes_every_route_of_the_code_and_nothing_else() {
    let code: BTreeSet<(String, String)> = routes_in_code()
        .into_iter()
        .filter(|(_, _, path)| !shared::http::public_paths().contains(path))
        .map(|(_, method, path)| (method, path))
        .collect();
    let documented: BTreeSet<(String, String)> = shared::http::openapi::documented_routes().into_iter().collect();
    assert_eq!(documented.len(), shared::http::openapi::documented_routes().len(), "an operation is documented twice");
    let missing: Vec<_> = code.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&code).collect();
    assert!(missing.is_empty() && extra.is_empty(), "not documented: {missing:#?}\ndocumented, not served: {extra:#?}");
}

/// API Gateway answers preflights on AWS, `aivideo serve` locally: both allow the same methods and
/// headers and expose the same ones (SPEC §8.4).
#[test]
fn the_templates_cors_configuration_is_the_servers() {
    use shared::http::cors;
    let template = std::fs::read_to_string("template.yaml").unwrap();
    for (key, list) in [
        ("AllowMethods", cors::ALLOW_METHODS),
        ("AllowHeaders", cors::ALLOW_HEADERS),
        ("ExposeHeaders", cors::EXPOSE_HEADERS),
    ] {
        let line = format!("{key}: [{list}]");
        assert_eq!(template.matches(&line).count(), 1, "template.yaml should say {line}");
    }
    assert!(template.contains(&format!("MaxAge: {}", cors::MAX_AGE_SECONDS)));
    assert!(template.contains("AllowOrigins: !Ref CorsAllowedOrigins"));
}

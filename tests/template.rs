//! `template.yaml` maps exactly the routes the code serves, each to the function that serves it:
//! the set of (function, method, path) in the template equals the set the functions' routers
//! declare, and every one of them answers through the real router (never the unknown-route 404
//! or a 405).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use support::TestApp;

type Route = (String, String, String);

/// The routes each function's `routes()` declares, read from its source: every
/// `route(r, "<path>", get(..).post(..))`; and the OpenAPI document, which the shared router
/// serves in every function and the template maps to the Stories function.
fn routes_in_code() -> BTreeSet<Route> {
    let mut routes = BTreeSet::new();
    routes.insert(("stories".to_owned(), "GET".to_owned(), shared::http::openapi_path()));
    for function in ["stories", "scenes", "prompts", "jobs", "providers"] {
        let source = std::fs::read_to_string(format!("functions/{function}/src/lib.rs")).unwrap();
        for chunk in source.split("route(r, \"").skip(1) {
            let (path, rest) = chunk.split_once('"').unwrap();
            let declaration = rest.split(['\n', ';']).next().unwrap();
            for method in ["get", "post", "put", "patch", "delete"] {
                let called = declaration.match_indices(&format!("{method}(")).any(|(at, _)| {
                    at == 0
                        || !declaration.as_bytes()[at - 1].is_ascii_alphanumeric()
                            && declaration.as_bytes()[at - 1] != b'_'
                });
                if called {
                    routes.insert((function.to_owned(), method.to_uppercase(), format!("/api/ai-video{path}")));
                }
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
    assert!(code.len() >= 47, "the parser found the routes: {}", code.len());
    let missing: Vec<_> = code.difference(&template).collect();
    let extra: Vec<_> = template.difference(&code).collect();
    assert!(missing.is_empty() && extra.is_empty(), "not in the template: {missing:#?}\nnot in the code: {extra:#?}");
}

#[tokio::test]
async fn every_route_in_the_template_answers_through_the_router() {
    let app = TestApp::new().await;
    let unknown_route = app.get("/api/ai-video/no-such-route/", "admin-ann").await;
    assert_eq!(unknown_route.status, StatusCode::NOT_FOUND);
    for (_, method, path) in routes_in_template() {
        let concrete = path.replace("{id}", "01JCZ5T8Y9E6K3W7QX4M2N1P0R").replace("{provider}", "local");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let body = (method != Method::GET && method != Method::DELETE).then_some("{}");
        let reply = app.send(method.clone(), &concrete, Some("admin-ann"), body, &[]).await;
        assert_ne!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {concrete}");
        // A known route on an unknown object is a 404 too, but never the router's own.
        if reply.status == StatusCode::NOT_FOUND {
            assert!(concrete.contains("01JCZ5T8Y9E6K3W7QX4M2N1P0R"), "{method} {concrete}: {}", reply.body);
        }
    }
}

#[test]
fn the_openapi_document_describes_every_route_of_the_code_and_nothing_else() {
    let code: BTreeSet<(String, String)> = routes_in_code()
        .into_iter()
        .filter(|(_, _, path)| *path != shared::http::openapi_path())
        .map(|(_, method, path)| (method, path))
        .collect();
    let documented: BTreeSet<(String, String)> = shared::http::openapi::documented_routes().into_iter().collect();
    assert_eq!(documented.len(), shared::http::openapi::documented_routes().len(), "an operation is documented twice");
    let missing: Vec<_> = code.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&code).collect();
    assert!(missing.is_empty() && extra.is_empty(), "not documented: {missing:#?}\ndocumented, not served: {extra:#?}");
}

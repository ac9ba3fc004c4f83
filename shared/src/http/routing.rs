//! Route tables. A function declares each of its routes once — the path and, for every method, its
//! handler — in a [`Routes`]; its router is built from that declaration, and the same declaration
//! is exported as data ([`RouteSpec`]: the path and its methods), so what the checks read (the
//! template's routes, the OpenAPI document's operations) is what the router serves.
//!
//! ```text
//! fn declared() -> Routes {
//!     Routes::new().at("/jobs/", get(list)).at("/jobs/{id}/retry/", post(retry))
//! }
//! pub fn routes() -> Router<AppState> { declared().into_router() }
//! pub fn route_table() -> Vec<RouteSpec> { declared().into_table() }
//! ```

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::MethodRouter;

use super::{API_PREFIX, AppState, route};

/// One route as data: its path relative to the API prefix, written with its trailing slash
/// (`/stories/{id}/`), and the methods it answers, in the order they were declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// The path under [`API_PREFIX`], with its trailing slash (it is also served without).
    pub path: &'static str,
    /// The methods with a handler.
    pub methods: Vec<Method>,
}

impl RouteSpec {
    /// The path as requested: under [`API_PREFIX`], with the trailing slash
    /// (`/api/ai-video/stories/{id}/`).
    pub fn full_path(&self) -> String {
        format!("{API_PREFIX}{}", self.path)
    }
}

/// The handlers of one path, by method, and the list of those methods: built with [`get`],
/// [`post`], [`put`], [`patch`], [`delete`] and the methods of the same names.
pub struct Endpoint<S = AppState> {
    methods: Vec<Method>,
    router: MethodRouter<S>,
}

macro_rules! methods {
    ($($name:ident => $method:ident),* $(,)?) => {
        $(
            #[doc = concat!("An endpoint that answers `", stringify!($method), "` with `handler`.")]
            pub fn $name<H, T, S>(handler: H) -> Endpoint<S>
            where
                H: Handler<T, S>,
                T: 'static,
                S: Clone + Send + Sync + 'static,
            {
                Endpoint { methods: vec![Method::$method], router: axum::routing::$name(handler) }
            }
        )*

        impl<S: Clone + Send + Sync + 'static> Endpoint<S> {
            $(
                #[doc = concat!("Also answers `", stringify!($method), "`, with `handler`.")]
                pub fn $name<H, T>(mut self, handler: H) -> Self
                where
                    H: Handler<T, S>,
                    T: 'static,
                {
                    self.methods.push(Method::$method);
                    self.router = self.router.$name(handler);
                    self
                }
            )*
        }
    };
}

methods!(get => GET, post => POST, put => PUT, patch => PATCH, delete => DELETE);

/// A function's routes: the router and its table, built together by [`Routes::at`] so they
/// cannot disagree.
pub struct Routes<S = AppState> {
    specs: Vec<RouteSpec>,
    router: Router<S>,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    /// No routes yet.
    pub fn new() -> Self {
        Self { specs: Vec::new(), router: Router::new() }
    }

    /// Serves `path` (under the API prefix, written with its trailing slash; served with and
    /// without it, see [`route`]) with `endpoint`, and lists it in the table.
    pub fn at(mut self, path: &'static str, endpoint: Endpoint<S>) -> Self {
        self.router = route(self.router, path, endpoint.router);
        self.specs.push(RouteSpec { path, methods: endpoint.methods });
        self
    }

    /// The table: every path declared, in order, with its methods.
    pub fn table(&self) -> &[RouteSpec] {
        &self.specs
    }

    /// The table, owned.
    pub fn into_table(self) -> Vec<RouteSpec> {
        self.specs
    }

    /// The router, to be wrapped by [`super::api`].
    pub fn into_router(self) -> Router<S> {
        self.router
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    fn declared() -> Routes<()> {
        Routes::new()
            .at("/things/", get(|| async { "list" }).post(|| async { "create" }))
            .at("/things/{id}/", get(|| async { "one" }).put(|| async { "put" }).patch(|| async { "patch" }))
            .at("/things/{id}/gone/", delete(|| async { "delete" }))
    }

    #[test]
    fn the_table_lists_every_path_with_the_methods_it_was_given() {
        let table = declared().into_table();
        let rows: Vec<(&str, Vec<Method>)> = table.iter().map(|s| (s.path, s.methods.clone())).collect();
        assert_eq!(
            rows,
            vec![
                ("/things/", vec![Method::GET, Method::POST]),
                ("/things/{id}/", vec![Method::GET, Method::PUT, Method::PATCH]),
                ("/things/{id}/gone/", vec![Method::DELETE]),
            ]
        );
        assert_eq!(table[1].full_path(), "/api/ai-video/things/{id}/");
    }

    #[tokio::test]
    async fn the_router_answers_exactly_the_table() {
        let routes = declared();
        let table = routes.table().to_vec();
        let router = routes.into_router();
        let send = |method: Method, path: String| {
            let router = router.clone();
            async move {
                let request = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
                router.oneshot(request).await.unwrap().status()
            }
        };
        let all = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
        for spec in &table {
            let path = spec.full_path().replace("{id}", "7");
            for method in &all {
                for path in [path.clone(), path.trim_end_matches('/').to_owned()] {
                    let status = send(method.clone(), path.clone()).await;
                    if spec.methods.contains(method) {
                        assert_eq!(status, StatusCode::OK, "{method} {path}");
                    } else {
                        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                    }
                }
            }
        }
        assert_eq!(send(Method::GET, "/api/ai-video/elsewhere/".into()).await, StatusCode::NOT_FOUND);
    }
}

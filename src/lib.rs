//! `aivideo`, the local command: every function's router and the worker in one
//! process on the embedded backend, plus a token printer. Its flags are a fixed interface that
//! tools outside the repo rely on; see the README.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use shared::config::{Backend, Config};
use shared::runtime::Local;

pub mod console;
pub mod stream;

/// The whole API: every function's routes behind the shared HTTP layer, the embedded backend's
/// media links, and the web console.
pub fn app(local: &Local, config: &Config) -> Router {
    let routes = stories::routes()
        .merge(scenes::routes())
        .merge(prompts::routes())
        .merge(jobs::routes())
        .merge(providers::routes())
        // Served here only: API Gateway HTTP APIs do not stream.
        .route(&format!("{}{}", shared::http::API_PREFIX, stream::PATH), axum::routing::get(stream::stream));
    let api = shared::http::api(routes, local.api.clone());
    let api = match &local.media {
        // Downloads are authorised by the link's signature (as S3's presigned URLs are), not a token.
        Some(media) => api.merge(media.clone().router()),
        None => api,
    };
    api.merge(console::router(local, config))
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `aivideo serve`.
    Serve {
        addr: SocketAddr,
        data_dir: PathBuf,
        backend: Backend,
        create_resources: bool,
        /// `--cors-origin`, on top of `AIVIDEO_CORS_ORIGINS`.
        cors_origins: Vec<String>,
        /// `--webhooks-to-loopback`: webhooks may reach plain-http receivers on this machine.
        webhooks_to_loopback: bool,
    },
    /// `aivideo token`.
    Token { user: String, admin: bool, data_dir: PathBuf, ttl: Duration },
    /// `aivideo openapi`: the API's OpenAPI document on stdout (what the console's types are
    /// generated from).
    OpenApi,
    /// `aivideo help [COMMAND]` or `--help` after a command: that text.
    Help(&'static str),
}

/// Usage text.
pub const USAGE: &str = "\
usage:
  aivideo serve [--addr 127.0.0.1:3000] [--data-dir .aivideo] [--backend embedded|aws] [--create-resources] [--cors-origin ORIGIN]... [--webhooks-to-loopback]
  aivideo token --user NAME [--admin] [--data-dir .aivideo] [--ttl-hours 24]
  aivideo openapi
  aivideo help [serve|token|openapi]

environment: JWT_SECRET (HS256 token secret; generated into the data dir when unset),
AIVIDEO_DATA_DIR, AIVIDEO_BACKEND, AIVIDEO_CORS_ORIGINS, RUST_LOG, AIVIDEO_LOG=json|text
(the README lists every setting)";

/// `aivideo serve --help`.
pub const SERVE_USAGE: &str = "\
usage: aivideo serve [--addr 127.0.0.1:3000] [--data-dir .aivideo] [--backend embedded|aws]
                     [--create-resources] [--cors-origin ORIGIN]... [--webhooks-to-loopback]

Serves the whole product in one process: the API at http://ADDR/api/ai-video/, the web console at
http://ADDR/, the job worker, and (embedded backend) the media files. Stops on Ctrl-C.

  --addr ADDR           where to listen (default 127.0.0.1:3000; port 0 picks a free one)
  --data-dir DIR        the embedded backend's folder (default .aivideo, or AIVIDEO_DATA_DIR)
  --backend B           embedded (default, or AIVIDEO_BACKEND) or aws (DynamoDB, SQS, S3 and
                        Secrets Manager as the AWS SDK's environment finds them)
  --create-resources    with --backend aws: create the table, queues, bucket and secret if missing
  --cors-origin ORIGIN  let pages on ORIGIN (e.g. http://127.0.0.1:5173) call the API from a
                        browser; repeatable, added to AIVIDEO_CORS_ORIGINS
  --webhooks-to-loopback  let webhooks reach receivers on this machine (http://127.0.0.1:PORT/...),
                        for developing a receiver; no environment variable turns this on";

/// `aivideo token --help`.
pub const TOKEN_USAGE: &str = "\
usage: aivideo token --user NAME [--admin] [--data-dir .aivideo] [--ttl-hours 24]

Prints a bearer token for user NAME that `aivideo serve` accepts: signed with JWT_SECRET when set,
else with the embedded data dir's secret (generated at its first use), or, with
AIVIDEO_BACKEND=aws, with the secret in Secrets Manager.

  --user NAME       the user the token names (letters, digits, . _ @ -)
  --admin           an admin token (may configure providers)
  --data-dir DIR    the data dir whose secret signs it (default .aivideo)
  --ttl-hours N     how long it is valid, 1 to 8760 hours (default 24)";

/// `aivideo openapi --help`.
pub const OPENAPI_USAGE: &str = "\
usage: aivideo openapi

Prints the API's OpenAPI 3.1 document (the one served at /api/ai-video/openapi.json).";

fn usage_of(command: &str) -> Option<&'static str> {
    match command {
        "serve" => Some(SERVE_USAGE),
        "token" => Some(TOKEN_USAGE),
        "openapi" => Some(OPENAPI_USAGE),
        _ => None,
    }
}

/// Parses the arguments after the program name. `config` supplies the defaults (environment).
pub fn parse_args(args: &[String], config: &Config) -> Result<Command, String> {
    let Some((command, rest)) = args.split_first() else {
        return Ok(Command::Help(USAGE));
    };
    let mut flags = rest.iter();
    let mut addr = SocketAddr::from(([127, 0, 0, 1], 3000));
    let mut data_dir = config.data_dir.clone();
    let mut backend = config.backend;
    let mut user: Option<String> = None;
    let mut admin = false;
    let mut ttl_hours: u64 = 24;
    let mut create_resources = false;
    let mut cors_origins = Vec::new();
    let mut webhooks_to_loopback = false;
    let serve = match command.as_str() {
        "serve" => true,
        "token" => false,
        "openapi" => {
            return match rest.first().map(String::as_str) {
                None => Ok(Command::OpenApi),
                Some("--help" | "-h") => Ok(Command::Help(OPENAPI_USAGE)),
                Some(other) => Err(format!("unknown flag {other:?} for openapi")),
            };
        }
        "help" | "--help" | "-h" => {
            return match rest.first() {
                None => Ok(Command::Help(USAGE)),
                Some(topic) => usage_of(topic)
                    .map(Command::Help)
                    .ok_or_else(|| format!("no help for {topic:?} (commands: serve, token, openapi)")),
            };
        }
        other => {
            return Err(format!("unknown command {other:?} (expected serve, token or openapi)"));
        }
    };
    while let Some(flag) = flags.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (flag.as_str(), None),
        };
        let mut value =
            || inline.clone().or_else(|| flags.next().cloned()).ok_or_else(|| format!("{name} needs a value"));
        match (serve, name) {
            (true, "--addr") => {
                let raw = value()?;
                addr = raw.parse().map_err(|_| format!("--addr {raw:?} is not an address like 127.0.0.1:3000"))?;
            }
            (true, "--create-resources") if inline.is_none() => create_resources = true,
            (true, "--webhooks-to-loopback") if inline.is_none() => webhooks_to_loopback = true,
            (true, "--cors-origin") => {
                let raw = value()?;
                let origin = shared::http::cors::parse_origin(&raw).ok_or_else(|| {
                    format!("--cors-origin {raw:?} is not an origin like http://127.0.0.1:5173 (scheme, lower-case host and port; no path or trailing slash)")
                })?;
                cors_origins.push(origin);
            }
            (true, "--backend") => backend = Backend::parse(&value()?).map_err(|e| format!("--backend: {e}"))?,
            (_, "--data-dir") => data_dir = PathBuf::from(value()?),
            (false, "--user") => user = Some(value()?),
            (false, "--admin") if inline.is_none() => admin = true,
            (false, "--ttl-hours") => {
                let raw = value()?;
                ttl_hours = raw
                    .parse()
                    .ok()
                    .filter(|h| (1..=24 * 365).contains(h))
                    .ok_or_else(|| format!("--ttl-hours {raw:?} is not a number of hours from 1 to 8760"))?;
            }
            (_, "--help" | "-h") => return Ok(Command::Help(if serve { SERVE_USAGE } else { TOKEN_USAGE })),
            _ => return Err(format!("unknown flag {flag:?} for {command}")),
        }
    }
    if serve {
        return Ok(Command::Serve { addr, data_dir, backend, create_resources, cors_origins, webhooks_to_loopback });
    }
    let user = user.ok_or("token needs --user NAME")?;
    if shared::domain::ids::UserId::parse(&user).is_none() {
        return Err(format!("--user {user:?} is not a valid user name"));
    }
    Ok(Command::Token { user, admin, data_dir, ttl: Duration::from_secs(ttl_hours * 3600) })
}

/// Prints a token the local server accepts: signed with `JWT_SECRET`, else with the embedded data
/// dir's secret, or (with `AIVIDEO_BACKEND=aws`) with the secret in Secrets Manager.
pub async fn token(config: &Config, user: &str, admin: bool, ttl: Duration) -> Result<String, String> {
    let secret = match (&config.auth.secret, config.backend) {
        (Some(secret), _) => secret.clone(),
        (None, Backend::Embedded) => shared::runtime::local_token_secret(config).map_err(|e| one_line(&e))?,
        (None, Backend::Aws) => {
            let clients = shared::adapters::aws::AwsClients::from_env().await;
            let source = shared::adapters::aws::SecretsManagerSource::new(clients.secrets, Duration::ZERO);
            shared::ports::SecretSource::secret(&source, &config.aws.jwt_secret).await.map_err(|e| one_line(&e))?
        }
    };
    shared::http::auth::issue_hs256_token(&secret, user, admin, ttl).map_err(|e| one_line(&e))
}

/// Serves the whole API until Ctrl-C / SIGTERM. Errors are one line, for the terminal.
pub async fn serve(config: &Config, addr: SocketAddr) -> Result<(), String> {
    // The worker renders with ffmpeg: say so now, not at the first render.
    shared::adapters::ffmpeg::Ffmpeg::locate().map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let mut config = config.clone();
    // Media links point at the address actually bound (port 0 picks one).
    config.addr = bound;
    let local = shared::runtime::build_local(&config).await.map_err(|e| one_line(&e))?;
    // Before the first request: a keyed retry must find its claim free, not held by the dead.
    local.jobs.recover_after_restart().await;
    if let Some(media) = &local.media {
        let removed = media.remove_partial_files();
        if removed > 0 {
            tracing::info!(removed, "half-written media files of the previous process removed");
        }
    }
    // The one line tools wait for (tests read the port from it when started with port 0).
    let place = match config.backend {
        Backend::Embedded => format!("data dir {}", config.data_dir.display()),
        Backend::Aws => format!("table {}", config.aws.table),
    };
    eprintln!("aivideo: listening on http://{bound}/api/ai-video/ ({place})");
    eprintln!("aivideo: web console at http://{bound}/");
    // The in-process worker consumes the job queue as the worker Lambda's event source would.
    let (stop_worker, stopped) = tokio::sync::oneshot::channel::<()>();
    let visibility = Duration::from_secs(config.worker.visibility_seconds);
    let consumer = local.jobs.clone();
    let worker = tokio::spawn(async move {
        consumer
            .consume(visibility, async {
                let _ = stopped.await;
            })
            .await;
    });
    // And the webhook dispatcher, as the webhooks Lambda's queue and stream would run it.
    let (stop_webhooks, webhooks_stopped) = tokio::sync::oneshot::channel::<()>();
    let dispatcher = tokio::spawn(shared::runtime::dispatch(local.api.webhooks.clone(), WEBHOOK_ROUND, async {
        let _ = webhooks_stopped.await;
    }));
    let served = axum::serve(listener, app(&local, &config))
        .with_graceful_shutdown(shared::runtime::shutdown_signal())
        .await
        .map_err(|e| format!("server stopped: {e}"));
    let _ = stop_worker.send(());
    let _ = stop_webhooks.send(());
    let _ = worker.await;
    let _ = dispatcher.await;
    served
}

/// How often `serve` looks for new events to deliver and deliveries that are due.
const WEBHOOK_ROUND: Duration = Duration::from_millis(200);

fn one_line(e: &shared::Error) -> String {
    match e {
        shared::Error::Internal(why) => why.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn serve_takes_its_documented_flags() {
        let c = parse_args(
            &args(&["serve", "--addr", "127.0.0.1:9", "--data-dir=/tmp/x", "--backend", "embedded"]),
            &Config::default(),
        )
        .unwrap();
        assert_eq!(
            c,
            Command::Serve {
                addr: "127.0.0.1:9".parse().unwrap(),
                data_dir: "/tmp/x".into(),
                backend: Backend::Embedded,
                create_resources: false,
                cors_origins: vec![],
                webhooks_to_loopback: false,
            }
        );
    }

    #[test]
    fn bad_flags_are_refused_with_a_reason() {
        for bad in [
            vec!["serve", "--port", "3"],
            vec!["serve", "--addr"],
            vec!["serve", "--addr", "localhost"],
            vec!["serve", "--backend", "sqlite"],
            vec!["token"],
            vec!["token", "--user", ""],
            vec!["token", "--user", "a", "--ttl-hours", "0"],
            vec!["launch"],
            vec!["serve", "--cors-origin", "http://127.0.0.1:5173/"],
            vec!["serve", "--cors-origin", "*"],
            vec!["openapi", "--x"],
            vec!["help", "launch"],
        ] {
            assert!(parse_args(&args(&bad), &Config::default()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn each_command_has_its_own_help() {
        let help = |list: &[&str]| parse_args(&args(list), &Config::default()).unwrap();
        assert_eq!(help(&["serve", "--help"]), Command::Help(SERVE_USAGE));
        assert_eq!(help(&["token", "-h"]), Command::Help(TOKEN_USAGE));
        assert_eq!(help(&["help", "serve"]), Command::Help(SERVE_USAGE));
        assert_eq!(help(&["openapi", "--help"]), Command::Help(OPENAPI_USAGE));
        assert_eq!(help(&["--help"]), Command::Help(USAGE));
        assert_eq!(help(&["openapi"]), Command::OpenApi);
    }

    #[test]
    fn serve_takes_cors_origins() {
        let c = parse_args(
            &args(&["serve", "--cors-origin", "http://127.0.0.1:5173", "--cors-origin=https://app.example.com"]),
            &Config::default(),
        )
        .unwrap();
        assert!(matches!(c, Command::Serve { ref cors_origins, .. }
            if cors_origins == &["http://127.0.0.1:5173".to_owned(), "https://app.example.com".to_owned()]));
    }

    #[test]
    fn token_takes_user_and_admin() {
        let c = parse_args(&args(&["token", "--user", "alice", "--admin"]), &Config::default()).unwrap();
        assert!(matches!(c, Command::Token { ref user, admin: true, .. } if user == "alice"));
    }
}

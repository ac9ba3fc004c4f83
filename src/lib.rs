//! `aivideo`, the local command: every function's router and the worker in one
//! process on the embedded backend, plus a token printer. Its flags are a fixed interface that
//! tools outside the repo rely on; see the README.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use shared::config::{Backend, Config};
use shared::runtime::Local;

/// The whole API: every function's routes behind the shared HTTP layer, and the embedded
/// backend's media links.
pub fn app(local: &Local) -> Router {
    let routes = stories::routes()
        .merge(scenes::routes())
        .merge(prompts::routes())
        .merge(jobs::routes())
        .merge(providers::routes());
    let api = shared::http::api(routes, local.api.clone());
    match &local.media {
        // Downloads are authorised by the link's signature (as S3's presigned URLs are), not a token.
        Some(media) => api.merge(media.clone().router()),
        None => api,
    }
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `aivideo serve`.
    Serve { addr: SocketAddr, data_dir: PathBuf, backend: Backend, create_resources: bool },
    /// `aivideo token`.
    Token { user: String, admin: bool, data_dir: PathBuf, ttl: Duration },
    /// `aivideo help`.
    Help,
}

/// Usage text.
pub const USAGE: &str = "\
usage:
  aivideo serve [--addr 127.0.0.1:3000] [--data-dir .aivideo] [--backend embedded|aws] [--create-resources]
  aivideo token --user NAME [--admin] [--data-dir .aivideo] [--ttl-hours 24]

environment: JWT_SECRET (HS256 token secret; generated into the data dir when unset),
AIVIDEO_DATA_DIR, AIVIDEO_BACKEND, RUST_LOG, AIVIDEO_LOG=json|text";

/// Parses the arguments after the program name. `config` supplies the defaults (environment).
pub fn parse_args(args: &[String], config: &Config) -> Result<Command, String> {
    let Some((command, rest)) = args.split_first() else {
        return Ok(Command::Help);
    };
    let mut flags = rest.iter();
    let mut addr = SocketAddr::from(([127, 0, 0, 1], 3000));
    let mut data_dir = config.data_dir.clone();
    let mut backend = config.backend;
    let mut user: Option<String> = None;
    let mut admin = false;
    let mut ttl_hours: u64 = 24;
    let mut create_resources = false;
    let serve = match command.as_str() {
        "serve" => true,
        "token" => false,
        "help" | "--help" | "-h" => return Ok(Command::Help),
        other => {
            return Err(format!("unknown command {other:?} (expected serve or token)"));
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
            (_, "--help" | "-h") => return Ok(Command::Help),
            _ => return Err(format!("unknown flag {flag:?} for {command}")),
        }
    }
    if serve {
        return Ok(Command::Serve { addr, data_dir, backend, create_resources });
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
    let served = axum::serve(listener, app(&local))
        .with_graceful_shutdown(shared::runtime::shutdown_signal())
        .await
        .map_err(|e| format!("server stopped: {e}"));
    let _ = stop_worker.send(());
    let _ = worker.await;
    served
}

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
                create_resources: false
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
        ] {
            assert!(parse_args(&args(&bad), &Config::default()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn token_takes_user_and_admin() {
        let c = parse_args(&args(&["token", "--user", "alice", "--admin"]), &Config::default()).unwrap();
        assert!(matches!(c, Command::Token { ref user, admin: true, .. } if user == "alice"));
    }
}

//! `aivideo`: see `aivideo help`.

use std::io::Write;
use std::process::ExitCode;

use aivideo::{Command, parse_args, serve, token};
use shared::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => return fail(&e, 2),
    };
    let command = match parse_args(&args, &config) {
        Ok(command) => command,
        Err(e) => return fail(&format!("{e} (see aivideo help)"), 2),
    };
    match command {
        Command::Help(text) => {
            let _ = writeln!(std::io::stdout().lock(), "{text}");
            ExitCode::SUCCESS
        }
        Command::OpenApi => {
            let document = shared::http::openapi::document(config.llm.is_some());
            match serde_json::to_string_pretty(&document) {
                Ok(text) => {
                    let _ = writeln!(std::io::stdout().lock(), "{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e.to_string(), 1),
            }
        }
        Command::Token { user, admin, data_dir, ttl } => {
            config.data_dir = data_dir;
            match token(&config, &user, admin, ttl).await {
                Ok(jwt) => {
                    let _ = writeln!(std::io::stdout().lock(), "{jwt}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e, 1),
            }
        }
        Command::Serve { addr, data_dir, backend, create_resources, cors_origins, webhooks_to_loopback } => {
            shared::telemetry::init(shared::telemetry::default_format());
            for origin in cors_origins {
                if let Err(e) = config.add_cors_origin(&origin) {
                    return fail(&e, 2);
                }
            }
            config.data_dir = data_dir;
            config.backend = backend;
            config.create_resources = create_resources;
            config.webhooks.allow_loopback = webhooks_to_loopback;
            match serve(&config, addr).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e, 1),
            }
        }
    }
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("aivideo: error: {message}");
    ExitCode::from(code)
}

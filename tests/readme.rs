//! The README's walkthrough runs as written: its `sh` blocks, in order, in one bash session,
//! against the real `aivideo serve`. Only what cannot run here as written is changed: the server is
//! started by the test (on a free port instead of 3000, data in a temporary folder, a short poll
//! interval so the renders take seconds), `cargo run -q --` is the built binary, and `curl` checks
//! each answer's status: 2xx, or exactly the status a line's `# → NNN` comment says.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::Server;

/// The `sh` blocks from the walkthrough up to the providers' section.
fn walkthrough_blocks(readme: &str) -> Vec<String> {
    let start = readme.find("## Walkthrough (curl)").expect("the README has a walkthrough");
    let end = readme[start..].find("### AI providers").map_or(readme.len(), |i| start + i);
    let mut blocks = Vec::new();
    let mut rest = &readme[start..end];
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + 6..];
        let close = body.find("```").expect("closed block");
        blocks.push(body[..close].to_owned());
        rest = &body[close + 3..];
    }
    blocks
}

/// Joins continued lines, then marks each line whose comment names a status (`# → 412`) so that
/// the `curl` function below accepts exactly that status for it.
fn with_expectations(script: &str) -> String {
    let joined = script.replace("\\\n", " ");
    let mut out = String::new();
    for line in joined.lines() {
        let expected = line
            .split("# → ")
            .nth(1)
            .and_then(|rest| rest.get(..3))
            .filter(|code| code.bytes().all(|b| b.is_ascii_digit()));
        match expected {
            Some(code) => out.push_str(&format!("EXPECT={code} {line}\n")),
            None => out.push_str(&format!("{line}\n")),
        }
    }
    out
}

/// Fails the script on an answer of 400 or more that the line did not announce (and on an
/// announced status that did not come), printing the answer.
const CURL_CHECK: &str = r#"
curl() {
  local out code
  out=$(command curl -w '\n%{http_code}' "$@") || { echo "curl failed: $*" >&2; return 1; }
  code=${out##*$'\n'}
  printf '%s\n' "${out%$'\n'*}"
  if [ -n "${EXPECT:-}" ]; then
    [ "$code" = "$EXPECT" ] || { echo "expected $EXPECT, got $code: curl $*" >&2; exit 1; }
  elif [ "$code" -ge 400 ]; then
    echo "HTTP $code: curl $*" >&2; exit 1
  fi
}
"#;

#[test]
fn the_readme_walkthrough_runs_as_written() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let blocks = walkthrough_blocks(&readme);
    assert!(blocks.len() >= 3, "the walkthrough's blocks: {}", blocks.len());
    let data = tempfile::tempdir().unwrap();
    let secret = "readme-walkthrough-secret-0123456789";
    let server = Server::start(data.path(), &[("JWT_SECRET", secret), ("AIVIDEO_PROVIDER_POLL_MS", "200")]);
    let work = tempfile::tempdir().unwrap();
    let mut script = String::from("set -euo pipefail\n");
    script.push_str(CURL_CHECK);
    for (i, block) in blocks.iter().enumerate() {
        let mut block = with_expectations(block);
        if i == 0 {
            let serve = "cargo run -- serve &";
            assert!(block.contains(serve), "the first block starts the server");
            block = block.lines().filter(|l| !l.starts_with(serve)).map(|l| format!("{l}\n")).collect();
        }
        let block = block
            .replace("http://127.0.0.1:3000", &server.base)
            .replace("cargo run -q --", &format!("'{}'", env!("CARGO_BIN_EXE_aivideo")));
        assert!(!block.contains("cargo run"), "block {i} runs cargo: {block}");
        script.push_str(&format!("echo '--- block {i}' >&2\n{block}\n"));
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .env("JWT_SECRET", secret)
        .env_remove("AIVIDEO_DATA_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = stdout.chars().rev().take(3000).collect::<Vec<_>>().into_iter().rev().collect();
    assert!(out.status.success(), "the walkthrough failed\n--- stdout (end)\n{tail}\n--- stderr\n{stderr}");
    // What the walkthrough says it ends with.
    assert!(stdout.contains("\nPREVIEW_READY\n"), "{tail}");
    assert!(stdout.contains("\nCOMPLETED\n"), "{tail}");
    assert!(stdout.contains("idempotent-replayed: true"), "the second keyed create is a replay");
    let final_video = work.path().join("final.mp4");
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(&final_video)
        .output()
        .unwrap();
    let seconds: f64 = String::from_utf8_lossy(&probe.stdout).trim().parse().unwrap_or(0.0);
    assert!((seconds - 30.0).abs() < 0.5, "the downloaded final lasts the story's 30 s: {seconds}");
}

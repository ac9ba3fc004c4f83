#!/usr/bin/env python3
"""Cold-start benchmark of the Lambda functions, side by side with the floor and the DRF peer.

Driven by scripts/bench-cold (which builds the binaries, the floor and the peer first); can be run
alone when those exist. Python 3 standard library only.

Writes a targets file for the read-only harness ../shared/bench/harness/lambda_bench.py and runs
it ONCE with --targets, so the cycles of every target are interleaved (drf1 floor1 stories1 ...
drf2 ...) and drift on this shared machine hits them all alike. Targets:

  drf          the peer (Django REST Framework under awslambdaric), the harness's story events
  floor        ../shared/bench/rust-hello's bootstrap (a constant answer), the same events
  stories      the story events (create, get, DRAFT->PLANNING, 12-scene bulk)
  scenes prompts jobs providers
               each its own events from scripts/bench-events/<function>/
  worker       an SQS batch of one message for a job that does not exist (acknowledged)
  stories-aws  (--aws) the stories function on the AWS backend against moto

Every product function runs on the embedded backend with a fresh data dir under /dev/shm (one per
target, kept across that target's cycles), like the peer's SQLite file.

The harness validates every response as an API Gateway response (a JSON object with an integer
statusCode). The worker answers an SQS batch response ({"batchItemFailures": [...]}), which the
harness has no option for; this script runs the harness in a child process with one wrapper
around its response parser (the harness file itself is not changed): an SQS batch response
counts as status 200 when batchItemFailures is empty and 207 when some messages failed, so the
worker's event expects 200 (x-bench.expect_status). Every other response goes to the harness's
own parser untouched.

With --aws: starts tests/aws/moto_server.py (with --log, one line per AWS request), creates the
token secret with the bench secret as its value, lets `aivideo serve --backend aws
--create-resources` create the table, queues and bucket the way the app expects, stops it, reads
the queue URLs and adds the stories-aws target with the production environment (secret name,
queue URLs; no JWT_SECRET, so init reads the secret as in Lambda); its events are create + get
only unless --aws-all-events (moto's TransactWriteItems deep-copies the table once per item, so
transition and bulk measure moto more and more as the table grows). Before the run it starts the
function once under a minimal Runtime API of its own and counts the AWS requests made between
exec and the first GET /next (the init phase); it also counts the requests of the whole run.

Output: a markdown table on stdout (medians over the timed cycles; ratios against the floor and
the peer), saved with the harness's text report and JSON (--json-out) under target/bench/.
Exit status 1 if any invoke of any timed cycle failed validation, as the harness.
"""
from __future__ import annotations

import argparse
import collections
import http.server
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BENCH = REPO.parent / "shared" / "bench"
DEFAULT_SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
API_FUNCTIONS = ["stories", "scenes", "prompts", "jobs", "providers"]
ALL_TARGETS = ["drf", "floor", *API_FUNCTIONS, "worker", "stories-aws"]
AWS_SECRET_NAME = "aivideo-bench/jwt-secret"
QUEUE_PREFIX = "aivideo-jobs"


# ----------------------------------------------------------------------------------------------
# The harness, run in a child process with the SQS batch response understood
# ----------------------------------------------------------------------------------------------

def sqs_batch_status(raw: bytes):
    """(status, body) for an SQS batch response without statusCode, else None."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or "statusCode" in doc or "batchItemFailures" not in doc:
        return None
    failures = doc["batchItemFailures"]
    if not isinstance(failures, list):
        return None
    return (200 if not failures else 207), doc


def run_harness_child(harness: str, argv: list[str]) -> int:
    """Loads the harness as a module, wraps its response parser, runs its main()."""
    spec = importlib.util.spec_from_file_location("lambda_bench", harness)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["lambda_bench"] = mod
    spec.loader.exec_module(mod)
    original = mod.parse_apigw_response

    def parse(raw: bytes, streamed: bool):
        if not streamed:
            batch = sqs_batch_status(raw)
            if batch is not None:
                status, body = batch
                return status, body, None
        return original(raw, streamed)

    mod.parse_apigw_response = parse
    sys.argv = [harness, *argv]
    return mod.main(argv)


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------

def log(msg: str):
    print(f"# bench-cold: {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_tree(proc: subprocess.Popen, sig=signal.SIGTERM, wait_s=10.0):
    """Stops a process we started, by its PID (and only it)."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def git_describe() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=20).stdout.strip()
        return head + (" (+ uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def built_at(bin_dir: Path, only: list[str]) -> str:
    """When the product binaries were linked (HEAD may have moved since)."""
    times = [(bin_dir / b).stat().st_mtime for b in API_FUNCTIONS + ["worker"]
             if b in only and (bin_dir / b).exists()]
    if not times:
        return ""
    return ", binaries linked " + time.strftime("%Y-%m-%d %H:%M", time.localtime(max(times)))


# ----------------------------------------------------------------------------------------------
# moto (--aws)
# ----------------------------------------------------------------------------------------------

class Moto:
    def __init__(self, python: str, work: Path):
        self.log_path = work / "moto-requests.log"
        self.stderr_path = work / "moto.stderr"
        self.log_path.write_text("")
        self.stderr = open(self.stderr_path, "wb")
        cmd = [python, str(REPO / "tests/aws/moto_server.py"), "0", "--exit-with-parent",
               "--log", str(self.log_path)]
        # stdin stays open while we run: moto exits when it closes (--exit-with-parent)
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr)
        line = self.proc.stdout.readline().decode().strip()
        if not line.isdigit():
            self.stop()
            raise SystemExit(f"moto_server.py did not print its port (got {line!r}); see {self.stderr_path}")
        self.port = int(line)
        self.url = f"http://127.0.0.1:{self.port}"

    def lines(self) -> list[str]:
        return self.log_path.read_text().splitlines()

    def call(self, service: str, target: str, body: dict, json_version: str) -> dict:
        """One JSON-protocol request (moto checks no signature; the credential scope names the
        service and region it routes by)."""
        req = urllib.request.Request(self.url + "/", data=json.dumps(body).encode(), method="POST", headers={
            "Content-Type": f"application/x-amz-json-{json_version}",
            "X-Amz-Target": target,
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDLAMBDABENCH0000/20260101/us-east-1/"
                             f"{service}/aws4_request, SignedHeaders=host, Signature=00",
        })
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            raise SystemExit(f"moto {target}: HTTP {e.code}: {e.read()[:300]!r}")

    def stop(self):
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        kill_tree(self.proc, signal.SIGTERM, 5)
        self.stderr.close()


def aws_env(moto: Moto) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": moto.url,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDLAMBDABENCH0000",
        "AWS_SECRET_ACCESS_KEY": "lambda-bench-dummy-secret",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AIVIDEO_JWT_SECRET_NAME": AWS_SECRET_NAME,
        "AIVIDEO_QUEUE_PREFIX": QUEUE_PREFIX,
    }


def prepare_aws(moto: Moto, aivideo: Path, work: Path, secret: str) -> dict[str, str]:
    """Creates what the app expects in moto; returns the stories-aws target's environment."""
    # The token secret first, with the bench secret as its value (the harness signs with it):
    # --create-resources only creates a secret that is missing.
    moto.call("secretsmanager", "secretsmanager.CreateSecret",
              {"Name": AWS_SECRET_NAME, "SecretString": secret}, "1.1")
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env.update(aws_env(moto))
    env.update({"AIVIDEO_LOG": "text", "RUST_LOG": "warn"})
    data = work / "serve-data"
    data.mkdir()
    addr = f"127.0.0.1:{free_port()}"
    errf = open(work / "aivideo-serve.log", "w+b")
    proc = subprocess.Popen([str(aivideo), "serve", "--backend", "aws", "--create-resources", "--addr", addr,
                             "--data-dir", str(data)], cwd=work, env=env, stdin=subprocess.DEVNULL,
                            stdout=errf, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    ok = False
    try:
        while time.monotonic() < deadline:
            errf.seek(0)
            if b"listening on" in errf.read():
                ok = True
                break
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    finally:
        kill_tree(proc, signal.SIGTERM, 10)
        errf.seek(0)
        out = errf.read().decode("utf-8", "replace")
        errf.close()
    if not ok:
        raise SystemExit(f"aivideo serve --backend aws --create-resources did not come up:\n{out[-2000:]}")
    urls = {}
    for prio in ("high", "normal", "low"):
        got = moto.call("sqs", "AmazonSQS.GetQueueUrl", {"QueueName": f"{QUEUE_PREFIX}-{prio}"}, "1.0")
        urls[prio] = got["QueueUrl"]
    target_env = aws_env(moto)
    for k in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
              "AWS_EC2_METADATA_DISABLED"):
        target_env.pop(k)  # the harness sets its own (dummy credentials, IMDS off)
    target_env.update({
        "AIVIDEO_BACKEND": "aws",
        "AIVIDEO_QUEUE_URL_HIGH": urls["high"],
        "AIVIDEO_QUEUE_URL_NORMAL": urls["normal"],
        "AIVIDEO_QUEUE_URL_LOW": urls["low"],
    })
    return target_env


class _ProbeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        srv = self.server
        if "/runtime/invocation/next" in self.path and not srv.seen.is_set():
            srv.lines_at_next = len(srv.moto.lines())
            srv.t_next = time.perf_counter()
            srv.seen.set()
        # hold the request: the function stays in "waiting for an event" until it is killed
        srv.done.wait(30)
        self.close_connection = True

    def do_POST(self):
        if "/runtime/init/error" in self.path:
            length = int(self.headers.get("Content-Length") or 0)
            self.server.init_error = self.rfile.read(length).decode("utf-8", "replace")
            self.server.seen.set()
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


def probe_init_calls(binary: Path, env_extra: dict[str, str], moto: Moto, work: Path) -> dict:
    """Starts the function once under a minimal Runtime API; returns the AWS requests made
    between exec and its first GET /next."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ProbeHandler)
    srv.daemon_threads = True
    srv.moto, srv.seen, srv.done = moto, threading.Event(), threading.Event()
    srv.lines_at_next, srv.t_next, srv.init_error = None, None, None
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{srv.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": "stories-aws-probe",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/stories-aws-probe",
        "AWS_LAMBDA_LOG_STREAM_NAME": "probe",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDLAMBDABENCH0000",
        "AWS_SECRET_ACCESS_KEY": "lambda-bench-dummy-secret",
        "AWS_SESSION_TOKEN": "lambda-bench-dummy-token",
        "AWS_EC2_METADATA_DISABLED": "true",
        "_HANDLER": "bootstrap",
        "LAMBDA_TASK_ROOT": str(work),
        "TZ": ":UTC",
    })
    env.update(env_extra)
    before = len(moto.lines())
    outf = open(work / "stories-aws-probe.log", "w+b")
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(binary)], cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=outf,
                            stderr=subprocess.STDOUT)
    try:
        srv.seen.wait(30)
    finally:
        srv.done.set()
        kill_tree(proc, signal.SIGKILL, 10)
        srv.shutdown()
        srv.server_close()
        outf.seek(0)
        output = outf.read().decode("utf-8", "replace")
        outf.close()
    if srv.init_error or srv.lines_at_next is None:
        return {"ok": False, "error": srv.init_error or "no /next within 30 s", "output": output[-1500:]}
    calls = moto.lines()[before:srv.lines_at_next]
    return {"ok": True, "count": len(calls), "calls": calls,
            "init_ms": round((srv.t_next - t0) * 1000, 1)}


# ----------------------------------------------------------------------------------------------
# Targets
# ----------------------------------------------------------------------------------------------

def build_targets(args, work: Path, bin_dir: Path, harness_events: Path, aws_target_env) -> list[dict]:
    s = args.secret
    events = REPO / "scripts" / "bench-events"
    specs = []
    want = set(args.only)

    def fresh(name: str) -> str:
        d = work / f"data-{name}"
        d.mkdir()
        return str(d)

    if "drf" in want:
        drf = Path(args.drf_dir).resolve()
        specs.append({"name": "drf", "cwd": str(drf), "cmd": ".venv/bin/python -m awslambdaric lambda_function.handler",
                      "events_dir": str(harness_events),
                      "env": {"JWT_SECRET": s, "DRF_PEER_DB": str(args.drf_db)}})
    if "floor" in want:
        floor = Path(args.floor).resolve()
        specs.append({"name": "floor", "cwd": str(floor.parent), "cmd": str(floor),
                      "events_dir": str(harness_events), "expect": {"transition_planning": 201}})
    for fn in API_FUNCTIONS + ["worker"]:
        if fn not in want:
            continue
        data = fresh(fn)
        ev = harness_events if fn == "stories" else events / fn
        specs.append({"name": fn, "cwd": data, "cmd": str(bin_dir / fn), "events_dir": str(ev),
                      "env": {"AIVIDEO_BACKEND": "embedded", "AIVIDEO_DATA_DIR": data, "JWT_SECRET": s}})
    if aws_target_env is not None:
        cwd = fresh("stories-aws")
        spec = {"name": "stories-aws", "cwd": cwd, "cmd": str(bin_dir / "stories"), "env": aws_target_env}
        if args.aws_all_events:
            spec["events_dir"] = str(harness_events)
        else:
            # moto's TransactWriteItems deep-copies the whole table once per item of the
            # transaction, so transition and bulk slow down with every pass (seconds per bulk
            # after a few hundred passes): by default only create + get, which moto answers in
            # constant time.
            spec["events"] = [str(harness_events / "01_create_story.json"), str(harness_events / "02_get_story.json")]
        specs.append(spec)
    return specs


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------

def med(d):
    return (d or {}).get("median")


def num(x, nd=2):
    return "-" if x is None else f"{x:.{nd}f}"


def ratio(a, b):
    if a is None or not b:
        return "-"
    r = a / b
    return f"{r:.1f}×" if r >= 10 else f"{r:.2f}×"


def markdown(doc: dict, meta: dict, aws_info: dict | None) -> str:
    by_name = {t["target"]: t for t in doc["targets"]}

    def metrics(t):
        c = t["cold"]
        pk = t["rss"]["peak_kb_median"]
        return {"init": med(c["init_ms"]), "first": med(c["first_response_ms"]),
                "cpu": med(c["cpu_first_response_ms"]), "warm": med(t["warm_ms"]),
                "rss": pk / 1024 if pk else None}

    floor = metrics(by_name["floor"]) if "floor" in by_name else {}
    drf = metrics(by_name["drf"]) if "drf" in by_name else {}
    out = []
    w = out.append
    w(f"### Cold start, {meta['profile']} build ({meta['when']})\n")
    w(f"{meta['cycles']} timed cold cycles per target (+{meta['prime']} untimed), {meta['warm']} warm invokes "
      f"per cycle, one interleaved harness run; medians over the cycles. Commit {meta['commit']}"
      f"{meta['built']}; "
      f"load average {doc['host']['loadavg_1m_start']} → {doc['host']['loadavg_1m_end']} on "
      f"{doc['host']['cpus']} CPUs. Product functions on the embedded backend (data dir on /dev/shm)"
      + (", stories-aws on the AWS backend against moto" if aws_info else "") + ".\n")
    w("| target | cold init ms | first response ms | CPU ms to first response | warm median ms | peak RSS MB "
      "| first resp. ×floor | CPU ×floor | warm ×floor | first resp. ×drf | cycles ok |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t in doc["targets"]:
        m = metrics(t)
        w(f"| {t['target']} | {num(m['init'])} | {num(m['first'])} | {num(m['cpu'])} | {num(m['warm'], 3)} "
          f"| {num(m['rss'], 1)} | {ratio(m['first'], floor.get('first'))} | {ratio(m['cpu'], floor.get('cpu'))} "
          f"| {ratio(m['warm'], floor.get('warm'))} | {ratio(m['first'], drf.get('first'))} "
          f"| {t['cycles_ok']}/{t['cycles']} |")
    w("")
    w("Events (cold event first; warm invokes cycle through them; warm medians of targets with "
      "different events are not like for like):")
    for t in doc["targets"]:
        codes = ", ".join(f"{k}×{v}" for k, v in sorted(t["status_codes"].items()))
        w(f"- {t['target']}: {', '.join(t['events'])} — status codes {codes}"
          + (f" — **{t['errors']} error(s)**" if t["errors"] else ""))
        for e in t["error_messages"][:3]:
            first = e.splitlines()[0] if e else e
            w(f"  - `{first[:240]}`")
    if "worker" in by_name:
        w("- worker: an SQS batch response counts as 200 when batchItemFailures is empty, 207 otherwise "
          "(scripts/bench_cold.py wraps the harness's parser; the harness needs statusCode).")
    if aws_info:
        w("")
        probe = aws_info.get("probe") or {}
        if probe.get("ok"):
            ops = collections.Counter(probe["calls"])
            w(f"stories-aws: **{probe['count']} AWS call(s) during init** (exec → first /next, one probe start: "
              + (", ".join(f"{k} ×{v}" for k, v in sorted(ops.items())) or "none") + f"; init {probe['init_ms']} ms).")
        elif probe:
            w(f"stories-aws: the init probe failed: {probe.get('error')}")
        run_calls = aws_info.get("run_calls")
        if run_calls is not None:
            ops = collections.Counter(run_calls)
            starts = meta["cycles"] + meta["prime"]
            w(f"AWS calls during the whole harness run: {len(run_calls)} over {starts} process starts "
              f"({', '.join(f'{k} ×{v}' for k, v in ops.most_common())}).")
    if meta.get("failed"):
        w("")
        w("**Some invokes failed validation**: see the harness report " + meta["report"])
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--harness-child"]:
        return run_harness_child(argv[1], argv[2:])

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=["release", "debug"], default=os.environ.get("BENCH_PROFILE", "release"),
                    help="which binaries: target/release (default) or target/debug (env BENCH_PROFILE)")
    ap.add_argument("-r", "--cycles", type=int, default=5, help="timed cold cycles per target (default 5)")
    ap.add_argument("-n", "--warm", type=int, default=100, help="warm invokes per cycle (default 100)")
    ap.add_argument("--prime", type=int, default=1, help="untimed cycles first (default 1)")
    ap.add_argument("--only", default=",".join(t for t in ALL_TARGETS if t != "stories-aws"),
                    help="comma-separated targets (default: all but stories-aws; --aws adds it)")
    ap.add_argument("--aws", action="store_true", help="add stories on the AWS backend against moto")
    ap.add_argument("--aws-all-events", action="store_true",
                    help="stories-aws gets all the story events (default: create + get only; moto's "
                         "TransactWriteItems copies the whole table per item, so transition and bulk "
                         "get slower with every pass)")
    ap.add_argument("--bench-dir", default=str(DEFAULT_BENCH), help="../shared/bench (read only)")
    ap.add_argument("--drf-dir", default=str(REPO / "target/bench/drf"), help="set-up copy of the DRF peer")
    ap.add_argument("--drf-db", help="the peer's SQLite file (default: in the work dir, migrated here)")
    ap.add_argument("--floor", default=str(REPO / "target/bench-floor/release/bootstrap"),
                    help="the rust-hello bootstrap")
    ap.add_argument("--moto-python", default=str(REPO / ".venv/bin/python"), help="python with moto (--aws)")
    ap.add_argument("--secret", default=os.environ.get("BENCH_JWT_SECRET", DEFAULT_SECRET), help="HS256 secret")
    ap.add_argument("--work-dir", help="scratch dir under /dev/shm (default: a new one, removed at the end)")
    ap.add_argument("--out-dir", default=str(REPO / "target/bench"), help="where reports go (default target/bench)")
    ap.add_argument("--keep-logs", action="store_true", help="keep every cycle's process output in the out dir")
    args = ap.parse_args(argv)

    args.only = [t.strip() for t in args.only.split(",") if t.strip()]
    unknown = [t for t in args.only if t not in ALL_TARGETS]
    if unknown:
        ap.error(f"unknown target(s) {unknown}; known: {ALL_TARGETS}")
    if args.aws and "stories-aws" not in args.only:
        args.only.append("stories-aws")
    aws = "stories-aws" in args.only
    bench = Path(args.bench_dir)
    harness = bench / "harness" / "lambda_bench.py"
    harness_events = bench / "harness" / "events"
    bin_dir = REPO / "target" / args.profile
    needed = [t for t in API_FUNCTIONS + ["worker"] if t in args.only] + (["stories", "aivideo"] if aws else [])
    missing = [str(bin_dir / b) for b in dict.fromkeys(needed) if not (bin_dir / b).exists()]
    if "floor" in args.only and not Path(args.floor).exists():
        missing.append(args.floor)
    if "drf" in args.only and not (Path(args.drf_dir) / ".venv/bin/python").exists():
        missing.append(str(Path(args.drf_dir) / ".venv/bin/python") + " (run scripts/bench-cold, or the peer's setup.sh in a copy)")
    if not harness.exists():
        missing.append(str(harness))
    if missing:
        raise SystemExit("missing: " + ", ".join(missing))

    own_work = args.work_dir is None
    work = Path(tempfile.mkdtemp(prefix="bench-cold-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None)) \
        if own_work else Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = out_dir / f"bench-cold-{stamp}-{args.profile}"
    moto = None
    aws_info = None
    try:
        if "drf" in args.only:
            if not args.drf_db:
                args.drf_db = str(work / "drf.sqlite3")
            if not Path(args.drf_db).exists():
                log(f"migrating the peer's database {args.drf_db}")
                subprocess.run([".venv/bin/python", "manage.py", "migrate", "--noinput", "-v", "0"], cwd=args.drf_dir,
                               env={**os.environ, "DRF_PEER_DB": args.drf_db}, check=True)
        aws_env_target = None
        if aws:
            if not Path(args.moto_python).exists():
                raise SystemExit(f"{args.moto_python} is missing: run ./scripts/install-test-deps")
            log("starting moto (tests/aws/moto_server.py --log)")
            moto = Moto(args.moto_python, work)
            log(f"moto on {moto.url}; creating the resources with aivideo serve --backend aws --create-resources")
            aws_env_target = prepare_aws(moto, bin_dir / "aivideo", work, args.secret)
            probe = probe_init_calls(bin_dir / "stories", aws_env_target, moto, work)
            aws_info = {"probe": probe}
            if probe.get("ok"):
                log(f"stories-aws init made {probe['count']} AWS call(s): {probe['calls']}")
            else:
                log(f"stories-aws init probe failed: {probe.get('error')}\n{probe.get('output', '')}")
        specs = build_targets(args, work, bin_dir, harness_events, aws_env_target)
        targets_file = work / "targets.json"
        targets_file.write_text(json.dumps({"targets": specs}, indent=2) + "\n")
        json_out = base.with_suffix(".json")
        report = base.with_name(base.name + "-harness.txt")
        hargs = ["--targets", str(targets_file), "--jwt-secret", args.secret, "--sub", "alice",
                 "-r", str(args.cycles), "-n", str(args.warm), "--prime", str(args.prime),
                 "--json-out", str(json_out)]
        if args.keep_logs:
            hargs += ["--log-dir", str(base.with_name(base.name + "-logs"))]
        log(f"targets: {', '.join(s['name'] for s in specs)}; {harness} --targets {targets_file} "
            f"-r {args.cycles} -n {args.warm} --prime {args.prime}")
        mark = len(moto.lines()) if moto else 0
        with open(report, "wb") as rep:
            rc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--harness-child", str(harness), *hargs],
                                stdout=rep, cwd=work).returncode
        if moto:
            aws_info["run_calls"] = moto.lines()[mark:]
        if not json_out.exists():
            print(report.read_text()[-3000:], file=sys.stderr)
            raise SystemExit(f"the harness wrote no JSON (exit {rc}); report: {report}")
        doc = json.loads(json_out.read_text())
        meta = {"profile": args.profile, "when": doc["generated_at"], "cycles": args.cycles, "warm": args.warm,
                "prime": args.prime, "commit": git_describe(), "failed": rc != 0, "report": str(report),
                "built": built_at(bin_dir, args.only)}
        if aws_info:
            doc["bench_cold_aws"] = aws_info
            json_out.write_text(json.dumps(doc, indent=2) + "\n")
        md = markdown(doc, meta, aws_info)
        base.with_suffix(".md").write_text(md)
        print(md)
        log(f"saved {base.with_suffix('.md')}, {json_out} and {report}")
        return 0 if rc == 0 else 1
    finally:
        if moto:
            moto.stop()
        if own_work:
            subprocess.run(["rm", "-rf", "--", str(work)], check=False)


if __name__ == "__main__":
    sys.exit(main())

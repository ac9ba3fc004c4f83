"""moto's server, made atomic for DynamoDB, on a loopback port.

Stock moto_server is not atomic under concurrency: two conditional writes with the same expected
version can both win (FACTS.md: 2-3 winners in 7 of 100 rounds of 50). Serialising the DynamoDB
requests (those whose X-Amz-Target starts with "DynamoDB") under one lock makes every
ConditionExpression and TransactWriteItems decide alone, as DynamoDB does, while SQS long polls
and S3 transfers stay concurrent.

moto has no clock of its own to move, so the tests' SQS side cannot wait on a manual clock; instead
`POST /aivideo-test/sqs/advance` with `{"queue_prefix": "...", "seconds": N}` moves time forward by
N seconds for the queues whose names start with the prefix (one test's queues): every delay and
visibility timeout of their messages ends N seconds earlier, exactly as if N seconds had passed for
them. Other queues, and every other service, keep the real time, so tests running side by side in
the same moto do not see each other's time move.

Usage: python moto_server.py [PORT] [--exit-with-parent] [--log FILE]\n(0 picks a free port; the chosen one is printed to stdout)

`--log FILE` appends one line per request handled, `<X-Amz-Target>` or else `<METHOD> <PATH>`
(flushed per line), so a test or a benchmark can count the AWS calls a process made.
"""

import json
import os
import sys
import threading

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

_dynamodb_lock = threading.Lock()


ADVANCE_PATH = "/aivideo-test/sqs/advance"


def advance_queues(prefix, seconds):
    """Ends every delay and visibility timeout of the matching queues' messages `seconds` earlier.
    Returns (queues, messages) touched."""
    from moto.sqs.models import sqs_backends

    shift_ms = float(seconds) * 1000.0
    queues = messages = 0
    for regions in list(sqs_backends.values()):
        for backend in list(regions.values()):
            for name, queue in list(backend.queues.items()):
                if not name.startswith(prefix):
                    continue
                queues += 1
                with queue._messages_lock:
                    for message in queue._messages:
                        message.visible_at -= shift_ms
                        message.delayed_until -= shift_ms
                        messages += 1
                    queue._messages_lock.notify_all()
    return queues, messages


def advance_response(environ, start_response):
    def answer(status, body):
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    if environ.get("REQUEST_METHOD") != "POST":
        return answer("405 Method Not Allowed", {"error": "POST only"})
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request = json.loads(environ["wsgi.input"].read(length) or b"{}")
        prefix, seconds = str(request["queue_prefix"]), float(request["seconds"])
    except (KeyError, TypeError, ValueError) as e:
        return answer("400 Bad Request", {"error": f"expected queue_prefix and seconds: {e}"})
    if not prefix or seconds < 0:
        # Forward only, and never every queue at once.
        return answer("400 Bad Request", {"error": "a non-empty queue_prefix and seconds >= 0"})
    queues, messages = advance_queues(prefix, seconds)
    if queues == 0:
        return answer("404 Not Found", {"error": f"no queue starts with {prefix!r}"})
    return answer("200 OK", {"queues": queues, "messages": messages})


class RequestLog:
    """Appends one line per request to a file: the X-Amz-Target, else METHOD PATH. Thread-safe,
    flushed per line."""

    def __init__(self, path):
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8")

    def write(self, environ):
        line = environ.get("HTTP_X_AMZ_TARGET") or f"{environ.get('REQUEST_METHOD', '?')} {environ.get('PATH_INFO', '')}"
        with self._lock:
            self._file.write(line.replace("\n", " ") + "\n")
            self._file.flush()


class AtomicDynamoDB:
    def __init__(self, app, log=None):
        self.app = app
        self.log = log

    def __call__(self, environ, start_response):
        if self.log is not None:
            self.log.write(environ)
        if environ.get("PATH_INFO") == ADVANCE_PATH:
            return advance_response(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB"):
            with _dynamodb_lock:
                # Drain the response inside the lock: the write happens while it is built.
                chunks = list(self.app(environ, start_response))
            return chunks
        return self.app(environ, start_response)


def exit_with_parent():
    """The test process holds our stdin; when it exits (even by a crash), stdin closes and we go too."""
    sys.stdin.read()
    os._exit(0)


def parse_args(argv):
    """-> (port, exit_with_parent, log_path): PORT is the first argument that is not a flag."""
    port, exit_parent, log_path = 0, False, None
    positional = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--exit-with-parent":
            exit_parent = True
        elif arg == "--log":
            if i + 1 >= len(argv):
                sys.exit("--log needs a FILE")
            i += 1
            log_path = argv[i]
        elif arg.startswith("--log="):
            log_path = arg[len("--log="):]
        elif arg.startswith("--"):
            pass  # unknown flags are ignored, as before
        else:
            positional.append(arg)
        i += 1
    if positional:
        port = int(positional[0])
    return port, exit_parent, log_path


def main():
    port, exit_parent, log_path = parse_args(sys.argv[1:])
    if exit_parent:
        threading.Thread(target=exit_with_parent, daemon=True).start()
    log = RequestLog(log_path) if log_path else None
    app = AtomicDynamoDB(DomainDispatcherApplication(create_backend_app), log)
    server = make_server("127.0.0.1", port, app, threaded=True)
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

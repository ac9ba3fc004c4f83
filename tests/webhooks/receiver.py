"""A webhook receiver on loopback for the tests, verifying every delivery with the
`standardwebhooks` package (the Standard Webhooks authors' Python library, not our code).

Prints its port on one line, then serves until its stdin closes. Each path is a receiver the test
configures first:

    POST /_config  {"path": "/a", "secret": "whsec_...", "answers": [500, 200], "hang": false}

`answers` are the statuses of the first deliveries, in order, the last one repeating (default
[200]); `hang` never answers (the server keeps the connection open until the client gives up).

    GET /_log?path=/a  ->  [{"webhook_id", "timestamp", "verified", "error", "body", "status"}]
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

LOCK = threading.Lock()
RECEIVERS = {}  # path -> {"secret", "answers", "hang"}
LOG = {}  # path -> [entries]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/_log":
            path = parse_qs(url.query).get("path", [""])[0]
            with LOCK:
                self.reply(200, LOG.get(path, []))
        else:
            self.reply(404, {})

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        url = urlparse(self.path)
        if url.path == "/_config":
            config = json.loads(raw)
            with LOCK:
                RECEIVERS[config["path"]] = {
                    "secret": config["secret"],
                    "answers": list(config.get("answers") or [200]),
                    "hang": bool(config.get("hang")),
                }
                LOG.setdefault(config["path"], [])
            self.reply(200, {})
            return
        with LOCK:
            receiver = RECEIVERS.get(url.path)
        if receiver is None:
            self.reply(404, {"detail": "no receiver here"})
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        entry = {
            "webhook_id": headers.get("webhook-id"),
            "timestamp": headers.get("webhook-timestamp"),
            "body": raw.decode("utf-8", "replace"),
            "verified": False,
            "error": None,
            "status": None,
        }
        try:
            Webhook(receiver["secret"]).verify(raw, headers)
            entry["verified"] = True
        except WebhookVerificationError as e:
            entry["error"] = str(e)
        with LOCK:
            answers = receiver["answers"]
            status = answers.pop(0) if len(answers) > 1 else answers[0]
            if not receiver["hang"]:
                entry["status"] = status
            LOG[url.path].append(entry)
        if receiver["hang"]:
            time.sleep(30)
            return
        self.reply(status, {"received": entry["webhook_id"]})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()


if __name__ == "__main__":
    main()

"""moto's server, made atomic for DynamoDB, on a loopback port.

Stock moto_server is not atomic under concurrency: two conditional writes with the same expected
version can both win (FACTS.md: 2-3 winners in 7 of 100 rounds of 50). Serialising the DynamoDB
requests (those whose X-Amz-Target starts with "DynamoDB") under one lock makes every
ConditionExpression and TransactWriteItems decide alone, as DynamoDB does, while SQS long polls
and S3 transfers stay concurrent.

Usage: python moto_server.py [PORT] [--exit-with-parent]\n(0 picks a free port; the chosen one is printed to stdout)
"""

import os
import sys
import threading

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

_dynamodb_lock = threading.Lock()


class AtomicDynamoDB:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
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


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    if "--exit-with-parent" in sys.argv:
        threading.Thread(target=exit_with_parent, daemon=True).start()
    app = AtomicDynamoDB(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", port, app, threaded=True)
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""FAKE routed origin that echoes requests, like a debug endpoint or an error page that quotes
what it got: the answer's body is the request line and every header as received, and the
header x-echo-authorization repeats the Authorization header. Each request is also one JSON
line on stdout (method, target, headers as a list, duplicates kept) before it is answered, so a
test can see what the gateway forwarded.

usage: echo_origin.py PORT CERT KEY
"""

import json
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_any(self):
        headers = [[k, v] for k, v in self.headers.items()]
        sys.stdout.write(
            json.dumps({"method": self.command, "target": self.path, "headers": headers}) + "\n"
        )
        sys.stdout.flush()
        body = (self.requestline + "\n" + "".join(f"{k}: {v}\n" for k, v in headers)).encode()
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        auth = self.headers.get("authorization")
        if auth:
            self.send_header("x-echo-authorization", auth)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = handle_any

    def log_message(self, *args):
        pass


def main():
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    server = ThreadingHTTPServer(("0.0.0.0", port), Echo)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    sys.stdout.write(json.dumps({"listening": port}) + "\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()

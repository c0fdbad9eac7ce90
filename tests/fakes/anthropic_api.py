#!/usr/bin/env python3
"""FAKE Anthropic API: a local HTTPS stand-in for api.anthropic.com, for end-to-end tests of
the real Claude Code binary in a bottle. Anthropic's servers cannot be reached from the test
machine, so this answers what Claude Code asks at start-up and speaks the Messages API, streamed
(server-sent events) or not.

Every request is one JSON line on stdout (method, path, headers, and for /v1/messages the
last user turn and the tools offered), so a test can check which credential arrived.

Answers to /v1/messages, from the last user turn:
  - a tool_result: "STAND-IN GOT TOOL RESULT: <its text>"
  - text containing ASK-APPROVAL and a tool named mcp__supervise__request_approval offered:
    a tool_use of that tool (action "deploy the stand-in", details "asked by the fake API")
  - text containing RUN-BASH and the Bash tool offered: a tool_use of Bash (a harmless echo),
    which Claude Code asks permission for unless it skips permissions
  - anything else: "STAND-IN ANSWER: hello from the fake Messages API"

usage: anthropic_api.py PORT CERT KEY
"""

import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

APPROVAL_TOOL = "mcp__supervise__request_approval"
ANSWER = "STAND-IN ANSWER: hello from the fake Messages API"
LOCK = threading.Lock()
COUNTER = [0]


def log(entry):
    with LOCK:
        sys.stdout.write(json.dumps(entry) + "\n")
        sys.stdout.flush()


def text_of(content):
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if block.get("type") == "text":
            parts.append(block.get("text", ""))
        elif block.get("type") == "tool_result":
            parts.append(text_of(block.get("content")))
    return "\n".join(parts)


def last_user_turn(messages):
    """The last message with role user (Claude Code 2.1 may put a system message after it)."""
    for m in reversed(messages or []):
        if m.get("role") == "user":
            return m
    return {}


def next_id(prefix):
    with LOCK:
        COUNTER[0] += 1
        return f"{prefix}_fake{COUNTER[0]:06d}"


def decide(body):
    """The content blocks of the answer to one Messages request."""
    turn = last_user_turn(body.get("messages"))
    content = turn.get("content")
    blocks = content if isinstance(content, list) else []
    results = [b for b in blocks if b.get("type") == "tool_result"]
    tools = [t.get("name") for t in body.get("tools") or []]
    if results:
        return [{"type": "text", "text": "STAND-IN GOT TOOL RESULT: " + text_of(results[-1].get("content"))}]
    if "ASK-APPROVAL" in text_of(content) and APPROVAL_TOOL in tools:
        return [
            {"type": "text", "text": "Asking a human first."},
            {
                "type": "tool_use",
                "id": next_id("toolu"),
                "name": APPROVAL_TOOL,
                "input": {"action": "deploy the stand-in", "details": "asked by the fake API"},
            },
        ]
    if "RUN-BASH" in text_of(content) and "Bash" in tools:
        return [
            {"type": "text", "text": "Running a command first."},
            {
                "type": "tool_use",
                "id": next_id("toolu"),
                "name": "Bash",
                "input": {"command": "touch /tmp/bash-ran && echo bash-ran-$((6*7))", "description": "Leave a marker"},
            },
        ]
    return [{"type": "text", "text": ANSWER}]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return {}

    def entry(self, body):
        e = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
        }
        if self.path.startswith("/v1/messages"):
            turn = last_user_turn(body.get("messages"))
            e["model"] = body.get("model")
            e["stream"] = bool(body.get("stream"))
            e["user_text"] = text_of(turn.get("content"))[-400:]
            e["tools"] = [t.get("name") for t in body.get("tools") or []]
            e["roles"] = [m.get("role") for m in body.get("messages") or []]
        return e

    def send_json(self, status, value):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        log(self.entry({}))
        if self.path.startswith("/api/hello"):
            self.send_json(200, {"message": "hello"})
        else:
            self.send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "the fake API has no " + self.path}})

    def do_HEAD(self):
        log(self.entry({}))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        body = self.read_body()
        log(self.entry(body))
        if self.path.startswith("/v1/messages/count_tokens"):
            self.send_json(200, {"input_tokens": 10})
        elif self.path.startswith("/v1/messages"):
            blocks = decide(body)
            if body.get("stream"):
                self.stream(body, blocks)
            else:
                self.send_json(200, self.message(body, blocks))
        else:
            self.send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "the fake API has no " + self.path}})

    def message(self, body, blocks):
        stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
        return {
            "id": next_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": body.get("model") or "claude-fake",
            "content": blocks,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 10},
        }

    def stream(self, body, blocks):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        msg = self.message(body, [])
        stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
        msg["stop_reason"] = None
        self.event("message_start", {"type": "message_start", "message": msg})
        for i, b in enumerate(blocks):
            if b["type"] == "text":
                self.event("content_block_start", {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})
                words = b["text"].split(" ")
                for j, w in enumerate(words):
                    piece = w if j == 0 else " " + w
                    self.event("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": piece}})
            else:
                self.event("content_block_start", {"type": "content_block_start", "index": i, "content_block": {"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}})
                self.event("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": json.dumps(b["input"])}})
            self.event("content_block_stop", {"type": "content_block_stop", "index": i})
        self.event("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": 10}})
        self.event("message_stop", {"type": "message_stop"})
        self.chunk(b"")

    def event(self, name, data):
        self.chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

    def chunk(self, data):
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def main():
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    log({"listening": port})
    server.serve_forever()


if __name__ == "__main__":
    main()

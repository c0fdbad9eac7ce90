//! Attacks on credential injection from inside a real bottle, against a FAKE routed origin
//! that echoes what it receives (tests/fakes/echo_origin.py): the token must go only to the
//! route's own host, under its own name, and never come back to the agent.

mod common;

use common::docker::{Bottle, FakeOrigin, unique_slug};
use common::{Scratch, stderr, stdout};

const HOST: &str = "secure.test";

fn unique_token(tag: &str) -> String {
    format!("REAL-{tag}-{}-0b7c1e", std::process::id())
}

/// A bottle routing `secure.test:8443` with `token`, and the echo origin behind it.
fn setup<'s>(scratch: &'s Scratch, tag: &str, token: &str) -> (Bottle<'s>, FakeOrigin) {
    common::pki::origin(scratch.path(), HOST);
    scratch.write_config(&common::docker::config("").replace(
        "allow = [\"api.example.com\"]",
        &format!(
            "allow = [\"{HOST}\"]\nallow_private = [\"{HOST}:8443\"]\nupstream_ca = \"origin-ca.pem\"\n\
             [[bottles.demo.routes]]\nhost = \"{HOST}\"\ntoken_env = \"EXAMPLE_TOKEN\""
        ),
    ));
    let bottle = Bottle::up(scratch, &unique_slug(tag), &[("EXAMPLE_TOKEN", token)]);
    let origin = FakeOrigin::start(scratch, &bottle.slug, HOST, "echo_origin.py", 8443);
    (bottle, origin)
}

/// Sends `request` (with `{TOKEN}` replaced by the agent's placeholder) through the gateway's
/// tunnel to secure.test:8443 as raw bytes, so headers go exactly as written; prints the answer.
const RAW: &str = r#"
import os, socket, ssl, sys
proxy = os.environ["HTTPS_PROXY"].split("//", 1)[1].rstrip("/")
host, port = proxy.rsplit(":", 1)
s = socket.create_connection((host, int(port)))
s.sendall(b"CONNECT secure.test:8443 HTTP/1.1\r\nHost: secure.test:8443\r\n\r\n")
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(1)
t = ssl.create_default_context().wrap_socket(s, server_hostname="secure.test")
req = sys.argv[1].replace("{TOKEN}", os.environ["EXAMPLE_TOKEN"]).replace("\\r\\n", "\r\n")
t.sendall(req.encode())
out = b""
while True:
    b = t.recv(65536)
    if not b:
        break
    out += b
print(out.decode(errors="replace"))
"#;

fn raw(bottle: &Bottle<'_>, request: &str) -> String {
    let script = format!(
        "python3 -c '{}' '{}'",
        RAW.replace('\'', "'\\''"),
        request.replace('\'', "'\\''")
    );
    let out = bottle.sh(&script);
    format!("{}{}", stdout(&out), stderr(&out))
}

/// What the origin received whose target is `target`.
fn received(origin: &FakeOrigin, target: &str) -> Vec<serde_json::Value> {
    origin
        .requests()
        .into_iter()
        .filter(|r| r["target"] == target)
        .collect()
}

#[test]
fn a_routed_request_naming_another_host_never_leaves_with_the_token() {
    let token = unique_token("host");
    let scratch = Scratch::new();
    let (bottle, origin) = setup(&scratch, "rhost", &token);

    // The attack from the issue: absolute form naming the route, Host naming another site.
    let out = bottle.sh(
        "curl -sS -o /dev/null -w '%{http_code}' --request-target https://secure.test:8443/absolute \
         -H 'Host: evil.example' -H \"Authorization: Bearer $EXAMPLE_TOKEN\" https://secure.test:8443/absolute",
    );
    assert_eq!(stdout(&out), "421", "{}", stderr(&out));
    // Two Host headers, the first one right.
    let answer = raw(
        &bottle,
        "GET /duplicate HTTP/1.1\\r\\nHost: secure.test:8443\\r\\nHost: evil.example\\r\\n\
         Authorization: Bearer {TOKEN}\\r\\nConnection: close\\r\\n\\r\\n",
    );
    assert!(answer.starts_with("HTTP/1.1 421"), "{answer}");
    // Origin form with only another Host.
    let answer = raw(
        &bottle,
        "GET /other HTTP/1.1\\r\\nHost: evil.example\\r\\nAuthorization: Bearer {TOKEN}\\r\\n\
         Connection: close\\r\\n\\r\\n",
    );
    assert!(answer.starts_with("HTTP/1.1 421"), "{answer}");

    // Positive control: a plain request arrives, with the real token and the route's name.
    let answer = raw(
        &bottle,
        "GET /good HTTP/1.1\\r\\nHost: SECURE.test:8443\\r\\nAuthorization: Bearer {TOKEN}\\r\\n\
         Connection: close\\r\\n\\r\\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let good = received(&origin, "/good");
    assert_eq!(good.len(), 1, "{}", origin.log());
    let headers = good[0]["headers"].to_string();
    assert!(headers.contains(&format!("Bearer {token}")), "{headers}");
    assert!(
        headers.contains("\"secure.test:8443\""),
        "Host is the route's: {headers}"
    );

    // The gateway answers only after the origin has answered, so anything it forwarded would
    // be in the origin's log by now: none of the refused requests is.
    for target in [
        "/absolute",
        "https://secure.test:8443/absolute",
        "/duplicate",
        "/other",
    ] {
        assert!(
            received(&origin, target).is_empty(),
            "{target} reached the origin"
        );
    }
    assert!(!origin.log().contains("evil.example"), "{}", origin.log());
    let logs = stdout(
        &bottle
            .scratch
            .run(&["logs", &bottle.slug, "--daemon", "gateway"]),
    );
    assert!(logs.contains("\"host-mismatch\""), "{logs}");
    assert!(logs.contains("\"host-duplicate\""), "{logs}");
}

#[test]
fn a_token_the_routed_host_echoes_comes_back_masked() {
    let token = unique_token("echo");
    let scratch = Scratch::new();
    let (bottle, origin) = setup(&scratch, "recho", &token);
    let out = bottle.sh(
        "curl -sS -D - -H \"Authorization: Bearer $EXAMPLE_TOKEN\" https://secure.test:8443/echo",
    );
    let seen = format!("{}{}", stdout(&out), stderr(&out));
    // Positive control: the origin got the real token, so its echo carried it.
    let echo = received(&origin, "/echo");
    assert_eq!(echo.len(), 1, "{}", origin.log());
    assert!(echo[0]["headers"].to_string().contains(&token));
    // The agent sees the answer with the token masked, in the body and in the header.
    assert!(seen.contains("HTTP/1.1 200"), "{seen}");
    assert!(!seen.contains(&token), "the real token came back: {seen}");
    assert!(
        seen.to_ascii_lowercase()
            .contains("x-echo-authorization: bearer [redacted]"),
        "{seen}"
    );
    assert!(
        seen.contains("authorization: Bearer [REDACTED]")
            || seen.contains("Authorization: Bearer [REDACTED]"),
        "{seen}"
    );
    let logs = stdout(
        &bottle
            .scratch
            .run(&["logs", &bottle.slug, "--daemon", "gateway"]),
    );
    assert!(logs.contains("token-echo-redacted"), "{logs}");
    assert!(!logs.contains(&token), "the log holds the token");
}

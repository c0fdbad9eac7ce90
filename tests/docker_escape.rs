//! Escape probes, run from inside a real agent, aimed only at addresses on this machine: the
//! host's own addresses, its loopback, the engine's bridges, and bottles this test made.
//! Every probe that must fail has a positive control showing the probe itself works.

mod common;
use common::docker::{Bottle, docker, docker_ok, scratch_with, unique_slug};
use common::{stderr, stdout};
use std::net::{TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A TCP listener on every host address that counts the connections it accepts.
struct HostListener {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl HostListener {
    fn on(addr: &str) -> Self {
        let l = TcpListener::bind((addr, 0)).expect("bind host listener");
        let port = l.local_addr().expect("addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                count.fetch_add(1, Ordering::SeqCst);
                drop(conn);
            }
        });
        Self { port, accepted }
    }
}

/// The host's own non-loopback IPv4 addresses that are not the engine's bridges.
fn host_addresses() -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .expect("ip");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let iface = w.nth(1)?;
            let addr = w.nth(1)?.split('/').next()?.to_owned();
            let ours = iface == "lo"
                || iface == "docker0"
                || iface.starts_with("br-")
                || iface.starts_with("veth");
            (!ours).then_some(addr)
        })
        .collect()
}

/// Runs a TCP connect from inside the agent: "open", "refused" (reached, nothing there) or
/// "unreachable" (no path: timeout, no route, network unreachable).
fn tcp_probe(bottle: &Bottle<'_>, ip: &str, port: u16) -> String {
    let script = format!(
        "out=$(timeout 4 bash -c 'exec 3<>/dev/tcp/{ip}/{port}' 2>&1); rc=$?; \
         if [ $rc -eq 0 ]; then echo open; \
         elif echo \"$out\" | grep -q refused; then echo refused; \
         else echo unreachable; fi"
    );
    let out = bottle.sh(&script);
    stdout(&out).trim().to_owned()
}

#[test]
fn the_agent_is_sealed_from_the_host_and_has_no_route() {
    let scratch = scratch_with("");
    let bottle = Bottle::up(&scratch, &unique_slug("seal"), &[]);

    // No default route at all.
    let routes = stdout(&bottle.sh("cat /proc/net/route"));
    assert!(routes.lines().count() >= 2, "route table read: {routes}");
    assert!(
        !routes
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some("00000000")),
        "the agent has a default route:\n{routes}"
    );

    let listener = HostListener::on("0.0.0.0");
    let loopback = HostListener::on("127.0.0.1");
    let internal_gw = docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Gateway}}",
        &format!("bottle-{}-int", bottle.slug),
    ]);
    let mut targets = host_addresses();
    assert!(
        !targets.is_empty(),
        "this host has no non-loopback address to probe"
    );
    targets.push(internal_gw.trim().to_owned()); // the internal network's gateway
    targets.push("172.17.0.1".into()); // docker0: the usual host gateway

    for ip in &targets {
        assert_eq!(
            tcp_probe(&bottle, ip, listener.port),
            "unreachable",
            "host address {ip}"
        );
        for curl in ["curl -f", "curl -f --noproxy '*'"] {
            let out = bottle.sh(&format!(
                "{curl} -sS --max-time 4 http://{ip}:{}/",
                listener.port
            ));
            assert_ne!(
                out.status.code(),
                Some(0),
                "{curl} to {ip} succeeded: {}",
                stdout(&out)
            );
        }
    }
    // Host loopback: 127.0.0.1 in the agent is the agent's own.
    assert_ne!(tcp_probe(&bottle, "127.0.0.1", loopback.port), "open");
    assert_eq!(
        listener.accepted.load(Ordering::SeqCst),
        0,
        "the host listener was reached"
    );
    assert_eq!(
        loopback.accepted.load(Ordering::SeqCst),
        0,
        "host loopback was reached"
    );

    // Positive control: the same host listener is reachable from a plain container.
    let control = docker_ok(&[
        "run",
        "--rm",
        common::docker::TEST_AGENT,
        "sh",
        "-c",
        &format!(
            "curl -sS --max-time 4 -o /dev/null -w '%{{http_code}}' http://172.17.0.1:{}/ ; true",
            listener.port
        ),
    ]);
    let _ = control;
    assert!(
        listener.accepted.load(Ordering::SeqCst) >= 1,
        "control: a normal container reaches the host listener, so the probe works"
    );
}

#[test]
fn no_udp_reaches_the_host() {
    let scratch = scratch_with("");
    let bottle = Bottle::up(&scratch, &unique_slug("udp"), &[]);
    let sock = UdpSocket::bind("0.0.0.0:0").expect("udp");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let port = sock.local_addr().expect("addr").port();
    for ip in host_addresses()
        .iter()
        .chain(["172.17.0.1".to_owned()].iter())
    {
        bottle.sh(&format!("echo escape > /dev/udp/{ip}/{port}"));
    }
    let mut buf = [0u8; 64];
    assert!(
        sock.recv_from(&mut buf).is_err(),
        "a UDP datagram from the agent reached the host"
    );
}

#[test]
fn no_dns_answer_for_a_name_the_host_resolves() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let name = rt
        .block_on(bottle_tui::backend::docker::dns_probe::pick_name())
        .expect("this test needs a name the host itself resolves (set BOTTLE_TUI_PROBE_NAME)");
    let scratch = scratch_with("");
    let bottle = Bottle::up(&scratch, &unique_slug("dns"), &[]);
    let out = bottle.sh(&format!("getent hosts {name}"));
    assert_eq!(
        out.status.code(),
        Some(2),
        "`getent hosts {name}` answered: {}",
        stdout(&out)
    );
    // Asking the engine's embedded resolver directly gets no answer either.
    let out = bottle.sh(&format!("dig +short +time=2 +tries=1 @127.0.0.11 {name}"));
    assert!(
        stdout(&out).trim().is_empty()
            || !stdout(&out)
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit()),
        "dig answered: {}",
        stdout(&out)
    );
    // Control: the in-bottle names do resolve.
    let out = bottle.sh("getent hosts gateway");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

fn serve_git_daemon(container: &str, listen: &str, port: u16) {
    // Backgrounded inside the container (init reaps it); `docker exec -d` loses it.
    docker_ok(&[
        "exec",
        container,
        "sh",
        "-c",
        &format!(
            "git daemon --reuseaddr --listen={listen} --port={port} --base-path=/tmp /tmp </dev/null >/dev/null 2>&1 &"
        ),
    ]);
    // Listening once /proc/net/tcp has this address:port (the address little-endian hex) in
    // state 0A (LISTEN); the bundle's own daemons may hold the port on another address.
    let ip: std::net::Ipv4Addr = listen.parse().expect("an IPv4 listen address");
    let [a, b, c, d] = ip.octets();
    let local = format!("{d:02X}{c:02X}{b:02X}{a:02X}:{port:04X}");
    let probe = format!("awk '$4 == \"0A\" {{ print $2 }}' /proc/net/tcp | grep -qx '{local}'");
    common::eventually("git daemon listens", Duration::from_secs(30), || {
        docker(&["exec", container, "sh", "-c", &probe])
            .status
            .success()
            .then_some(())
    });
}

#[test]
fn the_agent_reaches_only_its_own_bundle_and_only_its_entry_ports() {
    let scratch = scratch_with("");
    let a = Bottle::up(&scratch, &unique_slug("pa"), &[]);
    let b = Bottle::up(&scratch, &unique_slug("pb"), &[]);

    // In each bundle, an entry port on every address and an admin-style port on loopback.
    for bundle in [a.bundle(), b.bundle()] {
        serve_git_daemon(&bundle, "0.0.0.0", 9418);
        serve_git_daemon(&bundle, "127.0.0.1", 8889);
    }
    let a_bundle = a.ip_of(&a.bundle());
    let b_bundle = b.ip_of(&b.bundle());
    let b_agent = b.ip_of(&b.agent());

    // Own bundle: the entry port is open (positive control), the loopback-bound one is not.
    assert_eq!(tcp_probe(&a, &a_bundle, 9418), "open");
    assert_eq!(
        tcp_probe(&a, "gateway", 9418),
        "open",
        "by its in-bottle name"
    );
    for port in [8889, 22, 80, 443, 2375, 9000] {
        assert_eq!(
            tcp_probe(&a, &a_bundle, port),
            "refused",
            "bundle port {port}"
        );
    }
    // The other bottle: neither its bundle nor its agent is reachable, though B reaches its own.
    assert_eq!(
        tcp_probe(&b, &b_bundle, 9418),
        "open",
        "control: B reaches its own bundle"
    );
    assert_eq!(tcp_probe(&a, &b_bundle, 9418), "unreachable");
    assert_eq!(tcp_probe(&a, &b_agent, 22), "unreachable");
}

#[test]
fn the_agent_has_no_ipv6_but_loopback_and_its_logs_rotate() {
    let scratch = scratch_with("");
    let bottle = Bottle::up(&scratch, &unique_slug("v6"), &[]);
    // The kernel's own tables, read from inside; each line ends with its device.
    let out = bottle.sh(
        "cat /proc/net/if_inet6 && echo --- && cat /proc/net/ipv6_route && echo --- && \
         cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6",
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    let parts: Vec<&str> = text.split("---\n").collect();
    assert_eq!(parts.len(), 3, "{text}");
    // Positive control: eth0 is there to be asked about, and IPv6 is off on it.
    assert_eq!(parts[2].trim(), "1", "IPv6 is on for eth0:\n{text}");
    for (table, body) in [("address", parts[0]), ("route", parts[1])] {
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            let dev = line.split_whitespace().last().unwrap_or_default();
            assert_eq!(dev, "lo", "an IPv6 {table} outside loopback: {line}");
        }
    }
    // Every container of the bottle has its log rotated.
    for c in [bottle.agent(), bottle.bundle()] {
        let cfg = docker_ok(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", &c]);
        let v: serde_json::Value = serde_json::from_str(cfg.trim()).expect("json");
        assert_eq!(v["Type"], "json-file", "{c}: {cfg}");
        assert_eq!(v["Config"]["max-size"], "10m", "{c}: {cfg}");
        assert_eq!(v["Config"]["max-file"], "3", "{c}: {cfg}");
    }
    for n in ["int", "ext"] {
        let net = format!("bottle-{}-{n}", bottle.slug);
        let v6 = docker_ok(&["network", "inspect", "-f", "{{.EnableIPv6}}", &net]);
        assert_eq!(v6.trim(), "false", "{net}");
    }
}

/// A TCP connect from the host with a short timeout: true when something accepted.
fn host_connects(ip: &str, port: u16) -> bool {
    let addr: std::net::SocketAddr = format!("{ip}:{port}").parse().expect("addr");
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

/// The device the host routes `ip` through.
fn route_device(ip: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["-o", "route", "get", ip])
        .output()
        .expect("ip route get");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "dev" {
            return words.next().unwrap_or_default().to_owned();
        }
    }
    text
}

#[test]
fn the_bundles_daemons_answer_on_the_internal_network_only() {
    let scratch = common::Scratch::new();
    let upstream = common::docker::bare_upstream(&scratch);
    scratch.write_config(&common::docker::config(&format!(
        "[[bottles.demo.git]]\nname = \"web\"\nupstream = \"{upstream}\"\n\
         [bottles.demo.supervise]\nenabled = true\n"
    )));
    let bottle = Bottle::up(&scratch, &unique_slug("bind"), &[]);
    let ports = [8888u16, 9418, 8900];
    // Positive control, from the agent: every daemon answers on the bundle's internal address.
    let internal = bottle.ip_of(&bottle.bundle());
    for port in ports {
        assert_eq!(
            tcp_probe(&bottle, &internal, port),
            "open",
            "port {port} inside"
        );
    }
    // From the host, on the bundle's egress address (a bridge of this host): nothing answers.
    let format = format!(
        "{{{{(index .NetworkSettings.Networks \"bottle-{}-ext\").IPAddress}}}}",
        bottle.slug
    );
    let egress = docker_ok(&["inspect", "-f", &format, &bottle.bundle()])
        .trim()
        .to_owned();
    let dev = route_device(&egress);
    assert!(
        dev.starts_with("br-"),
        "{egress} is not on a bridge of this host ({dev})"
    );
    // Positive control for the host side: a listener in the bundle on the egress address is
    // reached, so a refusal below is the daemons' binding and not the path.
    let control = 47_123u16;
    docker_ok(&[
        "exec",
        "-d",
        &bottle.bundle(),
        "sh",
        "-c",
        &format!(
            "exec perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalAddr => \"{egress}\", \
             LocalPort => {control}, Listen => 5, ReuseAddr => 1) or die $!; \
             while (my $c = $s->accept) {{ close $c }}'"
        ),
    ]);
    common::eventually(
        &format!("the control listener on {egress}:{control} reached from the host"),
        Duration::from_secs(20),
        || host_connects(&egress, control).then_some(()),
    );
    for port in ports {
        assert!(
            !host_connects(&egress, port),
            "the host reached the bundle's port {port} on the egress bridge ({egress})"
        );
    }
}

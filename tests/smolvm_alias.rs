//! Loopback alias allocation against the real Docker engine: bundles publishing on aliases,
//! the lowest free one chosen, a freed one reused, pool exhaustion a clear error. The macOS
//! rules are exercised here on Linux, where every 127/8 address is already on `lo`.

mod common;
use bottle_tui::backend::docker::DockerBackend;
use bottle_tui::backend::smolvm::{Platform, alias};
use bottle_tui::backend::{Backend, ContainerSpec, label, role};
use common::docker::unique_slug;
use std::net::{IpAddr, Ipv4Addr};

fn a(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, n)
}

/// A running stand-in bundle (the real bundle image) publishing one port on `on`.
async fn bundle(backend: &DockerBackend, name: &str, slug: &str, on: Ipv4Addr) {
    let spec = ContainerSpec {
        name: name.to_owned(),
        image: "bottle-bundle:latest".into(),
        labels: [
            (label::SLUG.to_owned(), slug.to_owned()),
            (label::ROLE.to_owned(), role::BUNDLE.to_owned()),
        ]
        .into(),
        network: "bridge".into(),
        publish: vec![(IpAddr::V4(on), 8888)],
        unprivileged: true,
        ..Default::default()
    };
    backend
        .create_container(&spec)
        .await
        .expect("create bundle");
    backend.start_container(name).await.expect("start bundle");
}

#[test]
fn aliases_are_allocated_lowest_free_first_and_reused() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let backend = DockerBackend::connect().await.expect("engine");
        let slug = unique_slug("alias");
        let name = |n: u8| format!("{slug}-b{n}");
        let mac = Platform::MacOs;
        let result = async {
            assert_eq!(
                alias::allocate(&backend, Platform::Linux, "x").await?,
                a(16),
                "Linux gets its own alias too (127.0.0.1 would be shared by every bottle)"
            );
            assert_eq!(
                alias::in_use(&backend).await?,
                Vec::<Ipv4Addr>::new(),
                "a clean engine holds no alias"
            );
            assert_eq!(alias::allocate(&backend, mac, "x").await?, a(16));

            bundle(&backend, &name(16), &slug, a(16)).await;
            // Published on the alias alone.
            let info = backend
                .inspect_container(&name(16))
                .await?
                .expect("running");
            assert!(
                info.ports
                    .iter()
                    .all(|p| p.host_ip == Some(IpAddr::V4(a(16)))),
                "{:?}",
                info.ports
            );
            assert_eq!(alias::allocate(&backend, mac, "x").await?, a(17));
            bundle(&backend, &name(17), &slug, a(17)).await;
            assert_eq!(alias::allocate(&backend, mac, "x").await?, a(18));

            // Freed: the lowest comes back.
            backend.remove_container(&name(16)).await?;
            assert_eq!(alias::allocate(&backend, mac, "x").await?, a(16));

            // Exhausted: every alias held.
            for n in (16..=31).filter(|n| *n != 17) {
                bundle(&backend, &name(n), &slug, a(n)).await;
            }
            assert_eq!(alias::in_use(&backend).await?.len(), 16);
            let err = alias::allocate(&backend, mac, "demo")
                .await
                .expect_err("pool exhausted");
            let msg = format!("{err:#}");
            assert!(
                msg.contains("cannot give demo a loopback alias") && msg.contains("all 16"),
                "{msg}"
            );

            // A stopped bundle does not hold its alias.
            backend
                .stop_container(&name(20), std::time::Duration::from_secs(1))
                .await?;
            assert_eq!(alias::allocate(&backend, mac, "x").await?, a(20));
            Ok::<(), color_eyre::Report>(())
        }
        .await;
        for n in 16..=31 {
            let _ = backend.remove_container(&name(n)).await;
        }
        result.expect("alias allocation");
    });
}

//! [`Backend`] over bollard.

use crate::backend::*;
use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, HostConfigLogConfig, Ipam, IpamConfig,
    Mount, MountType, NetworkConnectRequest, NetworkCreateRequest, NetworkingConfig, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, EventsOptions, InspectContainerOptions,
    ListContainersOptions, ListNetworksOptions, ListVolumesOptions, LogsOptions,
    RemoveContainerOptions, StopContainerOptions, UploadToContainerOptions,
};
use color_eyre::eyre::{Result, WrapErr, bail, eyre};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Clone)]
pub struct DockerBackend {
    docker: Docker,
}

impl DockerBackend {
    /// The container's CPU and memory, about once a second (see [`super::stats`]).
    pub fn usage(&self, container: &str) -> BoxStream<'static, Result<super::stats::Usage>> {
        super::stats::stream(&self.docker, container)
    }
}

/// Rotation of every container's log (json-file): at most 3 × 10 MB per container.
pub const LOG_MAX_SIZE: &str = "10m";
pub const LOG_MAX_FILES: &str = "3";

impl DockerBackend {
    pub async fn connect() -> Result<Self> {
        Ok(Self {
            docker: super::connect().await?,
        })
    }

    pub fn client(&self) -> &Docker {
        &self.docker
    }
}

fn is_not_found(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// "not modified": already stopped / already started.
fn is_not_modified(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 304,
            ..
        }
    )
}

fn label_filter(labels: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_owned(),
        labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    )])
}

fn to_labels(map: Option<HashMap<String, String>>) -> Labels {
    map.unwrap_or_default().into_iter().collect()
}

impl DockerBackend {
    /// Every IPv4/IPv6 subnet the engine's networks use.
    async fn used_subnets(&self) -> Result<Vec<ipnet::IpNet>> {
        let networks = self
            .docker
            .list_networks(None::<ListNetworksOptions>)
            .await
            .wrap_err("cannot list the engine's networks")?;
        Ok(networks
            .iter()
            .filter_map(|n| n.ipam.as_ref()?.config.as_ref())
            .flatten()
            .filter_map(|c| c.subnet.as_deref()?.parse().ok())
            .collect())
    }
}

#[async_trait]
impl Backend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn image_present(&self, image: &str) -> Result<bool> {
        super::image_present(&self.docker, image).await
    }

    async fn create_network(&self, spec: &NetworkSpec) -> Result<()> {
        let pool = super::subnets::pool().map_err(|e| eyre!(e))?;
        let mut last = None;
        // Another process may take the same free subnet between our look and our create, and
        // the engine may not list it yet: skip every subnet refused here, look again, retry.
        let mut refused: Vec<ipnet::IpNet> = Vec::new();
        for attempt in 0..16u64 {
            let mut used = self.used_subnets().await?;
            used.extend(refused.iter().copied());
            let Some(reservation) = super::subnets::reserve(pool, &used) else {
                bail!(
                    "cannot create network {}: no free /{} left in {pool} (set {} to another private range)",
                    spec.name,
                    super::subnets::PREFIX,
                    super::subnets::POOL_ENV
                );
            };
            let request = NetworkCreateRequest {
                name: spec.name.clone(),
                internal: Some(spec.internal),
                driver: Some("bridge".into()),
                ipam: Some(Ipam {
                    config: Some(vec![IpamConfig {
                        subnet: Some(reservation.0.to_string()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                // `internal` alone still gives the host an address on the bridge, which the
                // containers can reach (and through it every host address). No address, no
                // path to the host.
                options: spec.internal.then(|| {
                    HashMap::from([(
                        "com.docker.network.bridge.inhibit_ipv4".to_owned(),
                        "true".to_owned(),
                    )])
                }),
                labels: Some(spec.labels.clone().into_iter().collect()),
                // The seal is IPv4: no IPv6 on bottle networks, whatever the daemon's default.
                enable_ipv6: Some(false),
                ..Default::default()
            };
            match self.docker.create_network(request).await {
                Ok(_) => return Ok(()),
                Err(e) if e.to_string().contains("overlaps") => {
                    refused.push(ipnet::IpNet::V4(reservation.0));
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(10 * (attempt + 1))).await;
                }
                Err(e) => {
                    return Err(e).wrap_err_with(|| format!("cannot create network {}", spec.name));
                }
            }
        }
        Err(eyre!("{}", last.map(|e| e.to_string()).unwrap_or_default()))
            .wrap_err_with(|| format!("cannot create network {}", spec.name))
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        // A network whose last container was just removed can still report an endpoint for
        // a moment; retry briefly rather than leave it behind.
        let mut last = None;
        for attempt in 0..10u64 {
            match self.docker.remove_network(name).await {
                Ok(()) => return Ok(()),
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
        }
        Err(eyre!("{}", last.map(|e| e.to_string()).unwrap_or_default()))
            .wrap_err_with(|| format!("cannot remove network {name}"))
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<()> {
        // Mount structs, not `host:container:mode` strings, which break on paths with `:`.
        let mounts = spec
            .mounts
            .iter()
            .map(|m| Mount {
                target: Some(m.container.display().to_string()),
                source: Some(m.host.display().to_string()),
                typ: Some(MountType::BIND),
                read_only: Some(m.read_only),
                ..Default::default()
            })
            .collect();
        let shares_netns = spec.network.starts_with("container:");
        let host_config = HostConfig {
            network_mode: Some(spec.network.clone()),
            mounts: Some(mounts),
            // What an agent prints cannot fill the host's disk.
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([
                    ("max-size".to_owned(), LOG_MAX_SIZE.to_owned()),
                    ("max-file".to_owned(), LOG_MAX_FILES.to_owned()),
                ])),
            }),
            // IPv6 off inside: not even a link-local address on the bottle's network (the
            // host's bridge has one). A container sharing another's namespace inherits it.
            sysctls: (!shares_netns).then(|| {
                HashMap::from([
                    ("net.ipv6.conf.all.disable_ipv6".to_owned(), "1".to_owned()),
                    (
                        "net.ipv6.conf.default.disable_ipv6".to_owned(),
                        "1".to_owned(),
                    ),
                ])
            }),
            extra_hosts: Some(
                spec.extra_hosts
                    .iter()
                    .map(|(name, ip)| format!("{name}:{ip}"))
                    .collect(),
            ),
            dns: (!spec.dns.is_empty()).then(|| spec.dns.clone()),
            memory: spec.memory_bytes.map(|m| m as i64),
            pids_limit: spec.pids.map(i64::from),
            nano_cpus: spec.cpus.map(|c| (c * 1e9) as i64),
            cap_drop: spec.unprivileged.then(|| vec!["ALL".to_owned()]),
            cap_add: (!spec.cap_add.is_empty()).then(|| spec.cap_add.clone()),
            port_bindings: (!spec.publish.is_empty()).then(|| {
                spec.publish
                    .iter()
                    .map(|(ip, port)| {
                        let binding = PortBinding {
                            host_ip: Some(ip.to_string()),
                            host_port: Some(String::new()),
                        };
                        (format!("{port}/tcp"), Some(vec![binding]))
                    })
                    .collect()
            }),
            security_opt: spec
                .unprivileged
                .then(|| vec!["no-new-privileges:true".to_owned()]),
            ..Default::default()
        };
        let networking = NetworkingConfig {
            endpoints_config: (!shares_netns).then(|| {
                HashMap::from([(
                    spec.network.clone(),
                    EndpointSettings {
                        aliases: (!spec.network_aliases.is_empty())
                            .then(|| spec.network_aliases.clone()),
                        ..Default::default()
                    },
                )])
            }),
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: spec.entrypoint.clone(),
            cmd: spec.cmd.clone(),
            user: spec.user.clone(),
            working_dir: spec.working_dir.clone(),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(spec.labels.clone().into_iter().collect()),
            exposed_ports: (!spec.publish.is_empty()).then(|| {
                spec.publish
                    .iter()
                    .map(|(_, port)| format!("{port}/tcp"))
                    .collect()
            }),
            host_config: Some(host_config),
            networking_config: Some(networking),
            ..Default::default()
        };
        self.docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(spec.name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .wrap_err_with(|| {
                format!("cannot create container {} from {}", spec.name, spec.image)
            })?;
        Ok(())
    }

    async fn connect_network(
        &self,
        container: &str,
        network: &str,
        aliases: &[String],
    ) -> Result<()> {
        self.docker
            .connect_network(
                network,
                NetworkConnectRequest {
                    container: container.to_owned(),
                    endpoint_config: Some(EndpointSettings {
                        aliases: (!aliases.is_empty()).then(|| aliases.to_vec()),
                        ..Default::default()
                    }),
                },
            )
            .await
            .wrap_err_with(|| format!("cannot connect {container} to network {network}"))
    }

    async fn start_container(&self, name: &str) -> Result<()> {
        match self.docker.start_container(name, None).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_modified(&e) => Ok(()),
            Err(e) => Err(e).wrap_err_with(|| format!("cannot start container {name}")),
        }
    }

    async fn wait_container(&self, name: &str, timeout: Duration) -> Result<i64> {
        let mut wait = self.docker.wait_container(name, None);
        match tokio::time::timeout(timeout, wait.next()).await {
            Err(_) => Err(eyre!(
                "container {name} did not exit within {} s",
                timeout.as_secs()
            )),
            Ok(None) => Err(eyre!(
                "the engine ended the wait for {name} without an exit code"
            )),
            Ok(Some(Ok(r))) => Ok(r.status_code),
            Ok(Some(Err(DockerError::DockerContainerWaitError { code, .. }))) => Ok(code),
            Ok(Some(Err(e))) => Err(e).wrap_err_with(|| format!("waiting for {name} failed")),
        }
    }

    async fn stop_container(&self, name: &str, grace: Duration) -> Result<()> {
        let options = StopContainerOptions {
            t: Some(grace.as_secs() as i32),
            ..Default::default()
        };
        match self.docker.stop_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) || is_not_modified(&e) => Ok(()),
            Err(e) => Err(e).wrap_err_with(|| format!("cannot stop container {name}")),
        }
    }

    async fn remove_container(&self, name: &str) -> Result<()> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // "removal already in progress"
            Err(DockerError::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(e).wrap_err_with(|| format!("cannot remove container {name}")),
        }
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        match self
            .docker
            .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).wrap_err_with(|| format!("cannot remove volume {name}")),
        }
    }

    async fn copy_in(&self, container: &str, dest_dir: &str, tar: Vec<u8>) -> Result<()> {
        self.docker
            .upload_to_container(
                container,
                Some(UploadToContainerOptions {
                    path: dest_dir.to_owned(),
                    ..Default::default()
                }),
                bollard::body_full(tar.into()),
            )
            .await
            .wrap_err_with(|| format!("cannot copy files into {container}:{dest_dir}"))
    }

    async fn read_file(&self, container: &str, path: &str) -> Result<Option<Vec<u8>>> {
        let mut stream = self.docker.download_from_container(
            container,
            Some(DownloadFromContainerOptions {
                path: path.to_owned(),
            }),
        );
        let mut archive = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => archive.extend_from_slice(&bytes),
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => {
                    return Err(e).wrap_err_with(|| format!("cannot read {container}:{path}"));
                }
            }
        }
        let mut tar = tar::Archive::new(archive.as_slice());
        let entries = tar
            .entries()
            .wrap_err_with(|| format!("the engine sent a broken archive of {container}:{path}"))?;
        for entry in entries {
            let mut entry = entry.wrap_err_with(|| {
                format!("the engine sent a broken archive of {container}:{path}")
            })?;
            if entry.header().entry_type().is_file() {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut bytes)
                    .wrap_err_with(|| format!("cannot read {container}:{path}"))?;
                return Ok(Some(bytes));
            }
        }
        Ok(None)
    }

    async fn exec_streaming(
        &self,
        container: &str,
        spec: &ExecSpec,
        sink: &mut (dyn for<'b> FnMut(OutputStream, &'b [u8]) + Send),
    ) -> Result<i64> {
        let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let exec = self
            .docker
            .create_exec(
                container,
                CreateExecOptions {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(spec.cmd.clone()),
                    env: (!env.is_empty()).then_some(env),
                    user: spec.user.clone(),
                    working_dir: spec.working_dir.clone(),
                    ..Default::default()
                },
            )
            .await
            .wrap_err_with(|| format!("cannot run `{}` in {container}", spec.cmd.join(" ")))?;
        let started = self
            .docker
            .start_exec(&exec.id, Some(StartExecOptions::default()))
            .await
            .wrap_err_with(|| format!("cannot start `{}` in {container}", spec.cmd.join(" ")))?;
        if let StartExecResults::Attached { mut output, .. } = started {
            while let Some(item) = output.next().await {
                match item.wrap_err("the exec's output stream broke")? {
                    bollard::container::LogOutput::StdOut { message }
                    | bollard::container::LogOutput::Console { message } => {
                        sink(OutputStream::Stdout, &message)
                    }
                    bollard::container::LogOutput::StdErr { message } => {
                        sink(OutputStream::Stderr, &message)
                    }
                    bollard::container::LogOutput::StdIn { .. } => {}
                }
            }
        }
        let inspect = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .wrap_err("cannot read the exec's exit code")?;
        inspect.exit_code.ok_or_else(|| {
            eyre!(
                "the engine reported no exit code for `{}`",
                spec.cmd.join(" ")
            )
        })
    }

    async fn inspect_container(&self, name: &str) -> Result<Option<ContainerInfo>> {
        let c = match self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => c,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e).wrap_err_with(|| format!("cannot inspect container {name}")),
        };
        let state = c.state.unwrap_or_default();
        let config = c.config.unwrap_or_default();
        let ports = c
            .network_settings
            .as_ref()
            .and_then(|n| n.ports.clone())
            .unwrap_or_default()
            .into_iter()
            .flat_map(|(key, bindings)| {
                let container_port = key
                    .split('/')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                bindings
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(move |b| {
                        Some(PublishedPort {
                            container_port,
                            host_ip: b.host_ip.and_then(|ip| ip.parse().ok()),
                            host_port: b.host_port?.parse().ok()?,
                        })
                    })
            })
            .collect();
        let networks = c
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default()
            .into_iter()
            .map(|(net, ep)| {
                let ip = ep
                    .ip_address
                    .filter(|s| !s.is_empty())
                    .and_then(|s| s.parse().ok());
                (net, ip)
            })
            .collect();
        Ok(Some(ContainerInfo {
            name: c
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned(),
            id: c.id.unwrap_or_default(),
            image: config.image.clone().unwrap_or_default(),
            state: state.status.map_or(ContainerState::Unknown, |s| {
                ContainerState::parse(s.as_ref())
            }),
            exit_code: state.exit_code,
            health_output: state
                .health
                .as_ref()
                .and_then(|h| h.log.as_ref())
                .and_then(|l| l.last())
                .and_then(|r| r.output.clone()),
            health: state
                .health
                .and_then(|h| h.status)
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty() && s != "none"),
            labels: to_labels(config.labels),
            networks,
            created: c.created.unwrap_or_default(),
            started_at: state.started_at.filter(|s| !s.starts_with("0001")),
            finished_at: state.finished_at.filter(|s| !s.starts_with("0001")),
            env: config.env.unwrap_or_default(),
            ports,
        }))
    }

    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<Resource>> {
        let filters = label_filter(labels);
        let (containers, networks, volumes) = tokio::try_join!(
            async {
                self.docker
                    .list_containers(Some(ListContainersOptions {
                        all: true,
                        filters: Some(filters.clone()),
                        ..Default::default()
                    }))
                    .await
                    .wrap_err("cannot list containers")
            },
            async {
                self.docker
                    .list_networks(Some(ListNetworksOptions {
                        filters: Some(filters.clone()),
                    }))
                    .await
                    .wrap_err("cannot list networks")
            },
            async {
                self.docker
                    .list_volumes(Some(ListVolumesOptions {
                        filters: Some(filters.clone()),
                    }))
                    .await
                    .wrap_err("cannot list volumes")
            },
        )?;
        let mut out = Vec::new();
        for c in containers {
            let name = c
                .names
                .and_then(|n| n.into_iter().next())
                .unwrap_or_else(|| c.id.clone().unwrap_or_default());
            out.push(Resource {
                kind: ResourceKind::Container,
                name: name.trim_start_matches('/').to_owned(),
                labels: to_labels(c.labels),
            });
        }
        for n in networks {
            out.push(Resource {
                kind: ResourceKind::Network,
                name: n.name.unwrap_or_default(),
                labels: to_labels(n.labels),
            });
        }
        for v in volumes.volumes.unwrap_or_default() {
            out.push(Resource {
                kind: ResourceKind::Volume,
                name: v.name,
                labels: v.labels.into_iter().collect(),
            });
        }
        Ok(out)
    }

    async fn list_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>> {
        let names: Vec<String> = self
            .list(labels)
            .await?
            .into_iter()
            .filter(|r| r.kind == ResourceKind::Container)
            .map(|r| r.name)
            .collect();
        let mut out = Vec::with_capacity(names.len());
        for info in
            futures_util::future::join_all(names.iter().map(|n| self.inspect_container(n))).await
        {
            // A container removed between list and inspect is simply gone.
            if let Some(info) = info? {
                out.push(info);
            }
        }
        Ok(out)
    }

    fn logs(
        &self,
        container: &str,
        follow: bool,
        tail: Option<usize>,
    ) -> BoxStream<'static, Result<LogLine>> {
        let options = LogsOptions {
            follow,
            stdout: true,
            stderr: true,
            tail: tail.map_or_else(|| "all".to_owned(), |n| n.to_string()),
            ..Default::default()
        };
        let name = container.to_owned();
        self.docker
            .logs(container, Some(options))
            .map(move |item| {
                let item = item.wrap_err_with(|| format!("cannot read the logs of {name}"))?;
                let (stream, bytes) = match item {
                    bollard::container::LogOutput::StdErr { message } => {
                        (OutputStream::Stderr, message)
                    }
                    bollard::container::LogOutput::StdOut { message }
                    | bollard::container::LogOutput::Console { message }
                    | bollard::container::LogOutput::StdIn { message } => {
                        (OutputStream::Stdout, message)
                    }
                };
                Ok(LogLine {
                    stream,
                    text: String::from_utf8_lossy(&bytes)
                        .trim_end_matches('\n')
                        .to_owned(),
                })
            })
            .boxed()
    }

    fn events(&self, label: &str) -> BoxStream<'static, Result<EngineEvent>> {
        let options = EventsOptions {
            filters: Some(HashMap::from([(
                "label".to_owned(),
                vec![label.to_owned()],
            )])),
            ..Default::default()
        };
        self.docker
            .events(Some(options))
            .map(|item| {
                let e = item.wrap_err("the engine's event stream broke")?;
                let kind = match e.typ.map(|t| t.to_string()).as_deref() {
                    Some("network") => ResourceKind::Network,
                    Some("volume") => ResourceKind::Volume,
                    _ => ResourceKind::Container,
                };
                let attributes = e
                    .actor
                    .as_ref()
                    .and_then(|a| a.attributes.clone())
                    .unwrap_or_default();
                Ok(EngineEvent {
                    kind,
                    action: e.action.unwrap_or_default(),
                    name: attributes.get("name").cloned().unwrap_or_default(),
                    labels: attributes.into_iter().collect(),
                })
            })
            .boxed()
    }
}

//! The Docker Engine backend (bollard). Honours `DOCKER_HOST`; negotiates the API version so
//! Docker 20.10 (API 1.41) and current engines both work.

mod client;
pub mod dns_probe;
pub mod images;
pub mod stats;
pub mod subnets;
pub use client::{DockerBackend, LOG_MAX_FILES, LOG_MAX_SIZE};

use bollard::Docker;
use color_eyre::eyre::{Result, WrapErr};
use serde::Serialize;

/// What the engine says about itself.
#[derive(Debug, Clone, Serialize)]
pub struct EngineInfo {
    pub host: String,
    pub server_version: String,
    /// The API version both sides agreed on.
    pub api_version: String,
    pub server_api_version: String,
    pub min_api_version: String,
    pub os: String,
    pub arch: String,
}

pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// Connects to the engine and agrees on an API version.
pub async fn connect() -> Result<Docker> {
    let host = docker_host();
    let docker = Docker::connect_with_defaults().wrap_err_with(|| {
        format!("cannot reach the Docker engine at {host}; is dockerd running (docker info)?")
    })?;
    let docker = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        docker.negotiate_version(),
    )
    .await
    .map_err(|_| color_eyre::eyre::eyre!("the Docker engine at {host} did not answer within 10 s"))?
    .wrap_err_with(|| {
        format!("cannot reach the Docker engine at {host}; is dockerd running (docker info)?")
    })?;
    Ok(docker)
}

pub async fn engine_info(docker: &Docker) -> Result<EngineInfo> {
    let v = docker
        .version()
        .await
        .wrap_err("the Docker engine did not report its version")?;
    Ok(EngineInfo {
        host: docker_host(),
        server_version: v.version.unwrap_or_default(),
        api_version: docker.client_version().to_string(),
        server_api_version: v.api_version.unwrap_or_default(),
        min_api_version: v.min_api_version.unwrap_or_default(),
        os: v.os.unwrap_or_default(),
        arch: v.arch.unwrap_or_default(),
    })
}

/// One label of a local image: None when the image or the label is absent.
pub async fn image_label(docker: &Docker, image: &str, label: &str) -> Result<Option<String>> {
    match docker.inspect_image(image).await {
        Ok(i) => Ok(i
            .config
            .and_then(|c| c.labels)
            .and_then(|mut l| l.remove(label))),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(e).wrap_err_with(|| format!("cannot inspect image {image}")),
    }
}

/// True when the image is present locally (never pulls).
pub async fn image_present(docker: &Docker, image: &str) -> Result<bool> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(true),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(false),
        Err(e) => Err(e).wrap_err_with(|| format!("cannot inspect image {image}")),
    }
}

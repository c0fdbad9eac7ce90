use crate::engine::plan::Plan;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub use crate::wire::gateway::{GatewayConfig, GatewayRoute, TUNNEL_IDLE_SECONDS};

pub fn render(plan: &Plan, placeholders: &BTreeMap<String, String>, ca_dir: &str) -> GatewayConfig {
    GatewayConfig {
        listen: format!(
            "{}:{}",
            super::listen_host(plan, crate::engine::plan::GATEWAY_HOST),
            plan.gateway.listen_port
        ),
        allow: plan.gateway.allow.clone(),
        allow_private: plan.gateway.allow_private.clone(),
        intercept: plan.gateway.intercept.clone(),
        routes: plan
            .gateway
            .routes
            .iter()
            .map(|r| GatewayRoute {
                host: r.host.clone(),
                header: r.header.clone(),
                format: r.format.clone(),
                placeholder: placeholders
                    .get(&r.placeholder_env)
                    .cloned()
                    .unwrap_or_default(),
                token_file: r.token_file_in_bundle.clone(),
            })
            .collect(),
        ca_cert: PathBuf::from(format!("{ca_dir}/ca.pem")),
        ca_key: PathBuf::from(format!("{ca_dir}/ca.key")),
        upstream_proxy: plan.gateway.upstream_proxy.clone(),
        resolve: BTreeMap::new(),
        upstream_roots: plan
            .gateway
            .upstream_ca
            .as_ref()
            .map(|_| PathBuf::from(crate::engine::prepare::in_bundle::UPSTREAM_CA)),
        host_addresses_file: Some(PathBuf::from(format!(
            "{}/host-addresses.json",
            crate::engine::prepare::in_bundle::CONFIG_DIR
        ))),
        tunnel_idle_seconds: TUNNEL_IDLE_SECONDS,
    }
}

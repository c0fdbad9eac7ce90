use crate::engine::plan::GitGatePlan;

pub use crate::wire::git_gate::{GitGateConfig, GitGateRepo};

pub fn render(plan: &GitGatePlan, host: &str) -> GitGateConfig {
    GitGateConfig {
        port: plan.port,
        listen_host: host.to_owned(),
        repos: plan
            .repos
            .iter()
            .map(|r| GitGateRepo {
                name: r.name.to_string(),
                upstream: r.upstream_in_bundle.clone(),
                identity: r.identity_in_bundle.clone(),
                known_hosts: r.known_hosts_in_bundle.clone(),
                push: r.push.clone(),
                protect: r.protect.clone(),
                max_push: r.max_push.0,
            })
            .collect(),
        upstream_ca: plan.upstream_ca_in_bundle.clone(),
    }
}

/// The gate's own pre-receive hook. It delegates to the sidecar binary so the policy is code we
/// test; hooks and config an agent pushes are never installed or run on the gate.
pub fn pre_receive_hook(config_in_bundle: &str) -> String {
    format!(
        "#!/bin/sh\n\
         # Installed by bottle-tui: the gate's branch policy. Agent-supplied hooks never run here.\n\
         exec /usr/local/bin/bottle-sidecar git-gate pre-receive --config {config_in_bundle} \"$@\"\n"
    )
}

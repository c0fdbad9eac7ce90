//! One container's CPU and memory, streamed by the engine about once a second: what the
//! dashboard charts for the selected bottle (one stream, for that bottle only).

use bollard::Docker;
use bollard::models::ContainerStatsResponse;
use color_eyre::eyre::{Result, WrapErr};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

/// A container's use at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Of one core, as `docker stats` counts it (two busy cores: 200).
    pub cpu_percent: f64,
    /// In use, the page cache left out (as `docker stats`).
    pub memory_bytes: u64,
    pub memory_limit: u64,
}

/// The engine's stats stream for `container`, as [`Usage`]s (from the second sample on: CPU
/// is a difference between two).
pub fn stream(docker: &Docker, container: &str) -> BoxStream<'static, Result<Usage>> {
    let name = container.to_owned();
    let mut before: Option<(u64, u64)> = None;
    docker
        .stats(
            container,
            Some(bollard::query_parameters::StatsOptions {
                stream: true,
                one_shot: false,
            }),
        )
        .filter_map(move |item| {
            let out = match item.wrap_err_with(|| format!("cannot read the stats of {name}")) {
                Err(e) => Some(Err(e)),
                Ok(s) => {
                    let now = cpu_times(&s);
                    let usage = match (before, now) {
                        (Some(b), Some(n)) => Some(Ok(usage(&s, b, n))),
                        _ => None,
                    };
                    before = now.or(before);
                    usage
                }
            };
            std::future::ready(out)
        })
        .boxed()
}

/// The container's and the system's CPU time so far, in nanoseconds.
fn cpu_times(s: &ContainerStatsResponse) -> Option<(u64, u64)> {
    let cpu = s.cpu_stats.as_ref()?;
    Some((cpu.cpu_usage.as_ref()?.total_usage?, cpu.system_cpu_usage?))
}

fn usage(s: &ContainerStatsResponse, before: (u64, u64), now: (u64, u64)) -> Usage {
    let cpus = s
        .cpu_stats
        .as_ref()
        .and_then(|c| c.online_cpus)
        .unwrap_or(1)
        .max(1);
    let container = now.0.saturating_sub(before.0) as f64;
    let system = now.1.saturating_sub(before.1) as f64;
    let cpu_percent = if system > 0.0 {
        container / system * f64::from(cpus) * 100.0
    } else {
        0.0
    };
    let mem = s.memory_stats.as_ref();
    // cgroup v2 names the page cache inactive_file, v1 cache; docker stats leaves it out.
    let cache = mem
        .and_then(|m| m.stats.as_ref())
        .and_then(|st| st.get("inactive_file").or_else(|| st.get("cache")).copied())
        .unwrap_or(0);
    Usage {
        cpu_percent,
        memory_bytes: mem.and_then(|m| m.usage).unwrap_or(0).saturating_sub(cache),
        memory_limit: mem.and_then(|m| m.limit).unwrap_or(0),
    }
}

use super::Outcome;
use super::args::ImageBuild;
use crate::backend::docker::images::{self, ImageKind};
use crate::engine::sidecar_bin;

pub fn build(args: ImageBuild) -> Outcome {
    let mut kinds: Vec<ImageKind> = Vec::new();
    if args.bundle {
        kinds.push(ImageKind::Bundle);
    }
    if args.agent {
        kinds.push(ImageKind::Agent);
    }
    if args.test_agent {
        kinds.push(ImageKind::TestAgent);
    }
    if kinds.is_empty() {
        kinds = vec![ImageKind::Bundle, ImageKind::Agent];
    }
    let sidecar = if kinds.contains(&ImageKind::Bundle) {
        Some(sidecar_bin::locate()?)
    } else {
        None
    };
    let rt = super::bottles_cmd::runtime()?;
    rt.block_on(async {
        let docker = crate::backend::docker::connect().await?;
        for kind in kinds {
            eprintln!("building {} ...", kind.tag());
            let started = std::time::Instant::now();
            images::build(&docker, kind, sidecar.as_deref(), |line| {
                eprintln!("  {line}")
            })
            .await?;
            eprintln!(
                "built {} in {:.1} s",
                kind.tag(),
                started.elapsed().as_secs_f64()
            );
            println!("{}", kind.tag());
        }
        Ok::<(), color_eyre::Report>(())
    })?;
    Ok(())
}

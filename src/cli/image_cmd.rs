use super::Outcome;
use super::args::ImageBuild;
use crate::backend::docker::images::ImageKind;
use crate::engine::setup::{self, ClaudeSource};

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
    let claude = ClaudeSource {
        version: args.claude_version,
        package: args.claude_code,
    };
    let rt = super::bottles_cmd::runtime()?;
    rt.block_on(async {
        let docker = crate::backend::docker::connect().await?;
        // Progress goes to stderr; stdout gets one tag per built image, for scripts.
        setup::build(&docker, &kinds, &claude, &mut |line| {
            if line.starts_with("built ")
                || line.starts_with("building ")
                || line.starts_with("Claude Code")
            {
                eprintln!("{line}");
            } else {
                eprintln!("  {line}");
            }
        })
        .await?;
        for kind in &kinds {
            println!("{}", kind.tag());
        }
        Ok::<(), color_eyre::Report>(())
    })?;
    Ok(())
}

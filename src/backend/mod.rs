//! Where bottles run. The engine talks to backends; nothing above the engine touches bollard.

pub mod docker;

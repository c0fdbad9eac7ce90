//! The engine: prepare → launch → provision, reconcile, kill.

pub mod ca;
pub mod doctor;
pub mod placeholders;
pub mod plan;
pub mod prepare;
pub mod render;

pub use plan::Plan;
pub use prepare::prepare;

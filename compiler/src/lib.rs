//! Strata's compiler: frontends that build the IR from trained models, the backends that
//! turn it into deployable code, and the library behind the `strata` command.

pub mod backend;
pub mod bench;
pub mod build;
pub mod compile;
pub mod eval;
pub mod inspect;
pub mod manifest;
pub mod mixed_precision;
pub mod model;
pub mod npy;
pub mod onnx;
pub mod plot;

pub use model::{load_model, LoadError};

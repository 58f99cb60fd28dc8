//! Code-generating backends: they turn a quantized graph into source a device toolchain
//! builds, and are checked bit for bit against the reference runtime.

pub mod c;

//! What the user writes: zones (and, later, cases and lab profiles), validated with exact
//! file:line:column diagnostics.

pub mod diag;
pub mod zone;

//! sshbio: a person's bio behind `ssh bio.example.com`.
//!
//! The folders are the layers, and dependencies point one way:
//!
//! - `server` (accept loop, admission, PROXY protocol, shutdown) ->
//! - `ssh` (the russh handler and per-connection session tasks; the only module that touches
//!   russh) ->
//! - `tui` (one visitor's terminal UI: input decoding, app state, drawing, screen bytes) and
//!   `commands` (the plain-text and `ssh host CMD` output) ->
//! - `content` (the TOML model, sanitising, wrapping, live reload).
//!
//! Beside them: `room` (what all sessions share during a talk, across replicas through Redis),
//! `http` (the web companion page and the operator's endpoints) and `metrics` (the counters
//! every layer records into).

// Panic isolation relies on unwinding: a panic in one visitor's session is caught
// (`catch_unwind` around each session task and connection) and ends that session alone. Built
// with `panic = "abort"`, one visitor's panic would end every session on the server.
#[cfg(panic = "abort")]
compile_error!("sshbio needs panic = \"unwind\": a panic must end one session, not the whole server");

pub mod commands;
pub mod content;
pub mod http;
pub mod metrics;
pub mod room;
pub mod server;
pub mod ssh;
pub mod tui;

//! sshbio: a person's bio behind `ssh bio.example.com`.
//!
//! Dependencies point one way: `server` (accept loop, limits, shutdown) -> `ssh` (the russh
//! handler and per-connection session task; the only module that touches russh) -> `app`
//! (state + update) and `ui` (drawing) -> `content` (the TOML model). `input` turns bytes into
//! events, `terminal` turns frames into bytes; both are pure.

pub mod app;
pub mod cluster;
pub mod commands;
pub mod content;
pub mod http;
pub mod input;
pub mod metrics;
pub mod preview;
pub mod proxy;
pub mod reload;
pub mod room;
pub mod sanitize;
pub mod screen;
pub mod server;
pub mod ssh;
pub mod terminal;
pub mod text;
pub mod ui;
pub mod web;

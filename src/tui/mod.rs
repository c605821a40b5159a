//! One visitor's terminal UI, with no I/O and no SSH: bytes in become [`input::Event`]s, the
//! [`app::App`] state changes, [`ui`] draws a frame and [`screen`] turns it into bytes through
//! our ANSI backend ([`terminal`]). The `ssh` layer feeds it and sends what it returns; it must
//! not import russh, tokio's networking or anything under `server`.

pub mod app;
pub mod input;
pub mod keymap;
pub mod nav;
pub mod preview;
pub mod screen;
pub mod share;
pub mod terminal;
pub mod theme;
pub mod ui;

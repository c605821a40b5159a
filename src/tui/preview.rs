//! `sshbio preview`: the same UI on the local terminal, for the owner to check an edit before
//! publishing it (and as the program an OpenSSH `ForceCommand` baseline runs in the benchmark).
//! Reuses `app`, `ui` and the ANSI backend; only the terminal handling here is local.

use std::io::Write;
use std::sync::Arc;

use ratatui::layout::{Rect, Size};
use ratatui::{Terminal, TerminalOptions, Viewport as RatatuiViewport};
use termina::Terminal as _;

use crate::content::Content;
use crate::tui::app::{App, Effect, Viewport};
use crate::tui::input::{self, Event};
use crate::tui::terminal::{AnsiBackend, ColorDepth, ENTER, MOUSE_OFF, MOUSE_ON, RESTORE};
use crate::tui::ui;

/// Runs the UI on this process's terminal until the user quits.
pub fn run(content: Content, route: Option<&str>) -> std::io::Result<()> {
    let mut tty = termina::PlatformTerminal::new()?;
    tty.enter_raw_mode()?;
    let result = run_in(&mut tty, content, route);
    tty.write_all(RESTORE)?;
    tty.flush()?;
    tty.enter_cooked_mode()?;
    result
}

fn run_in(tty: &mut termina::PlatformTerminal, content: Content, route: Option<&str>) -> std::io::Result<()> {
    let size = tty.get_dimensions()?;
    let (cols, rows) = (size.cols.clamp(1, 500), size.rows.clamp(1, 200));
    let term = std::env::var("TERM").ok();
    let colorterm = std::env::var("COLORTERM").unwrap_or_default();
    let no_color = std::env::var_os("NO_COLOR").is_some();
    let mut env = vec![("COLORTERM", colorterm.as_str())];
    if no_color {
        env.push(("NO_COLOR", "1"));
    }
    let depth = ColorDepth::detect(term.as_deref(), env);
    let options = ui::Options { hyperlinks: term.as_deref().is_some_and(|t| t != "dumb") };
    let mut terminal = Terminal::with_options(
        AnsiBackend::new(Size::new(cols, rows), depth),
        TerminalOptions { viewport: RatatuiViewport::Fixed(Rect::new(0, 0, cols, rows)) },
    )?;
    let mut app = App::new(Arc::new(content), route);
    terminal.backend_mut().write_raw(ENTER);
    terminal.backend_mut().write_raw(MOUSE_ON);
    loop {
        let mut viewport = Viewport::default();
        terminal.draw(|frame| viewport = ui::draw(frame, &app, ui::Look { options, depth }))?;
        app.set_viewport(viewport);
        tty.write_all(&terminal.backend_mut().take_output())?;
        tty.flush()?;
        let event = input::from_termina(tty.read(|_| true)?);
        if let Event::Resize { cols, rows } = event {
            let (cols, rows) = (cols.clamp(1, 500), rows.clamp(1, 200));
            terminal.backend_mut().set_size(Size::new(cols, rows));
            terminal.resize(Rect::new(0, 0, cols, rows))?;
        }
        match app.handle(&event) {
            Some(Effect::Quit) => return Ok(()),
            Some(Effect::SetMouse(on)) => {
                terminal.backend_mut().write_raw(if on { MOUSE_ON } else { MOUSE_OFF })
            }
            Some(Effect::Redraw) | None => {}
        }
    }
}

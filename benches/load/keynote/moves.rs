//! The presenter's moves once the room is in: each press timed to every follower's first byte
//! and to the new section on every follower's screen, with the server's and the clients' CPU.

use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

use super::Plan;
use crate::ctx::Ctx;
use crate::procinfo::{self_cpu_live_s, usage};
use crate::stage::{Outcome, Presenter, Room};
use crate::stats::Dist;

/// How long one move may take to reach everyone.
const MOVE_WAIT: Duration = Duration::from_secs(10);

/// Figures of all moves.
#[derive(Default)]
pub struct Moves {
    /// Per move: key -> the last follower shows the new section (moves that reached everyone).
    all: Dist,
    /// Per follower and move: key -> first byte after the key.
    first: Dist,
    /// Per follower and move: key -> new section on screen.
    screen: Dist,
    /// Per move: key -> the presenter's own screen shows it.
    presenter: Dist,
    /// Moves made.
    moves: usize,
    /// Follower screens that did not show a move within MOVE_WAIT.
    missing: usize,
    /// Followers whose channel closed during the moves.
    closed: usize,
    /// Followers summed over moves (the divisor for per-follower CPU).
    follower_moves: usize,
    /// Server CPU over all moves (live threads), ms.
    server_cpu_ms: f64,
    /// This process's CPU over all moves (live threads), ms.
    client_cpu_ms: f64,
}

impl Moves {
    /// `plan.moves` presses, `plan.move_every` seconds apart, with `followers` in the room.
    pub async fn run(
        presenter: &Presenter,
        room: &mut Room,
        pid: u32,
        marks: &[(String, String)],
        followers: usize,
        plan: &Plan,
    ) -> Result<Self> {
        let mut m = Self::default();
        let mut open = followers;
        for idx in 0..plan.moves {
            tokio::time::sleep(Duration::from_secs_f64(plan.move_every)).await;
            let page = (idx + 1) % marks.len();
            let (title, words) = &marks[page];
            let (c0, k0) = (usage(pid).cpu_live_s, self_cpu_live_s());
            let out = presenter.press(room, idx, (page, title, words), open, MOVE_WAIT).await?;
            // Let the rest of the frames arrive, then read the CPU this move cost.
            tokio::time::sleep(Duration::from_millis(300)).await;
            m.server_cpu_ms += (usage(pid).cpu_live_s - c0) * 1e3;
            m.client_cpu_ms += (self_cpu_live_s() - k0) * 1e3;
            m.add(&out, open);
            open -= out.closed.len().min(open);
        }
        Ok(m)
    }

    fn add(&mut self, out: &Outcome, open: usize) {
        let reached = out.shown.len();
        if reached + out.closed.len() >= open && reached > 0 {
            self.all.record(out.shown.iter().map(|x| x.1).fold(0.0, f64::max));
        }
        self.missing += open.saturating_sub(reached + out.closed.len());
        self.closed += out.closed.len();
        for (first, screen) in &out.shown {
            self.first.record(*first);
            self.screen.record(*screen);
        }
        if let Some(ms) = out.presenter_ms {
            self.presenter.record(ms);
        }
        self.follower_moves += open;
        self.moves += 1;
    }

    fn cpu_us_per_follower(&self) -> f64 {
        self.server_cpu_ms * 1e3 / self.follower_moves.max(1) as f64
    }

    fn client_ms_per_move(&self) -> f64 {
        self.client_cpu_ms / self.moves.max(1) as f64
    }

    pub fn report(&self) {
        println!(
            "  {} moves ({} follower screens missing, {} followers closed):",
            self.moves, self.missing, self.closed
        );
        println!("    key -> every follower shows the new section, ms: {}", self.all.line());
        println!("    per follower, key -> first byte, ms: {}", self.first.line());
        println!("    per follower, key -> new section on screen, ms: {}", self.screen.line());
        println!("    key -> the presenter's own screen shows it, ms: {}", self.presenter.line());
        println!(
            "    server CPU {:.2} ms per move ({:.1} us per follower); client CPU {:.1} ms per move (decryption and vt100 of every follower)",
            self.server_cpu_ms / self.moves.max(1) as f64,
            self.cpu_us_per_follower(),
            self.client_ms_per_move()
        );
    }

    pub fn summarize(&self, ctx: &mut Ctx) {
        ctx.summarize(
            "keynote: presenter key -> every follower's first byte, p50 / max; -> new section on screen, p50 / max",
            format!(
                "{:.1} / {:.1} ms; {:.1} / {:.1} ms over {} moves",
                self.first.p(0.5),
                self.first.max(),
                self.screen.p(0.5),
                self.screen.max(),
                self.moves
            ),
            "—",
        );
        ctx.summarize(
            "keynote: server CPU per move per follower (client CPU per move)",
            format!("{:.1} us ({:.0} ms)", self.cpu_us_per_follower(), self.client_ms_per_move()),
            "<= 25 us",
        );
    }

    pub fn json(&self) -> Value {
        json!({"moves": self.moves, "missing": self.missing, "closed": self.closed,
            "all_followers_ms": self.all.json(), "follower_first_byte_ms": self.first.json(),
            "follower_screen_ms": self.screen.json(), "presenter_screen_ms": self.presenter.json(),
            "server_cpu_ms": self.server_cpu_ms, "server_cpu_us_per_follower_per_move": self.cpu_us_per_follower(),
            "client_cpu_ms": self.client_cpu_ms})
    }
}

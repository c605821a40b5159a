//! Screenshots of the terminal UI in a real terminal emulator: the server binary on a fixture
//! bio, `xterm` under `Xvfb`, the real `ssh`. Each designed size on a dark and a light
//! background (xterm's own colours, so the OSC 11 reply differs), plus the share overlay and
//! the presenter's join card. Saved as `tests/artifacts/tui-*.png` for README.md and for people
//! to look at. Every wait polls until the window shows a settled picture, up to a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Longest any one window may take to show a settled picture.
const SETTLE: Duration = Duration::from_secs(20);

/// Relays a pty between xterm and ssh, so ssh sees a real terminal of xterm's size (and
/// xterm's OSC 11 reply), and also writes whatever arrives on the FIFO `argv[1]` as typed
/// keys: the test's way to press a key in the window.
const RELAY: &str = r#"
import fcntl, os, pty, select, sys, termios, tty
fifo, argv = sys.argv[1], sys.argv[2:]
size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, size)
    os.execvp(argv[0], argv)
tty.setraw(0)
keys = os.open(fifo, os.O_RDWR)
while True:
    ready = select.select([0, fd, keys], [], [])[0]
    if fd in ready:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        os.write(1, data)
    for source in (0, keys):
        if source in ready:
            os.write(fd, os.read(source, 1024))
"#;

/// Background and foreground of each palette: the web page's own colours.
const DARK: (&str, &str) = ("#121417", "#e7e5e1");
const LIGHT: (&str, &str) = ("#fbfaf7", "#1c1d21");

fn require(program: &str) {
    assert!(have(program), "`{program}` is needed for the screenshots; .ci/run installs it");
}

/// An X server of our own.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Self {
        require("Xvfb");
        // A display number nobody uses: from our pid, skipping taken ones.
        let mut n = 200 + std::process::id() % 500;
        while Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            || Path::new(&format!("/tmp/.X{n}-lock")).exists()
        {
            n += 1;
        }
        let display = format!(":{n}");
        let child = Command::new("Xvfb")
            .args([&display, "-screen", "0", "2400x1400x24", "-nolisten", "tcp", "-noreset"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + SETTLE;
        while !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
            assert!(Instant::now() < deadline, "Xvfb did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, display }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // SIGTERM first: Xvfb then removes its lock file and socket (SIGKILL would leave them).
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One xterm window running ssh through the relay.
struct Window<'a> {
    x: &'a Xvfb,
    child: Child,
    title: String,
    fifo: PathBuf,
}

impl<'a> Window<'a> {
    fn open(
        x: &'a Xvfb,
        dir: &Path,
        name: &str,
        (cols, rows): (u16, u16),
        (bg, fg): (&str, &str),
        ssh: &[String],
    ) -> Self {
        require("xterm");
        let title = format!("sshbio-shot-{name}-{}", std::process::id());
        let fifo = dir.join(format!("{name}.keys"));
        let _ = std::fs::remove_file(&fifo);
        assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let relay = dir.join("relay.py");
        std::fs::write(&relay, RELAY).unwrap();
        let child = Command::new("xterm")
            .env("DISPLAY", &x.display)
            .args(["-T", &title, "-geometry", &format!("{cols}x{rows}+0+0"), "-tn", "xterm-256color"])
            // misc-fixed has every glyph the UI uses, and its block elements fill the cell
            // exactly (an anti-aliased TrueType font leaves hairlines between block letters).
            .args(["-fn", "-misc-fixed-medium-r-normal--18-120-100-100-c-90-iso10646-1"])
            .args(["-bg", bg, "-fg", fg, "-b", "8", "+sb"])
            .args(["-xrm", "XTerm*allowColorOps: true", "-e", "python3"])
            .arg(&relay)
            .arg(&fifo)
            .arg("ssh")
            .args(ssh)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
            .spawn()
            .unwrap();
        Self { x, child, title, fifo }
    }

    /// The X window id, once xterm has mapped its window. (`import -window NAME` would wait
    /// for a mouse click when there is no such window yet.)
    fn id(&self) -> Option<String> {
        let out = Command::new("xwininfo")
            .env("DISPLAY", &self.x.display)
            .args(["-name", &self.title])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let id = text.split("Window id: ").nth(1)?.split_whitespace().next()?.to_string();
        id.starts_with("0x").then_some(id)
    }

    /// The window's pixels, or None while it is not mapped yet.
    fn pixels(&self) -> Option<Vec<u8>> {
        let id = self.id()?;
        let out = Command::new("import")
            .env("DISPLAY", &self.x.display)
            .args(["-window", &id, "-depth", "8", "rgb:-"])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        (out.status.success() && !out.stdout.is_empty()).then_some(out.stdout)
    }

    /// Waits until the window shows more than its background and holds still for a moment.
    fn settle(&self, what: &str) {
        let deadline = Instant::now() + SETTLE;
        let mut last: Option<Vec<u8>> = None;
        let mut same_since = Instant::now();
        loop {
            if Instant::now() >= deadline {
                let shot = std::env::temp_dir().join(format!("{}.png", self.title));
                if let Some(id) = self.id() {
                    let _ = Command::new("import")
                        .env("DISPLAY", &self.x.display)
                        .args(["-window", &id])
                        .arg(&shot)
                        .status();
                }
                panic!("{what}: the window never settled; it showed {}", shot.display());
            }
            let Some(now) = self.pixels() else {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            let first = now.get(..3).map(<[u8]>::to_vec).unwrap_or_default();
            let drawn = now.chunks(3).filter(|p| *p != first.as_slice()).count();
            if drawn * 200 < now.len() / 3 {
                // Less than half a percent of the window differs from its corner: not drawn yet.
                last = None;
            } else if last.as_ref() == Some(&now) {
                if same_since.elapsed() >= Duration::from_millis(400) {
                    return;
                }
            } else {
                last = Some(now);
                same_since = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn press(&self, keys: &[u8]) {
        let mut fifo = std::fs::OpenOptions::new().write(true).open(&self.fifo).unwrap();
        fifo.write_all(keys).unwrap();
    }

    fn save(&self, file: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/artifacts").join(file);
        let id = self.id().expect("the window is open");
        let status = Command::new("import")
            .env("DISPLAY", &self.x.display)
            .args(["-window", &id, "-strip", "-define", "png:exclude-chunks=date,time"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success(), "import {file}");
    }
}

impl Drop for Window<'_> {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.fifo);
    }
}

#[test]
fn screenshots_in_xterm_at_every_size_on_dark_and_light() {
    for program in ["ssh", "ssh-keygen", "python3", "mkfifo", "import", "xwininfo"] {
        require(program);
    }
    let dir = temp_dir("screenshots");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/small.toml"),
        dir.join("content.toml"),
    )
    .unwrap();
    let key = dir.join("presenter");
    let made =
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key).status().unwrap();
    assert!(made.success());
    let server = Process::start(
        &dir,
        &[
            "--public-host",
            "bio.example.com",
            "--public-url",
            "https://bio.example.com/",
            "--presenter-keys",
            dir.join("presenter.pub").to_str().unwrap(),
        ],
    );
    let x = Xvfb::start();
    let visitor = ssh_args(server.addr, "visitor");
    let mut presenter =
        vec!["-i".to_string(), key.to_str().unwrap().to_string(), "-o".into(), "IdentitiesOnly=yes".into()];
    presenter.extend(ssh_args(server.addr, "present"));

    for (palette, colours) in [("dark", DARK), ("light", LIGHT)] {
        for size in [(40, 14), (80, 24), (120, 40), (200, 60)] {
            let name = format!("{}x{}-{palette}", size.0, size.1);
            let window = Window::open(&x, &dir, &name, size, colours, &visitor);
            window.settle(&name);
            window.save(&format!("tui-{name}.png"));
        }
        let window = Window::open(&x, &dir, &format!("share-{palette}"), (80, 24), colours, &visitor);
        window.settle("share: the bio");
        window.press(b"s");
        window.settle("share: the overlay");
        window.save(&format!("tui-share-80x24-{palette}.png"));
        drop(window);
        let window = Window::open(&x, &dir, &format!("card-{palette}"), (120, 40), colours, &presenter);
        window.settle("join card: the presenter's screen");
        window.press(b"c");
        window.settle("join card");
        window.save(&format!("tui-join-card-120x40-{palette}.png"));
    }
}

//! The `sshbio` binary: parses flags, sets up logging, loads files, binds, and hands over to
//! `server::run`. Everything else lives in the library so tests drive the same code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use sshbio::server::{Limits, ServerConfig};
use sshbio::ssh::{Settings, hostkey};
use sshbio::{content, server};

/// A person's bio behind `ssh bio.example.com`.
#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the bio over SSH (the default).
    Serve(Box<ServeArgs>),
    /// Validate a content file; prints file:line:column errors. Exit status 0 or 1.
    Check {
        /// The content file.
        #[arg(default_value = "content.toml")]
        path: PathBuf,
    },
    /// Print the bio as plain text, as `ssh -T` shows it.
    Render {
        #[arg(long, env = "SSHBIO_CONTENT", default_value = "content.toml")]
        content: PathBuf,
        /// Wrap at this many columns.
        #[arg(long, default_value_t = 80)]
        width: usize,
    },
    /// Show the bio in this terminal, as visitors will see it (q quits).
    Preview {
        #[arg(long, env = "SSHBIO_CONTENT", default_value = "content.toml")]
        content: PathBuf,
        /// Open on this section (a slug, as in `ssh SLUG@host`).
        #[arg(long)]
        section: Option<String>,
    },
    /// Print the host key's SHA256 fingerprint and the SSHFP DNS records to publish.
    Fingerprint {
        #[arg(long, env = "SSHBIO_KEYS", default_value = "keys")]
        keys: PathBuf,
        /// The host name the records are for.
        #[arg(long, default_value = "bio.example.com")]
        host: String,
    },
    /// Create the host key if it does not exist yet.
    Keygen {
        #[arg(long, env = "SSHBIO_KEYS", default_value = "keys")]
        keys: PathBuf,
    },
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "SSHBIO_LISTEN", default_value = "127.0.0.1:2222")]
    listen: SocketAddr,
    /// The content file (TOML).
    #[arg(long, env = "SSHBIO_CONTENT", default_value = "content.toml")]
    content: PathBuf,
    /// Directory holding the host key (created on first start).
    #[arg(long, env = "SSHBIO_KEYS", default_value = "keys")]
    keys: PathBuf,
    /// Serve Prometheus /metrics and /healthz, /readyz over HTTP on this address (off if unset).
    #[arg(long, env = "SSHBIO_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Serve the web companion page (/ and /bio.json) over HTTP on this address (off if unset).
    #[arg(long, env = "SSHBIO_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// The host name visitors use (for the page's `ssh` command and SSHFP records).
    #[arg(long, env = "SSHBIO_PUBLIC_HOST")]
    public_host: Option<String>,
    /// The SSH port visitors use (the load balancer's, e.g. 22).
    #[arg(long, env = "SSHBIO_PUBLIC_PORT", default_value_t = 22)]
    public_port: u16,
    /// The companion page's public URL, for link previews (og:url).
    #[arg(long, env = "SSHBIO_PUBLIC_URL")]
    public_url: Option<String>,
    /// Load balancer networks (CIDRs, comma-separated) whose connections start with a PROXY
    /// protocol v1/v2 header carrying the client's real address. Off when empty.
    #[arg(long, env = "SSHBIO_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<ipnet::IpNet>,
    /// authorized_keys-style file of public keys that may log in as `present` and lead the
    /// audience (follow mode). Presenting is off without it.
    #[arg(long, env = "SSHBIO_PRESENTER_KEYS")]
    presenter_keys: Option<PathBuf>,
    /// Share presenter moves and audience counts with other replicas through this Redis
    /// server (e.g. redis://10.0.0.5:6379/). Without it each replica is its own room.
    #[cfg(feature = "redis")]
    #[arg(long, env = "SSHBIO_REDIS")]
    redis: Option<String>,
    /// Offer only the post-quantum hybrid key exchange (mlkem768x25519). Clients older than
    /// OpenSSH 9.9 (e.g. Debian 12's 9.2) then cannot connect, so it is off by default.
    #[arg(long, env = "SSHBIO_PQ_ONLY_KEX")]
    pq_only_kex: bool,
    /// Offer only AEAD ciphers and encrypt-then-MAC MACs. By default aes128-ctr/aes256-ctr
    /// and hmac-sha2-256/512 follow them as a last resort for older libraries (libssh2
    /// before 1.11, so Debian 12's curl; paramiko before 3.5), which then cannot connect.
    #[arg(long, env = "SSHBIO_STRICT_CRYPTO")]
    strict_crypto: bool,
    /// Log format.
    #[arg(long, env = "SSHBIO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Most open connections in total. One address may hold at most three quarters of them.
    #[arg(long, env = "SSHBIO_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// An explicit cap on open connections from one address (default: none beyond the fair
    /// share of three quarters of --max-connections; a conference room shares one NAT address).
    #[arg(long, env = "SSHBIO_MAX_PER_IP")]
    max_per_ip: Option<usize>,
    /// Key exchanges in progress at once (like OpenSSH's MaxStartups); more wait their turn,
    /// and one address may hold at most three quarters of them.
    #[arg(long, env = "SSHBIO_MAX_STARTUPS", default_value_t = Limits::default().max_startups)]
    max_startups: usize,
    /// New connections one address may open in a burst.
    #[arg(long, env = "SSHBIO_BURST_PER_IP", default_value_t = Limits::default().burst_per_ip)]
    burst_per_ip: u32,
    /// New connections per second one address may open after the burst.
    #[arg(long, env = "SSHBIO_RATE_PER_IP", default_value_t = Limits::default().rate_per_ip)]
    rate_per_ip: f64,
    /// Seconds to finish version exchange, key exchange and authentication.
    #[arg(long, env = "SSHBIO_HANDSHAKE_TIMEOUT", default_value_t = Settings::default().handshake_timeout.as_secs())]
    handshake_timeout: u64,
    /// Seconds without input before a session says goodbye.
    #[arg(long, env = "SSHBIO_IDLE_TIMEOUT", default_value_t = Settings::default().idle_timeout.as_secs())]
    idle_timeout: u64,
    /// Longest a session may last, in seconds.
    #[arg(long, env = "SSHBIO_MAX_SESSION", default_value_t = Settings::default().max_session.as_secs())]
    max_session: u64,
    /// Seconds a client may leave a frame unread before it is disconnected.
    #[arg(long, env = "SSHBIO_WRITE_TIMEOUT", default_value_t = Settings::default().write_timeout.as_secs())]
    write_timeout: u64,
    /// Seconds between keepalive probes (3 unanswered end the connection).
    #[arg(long, env = "SSHBIO_KEEPALIVE", default_value_t = Settings::default().keepalive_interval.as_secs())]
    keepalive: u64,
    /// Seconds open sessions get to say goodbye on shutdown.
    #[arg(long, env = "SSHBIO_DRAIN_TIMEOUT", default_value_t = Settings::default().drain_timeout.as_secs())]
    drain_timeout: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(*args),
        Some(Command::Check { path }) => check(&path),
        Some(Command::Render { content, width }) => render(&content, width),
        Some(Command::Preview { content, section }) => preview(&content, section.as_deref()),
        Some(Command::Fingerprint { keys, host }) => fingerprint(&keys, &host),
        Some(Command::Keygen { keys }) => keygen(&keys),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sshbio: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SSHBIO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,russh=warn"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match format {
        LogFormat::Text => tracing::subscriber::set_global_default(builder.finish()),
        LogFormat::Json => tracing::subscriber::set_global_default(builder.json().finish()),
    };
    // russh logs through `log`: forwarded to tracing, with client quirks demoted to debug.
    if installed.is_ok() && sshbio::ssh::log::forward_russh_logs().is_err() {
        tracing::warn!("another logger is installed; russh's own messages may be missing");
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format);
    return_freed_screens_to_the_os();
    // Content first: a broken file stops start-up before anything listens.
    let bio = content::load(&args.content)?;
    let key = hostkey::load_or_create(&args.keys)?;
    if key.created {
        tracing::info!(path = %key.path.display(), "generated a new host key");
    }
    let settings = settings(&args)?;
    let limits = limits(&args);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let (content_tx, content_rx) = tokio::sync::watch::channel(Arc::new(bio));
        let metrics = Arc::new(sshbio::metrics::Metrics::new());
        // SSH is bound first, for its port (the page shows the ssh command); connections wait
        // in the backlog until the server runs. The HTTP listeners are up before the "serving"
        // line, so whoever waits for that line finds /metrics, /readyz and the page answering.
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let bound = listener.local_addr()?;
        serve_http(&args, &key, bound.port(), &metrics, &content_rx).await?;
        tracing::info!(
            listen = %bound,
            fingerprint = %key.fingerprint(),
            content = %args.content.display(),
            "serving; connect with: ssh -p {} {}",
            bound.port(),
            if bound.ip().is_unspecified() { "localhost".to_string() } else { bound.ip().to_string() }
        );
        if !settings.presenter_keys.is_empty() {
            tracing::info!(
                keys = settings.presenter_keys.len(),
                "presenter keys loaded: ssh present@host leads the room"
            );
        }
        if !args.trusted_proxies.is_empty() {
            tracing::info!(networks = ?args.trusted_proxies, "PROXY protocol required from these networks");
        }
        let room = sshbio::room::Room::new();
        #[cfg(feature = "redis")]
        if let Some(url) = &args.redis {
            sshbio::room::cluster::spawn(url.clone(), room.clone(), metrics.clone())
                .context("invalid --redis URL")?;
        }
        let config = ServerConfig {
            host_key: key,
            content: content_rx,
            settings,
            limits,
            trusted_proxies: sshbio::server::proxy::Trusted(args.trusted_proxies.clone()),
            metrics: metrics.clone(),
            room,
        };
        sshbio::content::reload::spawn(args.content.clone(), content_tx, metrics);
        server::run(listener, config, shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Timeouts, crypto and presenter keys from the flags.
fn settings(args: &ServeArgs) -> anyhow::Result<Settings> {
    Ok(Settings {
        handshake_timeout: Duration::from_secs(args.handshake_timeout.max(1)),
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        max_session: Duration::from_secs(args.max_session.max(1)),
        write_timeout: Duration::from_secs(args.write_timeout.max(1)),
        keepalive_interval: Duration::from_secs(args.keepalive.max(1)),
        drain_timeout: Duration::from_secs(args.drain_timeout),
        pq_only_kex: args.pq_only_kex,
        strict_crypto: args.strict_crypto,
        presenter_keys: match &args.presenter_keys {
            Some(path) => sshbio::ssh::hostkey::load_authorized_keys(path)?,
            None => Vec::new(),
        },
        share: Arc::new(sshbio::tui::app::Share::new(
            args.public_host.as_deref(),
            args.public_port,
            args.public_url.clone(),
        )),
        ..Settings::default()
    })
}

/// Connection limits from the flags.
fn limits(args: &ServeArgs) -> Limits {
    Limits {
        max_connections: args.max_connections.max(1),
        max_per_ip: args.max_per_ip.map_or(usize::MAX, |cap| cap.max(1)),
        max_startups: args.max_startups.max(1),
        burst_per_ip: args.burst_per_ip.max(1),
        rate_per_ip: args.rate_per_ip.max(0.0),
    }
}

/// The metrics/health routes and the web page, each on its listener, or both on one when the
/// two flags name the same address.
async fn serve_http(
    args: &ServeArgs,
    key: &hostkey::HostKey,
    ssh_port: u16,
    metrics: &Arc<sshbio::metrics::Metrics>,
    content_rx: &tokio::sync::watch::Receiver<Arc<sshbio::content::Content>>,
) -> anyhow::Result<()> {
    let metrics_routes = args.metrics_listen.map(|addr| (addr, sshbio::http::router(metrics.clone())));
    let web_routes = args.http_listen.map(|addr| {
        let info = page_info(args, key, ssh_port);
        (addr, sshbio::http::web::router(content_rx.clone(), Arc::new(info)))
    });
    let listeners = match (metrics_routes, web_routes) {
        (Some((a, m)), Some((b, w))) if a == b => vec![(a, m.merge(w), "metrics, health and the web page")],
        (m, w) => m
            .map(|(a, r)| (a, r, "metrics and health"))
            .into_iter()
            .chain(w.map(|(a, r)| (a, r, "the web page")))
            .collect(),
    };
    for (addr, router, what) in listeners {
        let http = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for {what}"))?;
        tracing::info!(listen = %http.local_addr()?, "serving {what} over HTTP");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(http, router).await {
                tracing::error!(error = %e, "HTTP listener failed");
            }
        });
    }
    Ok(())
}

/// What the web page tells visitors: the command to run and how to check the host key.
/// `ssh_port` is the bound SSH port, for the command when no public host is set.
fn page_info(args: &ServeArgs, key: &hostkey::HostKey, ssh_port: u16) -> sshbio::http::web::PageInfo {
    let (ssh_command, sshfp) = match &args.public_host {
        Some(host) if args.public_port == 22 => (format!("ssh {host}"), key.sshfp_records(host)),
        Some(host) => (format!("ssh -p {} {host}", args.public_port), key.sshfp_records(host)),
        None => (format!("ssh -p {ssh_port} localhost"), Vec::new()),
    };
    sshbio::http::web::PageInfo {
        ssh_command,
        fingerprint: key.fingerprint(),
        sshfp,
        base_url: args.public_url.clone(),
    }
}

/// glibc serves allocations under its mmap threshold from heaps it rarely shrinks, and it
/// raises that threshold every time a large mmapped block is freed. A session's screen
/// buffers (two of 77 KiB at 80x24) are freed when it goes idle, so without this the freed
/// memory of thousands of idle visitors stays resident (210 KiB per idle session measured,
/// against 61 KiB with a fixed 64 KiB threshold: see BENCHMARKS.md). A fixed threshold maps
/// such buffers on their own pages and gives them back on free.
#[cfg(target_env = "gnu")]
#[allow(unsafe_code)]
fn return_freed_screens_to_the_os() {
    // SAFETY: mallopt only changes allocator tuning; it is called once, before any other
    // thread exists, with a valid parameter and value.
    let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024) };
    if ok != 1 {
        tracing::warn!("could not set the allocator's mmap threshold; idle sessions will use more memory");
    }
}

#[cfg(not(target_env = "gnu"))]
fn return_freed_screens_to_the_os() {}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
}

fn check(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    match content::load(path) {
        Ok(bio) => {
            out(&format!(
                "{}: ok ({} sections, {} links)\n",
                path.display(),
                bio.sections.len(),
                bio.links.len()
            ));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn render(path: &std::path::Path, width: usize) -> anyhow::Result<ExitCode> {
    let bio = content::load(path)?;
    out(&bio.plain_text(width.clamp(20, 500)));
    Ok(ExitCode::SUCCESS)
}

fn preview(path: &std::path::Path, section: Option<&str>) -> anyhow::Result<ExitCode> {
    let bio = content::load(path)?;
    sshbio::tui::preview::run(bio, section).context("cannot run the preview on this terminal")?;
    Ok(ExitCode::SUCCESS)
}

fn fingerprint(keys: &std::path::Path, host: &str) -> anyhow::Result<ExitCode> {
    let path = keys.join(hostkey::KEY_FILE);
    if !path.exists() {
        anyhow::bail!(
            "{}: no host key yet; create it with `sshbio keygen` or by starting the server",
            path.display()
        );
    }
    let key = hostkey::load_or_create(keys)?;
    let mut text = format!("{}\n", key.fingerprint());
    for record in key.sshfp_records(host) {
        text.push_str(&record);
        text.push('\n');
    }
    out(&text);
    Ok(ExitCode::SUCCESS)
}

fn keygen(keys: &std::path::Path) -> anyhow::Result<ExitCode> {
    let key = hostkey::load_or_create(keys)?;
    let verb = if key.created { "created" } else { "exists" };
    out(&format!("{} {verb}: {}\n", key.path.display(), key.fingerprint()));
    Ok(ExitCode::SUCCESS)
}

/// Writes to stdout; a closed pipe (`sshbio render | head`) just ends the output.
fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}

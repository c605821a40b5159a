#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
//! The files in deploy/ against this build of the binary and against each other: every sshbio
//! command line in them parses, every SSHBIO_* variable is one sshbio reads, the ports agree
//! between the Dockerfile, the Kubernetes manifests, fly.toml and the systemd unit, the unit
//! keeps its hardening, the pods stay locked down, and the container entrypoint hands a
//! group-readable key over as one sshbio accepts. No network, no root, no Docker, no cluster;
//! `deploy/check.sh` adds what needs tools (systemd-analyze, PyYAML, kubectl, a smoke run).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_sshbio");
const SUBCOMMANDS: [&str; 5] = ["serve", "check", "render", "fingerprint", "keygen"];
/// Read by the image's entrypoint or by the log filter, not by clap, so not in `--help`.
const EXTRA_ENV: [&str; 3] = ["SSHBIO_HOST_KEY_FILE", "SSHBIO_HOST_KEY_B64", "SSHBIO_LOG"];
const KEY_FILE: &str = "ssh_host_ed25519_key";
/// `--drain-timeout`'s default, in seconds.
const DRAIN_DEFAULT: u64 = 5;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Runs the binary with none of the caller's SSHBIO_* variables.
fn sshbio(args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("SSHBIO_") {
            cmd.env_remove(key);
        }
    }
    cmd.output().unwrap()
}

fn help(sub: Option<&str>) -> String {
    let out = match sub {
        Some(sub) => sshbio(&[sub, "--help"]),
        None => sshbio(&["--help"]),
    };
    assert!(out.status.success(), "sshbio {sub:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// Whether `flag` appears in `text` as a whole word (`--keys` is not `--keys-dir`).
fn mentions(text: &str, flag: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices(flag).any(|(at, _)| {
        let before = text[..at].chars().next_back().is_none_or(|c| !word(c));
        let after = text[at + flag.len()..].chars().next().is_none_or(|c| !word(c));
        before && after
    })
}

/// The value of `--flag V` or `--flag=V` in `argv`.
fn flag_value<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    argv.iter().enumerate().find_map(|(i, tok)| {
        if tok == flag {
            argv.get(i + 1).map(String::as_str)
        } else {
            tok.strip_prefix(flag).and_then(|rest| rest.strip_prefix('='))
        }
    })
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {addr:?}"))
}

/// Lines with backslash continuations joined, each with the number of its first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let (start, mut joined) = current.take().unwrap_or((i + 1, String::new()));
        if let Some(body) = line.strip_suffix('\\') {
            joined.push_str(body);
            joined.push(' ');
            current = Some((start, joined));
        } else {
            joined.push_str(line);
            out.push((start, joined));
        }
    }
    out.extend(current);
    out
}

/// Splits a command line the way a shell would, for the quoting used in these files.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

// ---- a small YAML reader: block mappings and sequences, plain and quoted scalars, `[a, b]`,
// `{}`, comments, `---`. Enough for deploy/kubernetes, which sticks to that subset (check.sh
// parses the same files with PyYAML).

#[derive(Debug, Clone)]
enum Yaml {
    Str(String),
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value at a dotted path; `containers.0` indexes a sequence.
    fn at(&self, path: &str) -> &Yaml {
        path.split('.').fold(self, |node, part| {
            let next = match (node, part.parse::<usize>()) {
                (Yaml::Seq(items), Ok(i)) => items.get(i),
                _ => node.get(part),
            };
            next.unwrap_or_else(|| panic!("no {path:?} (stuck at {part:?})"))
        })
    }

    fn str(&self) -> &str {
        match self {
            Yaml::Str(s) => s,
            other => panic!("not a scalar: {other:?}"),
        }
    }

    fn seq(&self) -> &[Yaml] {
        match self {
            Yaml::Seq(items) => items,
            other => panic!("not a sequence: {other:?}"),
        }
    }

    fn entries(&self) -> &[(String, Yaml)] {
        match self {
            Yaml::Map(entries) => entries,
            other => panic!("not a mapping: {other:?}"),
        }
    }

    /// An integer; a leading 0 means octal, as in YAML 1.1 (`defaultMode: 0400`).
    fn int(&self) -> u64 {
        let s = self.str();
        let parsed = match s.strip_prefix("0o").or_else(|| s.strip_prefix('0').filter(|r| !r.is_empty())) {
            Some(octal) => u64::from_str_radix(octal, 8),
            None => s.parse(),
        };
        parsed.unwrap_or_else(|_| panic!("not an integer: {s:?}"))
    }

    fn strs(&self) -> Vec<String> {
        self.seq().iter().map(|y| y.str().to_owned()).collect()
    }
}

struct YamlLine {
    number: usize,
    indent: usize,
    text: String,
}

fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') if prev.is_whitespace() => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

/// `key: value` / `key:` split at the first `: ` (or a final `:`) outside quotes.
fn split_key(text: &str) -> Option<(String, String)> {
    let mut quote = None;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (n, &(i, c)) in chars.iter().enumerate() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') if n == 0 => quote = Some(c),
            (None, ':') if chars.get(n + 1).is_none_or(|&(_, next)| next == ' ') => {
                let key = scalar(text[..i].trim());
                return Some((key.str().to_owned(), text[i + 1..].trim().to_owned()));
            }
            _ => {}
        }
    }
    None
}

fn scalar(text: &str) -> Yaml {
    let unquoted = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .or_else(|| text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')));
    if let Some(s) = unquoted {
        return Yaml::Str(s.to_owned());
    }
    if text == "{}" {
        return Yaml::Map(Vec::new());
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return Yaml::Seq(inner.split(',').map(str::trim).filter(|s| !s.is_empty()).map(scalar).collect());
    }
    Yaml::Str(text.to_owned())
}

fn parse_block(lines: &mut [YamlLine], pos: &mut usize, indent: usize) -> Yaml {
    if lines[*pos].text.starts_with('-') {
        parse_seq(lines, pos, indent)
    } else {
        parse_map(lines, pos, indent)
    }
}

fn parse_seq(lines: &mut [YamlLine], pos: &mut usize, indent: usize) -> Yaml {
    let mut items = Vec::new();
    while *pos < lines.len() && lines[*pos].indent == indent && lines[*pos].text.starts_with('-') {
        let text = lines[*pos].text.clone();
        let rest = text[1..].trim_start();
        if rest.is_empty() {
            *pos += 1;
            let child = lines[*pos].indent;
            assert!(child > indent, "line {}: empty sequence item", lines[*pos].number);
            items.push(parse_block(lines, pos, child));
        } else if split_key(rest).is_some() {
            // `- key: value` opens a mapping whose keys line up with `key`.
            let inner = indent + (text.len() - rest.len());
            lines[*pos].indent = inner;
            lines[*pos].text = rest.to_owned();
            items.push(parse_map(lines, pos, inner));
        } else {
            items.push(scalar(rest));
            *pos += 1;
        }
    }
    Yaml::Seq(items)
}

fn parse_map(lines: &mut [YamlLine], pos: &mut usize, indent: usize) -> Yaml {
    let mut entries = Vec::new();
    while *pos < lines.len() && lines[*pos].indent == indent && !lines[*pos].text.starts_with('-') {
        let line = &lines[*pos];
        let (key, value) =
            split_key(&line.text).unwrap_or_else(|| panic!("line {}: not `key: value`", line.number));
        *pos += 1;
        let child = if !value.is_empty() {
            scalar(&value)
        } else if *pos < lines.len()
            && (lines[*pos].indent > indent
                || (lines[*pos].indent == indent && lines[*pos].text.starts_with('-')))
        {
            let child_indent = lines[*pos].indent;
            parse_block(lines, pos, child_indent)
        } else {
            Yaml::Str(String::new())
        };
        entries.push((key, child));
    }
    if let Some(line) = lines.get(*pos) {
        assert!(line.indent < indent, "line {}: unexpected indentation", line.number);
    }
    Yaml::Map(entries)
}

fn parse_yaml(text: &str) -> Vec<Yaml> {
    let mut docs = Vec::new();
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim_end() == "---" {
            docs.push(std::mem::take(&mut lines));
            continue;
        }
        let line = strip_comment(raw).trim_end();
        if line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        lines.push(YamlLine { number: i + 1, indent, text: line.trim_start().to_owned() });
    }
    docs.push(lines);
    docs.into_iter()
        .filter(|doc| !doc.is_empty())
        .map(|mut doc| {
            let mut pos = 0;
            let indent = doc[0].indent;
            let parsed = parse_block(&mut doc, &mut pos, indent);
            assert_eq!(pos, doc.len(), "line {}: not read", doc.get(pos).map_or(0, |l| l.number));
            parsed
        })
        .collect()
}

/// Every object in deploy/kubernetes/base, by kind (the components are checked rendered, by
/// deploy/check.sh).
fn kubernetes() -> BTreeMap<String, Yaml> {
    let dir = root().join("deploy/kubernetes/base");
    let mut objects = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            for doc in parse_yaml(&std::fs::read_to_string(&path).unwrap()) {
                let kind = doc.at("kind").str().to_owned();
                assert!(objects.insert(kind.clone(), doc).is_none(), "two objects of kind {kind}");
            }
        }
    }
    objects
}

// ---- the other files

/// The Dockerfile's instructions, as (WORD, rest of line).
fn dockerfile() -> Vec<(String, String)> {
    logical_lines(&read("deploy/Dockerfile"))
        .into_iter()
        .map(|(_, line)| line.trim().to_owned())
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (word, rest) = line.split_once(' ').unwrap_or((&line, ""));
            (word.to_ascii_uppercase(), rest.trim().to_owned())
        })
        .collect()
}

fn docker_json(word: &str) -> Vec<String> {
    let (_, rest) = dockerfile().into_iter().find(|(w, _)| w == word).unwrap_or_else(|| panic!("no {word}"));
    serde_json::from_str(&rest).unwrap_or_else(|e| panic!("{word} is not a JSON array: {e}"))
}

fn docker_env() -> BTreeMap<String, String> {
    dockerfile()
        .into_iter()
        .filter(|(w, _)| w == "ENV")
        .flat_map(|(_, rest)| shell_words(&rest))
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

/// The unit's settings; a key may repeat.
fn unit() -> BTreeMap<String, Vec<String>> {
    let mut settings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, line) in logical_lines(&read("deploy/sshbio.service")) {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';', '[']) {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("sshbio.service: {line:?}"));
        settings.entry(key.trim().to_owned()).or_default().push(value.trim().to_owned());
    }
    settings
}

/// ExecStart's arguments after the binary.
fn unit_argv() -> Vec<String> {
    let exec = shell_words(&unit()["ExecStart"][0]);
    assert_eq!(exec[0], "/usr/local/bin/sshbio");
    exec[1..].to_vec()
}

fn fly() -> toml::Table {
    read("deploy/fly.toml").parse().unwrap()
}

/// The first container of the Deployment.
fn container(objects: &BTreeMap<String, Yaml>) -> &Yaml {
    objects["Deployment"].at("spec.template.spec.containers.0")
}

/// Every sshbio command line in deploy/: the structured ones (Dockerfile CMD, the unit's Exec
/// lines, the Kubernetes args) and those in prose, comments and `code`: a word naming the binary
/// (sshbio, */sshbio, an image sshbio:TAG) that starts the line or is followed by a subcommand.
fn command_lines() -> Vec<(String, Vec<String>)> {
    let objects = kubernetes();
    let mut found = vec![
        ("Dockerfile CMD".to_owned(), docker_json("CMD")),
        ("sshbio.service ExecStart".to_owned(), unit_argv()),
        ("Kubernetes args".to_owned(), container(&objects).at("args").strs()),
    ];
    for line in unit().get("ExecReload").into_iter().flatten() {
        let words = shell_words(line);
        if words[0] == "/usr/local/bin/sshbio" {
            found.push(("sshbio.service ExecReload".to_owned(), words[1..].to_vec()));
        }
    }
    for path in deploy_files() {
        if path.extension().is_some_and(|e| e == "sh") {
            continue;
        }
        let name = path.strip_prefix(root()).unwrap().display().to_string();
        for (number, line) in logical_lines(&std::fs::read_to_string(&path).unwrap()) {
            let line = line.trim_start().trim_start_matches(['#', '/']).trim();
            let mut texts: Vec<String> = line.split('`').skip(1).step_by(2).map(str::to_owned).collect();
            texts.push(line.split('`').step_by(2).collect::<Vec<_>>().join(" "));
            for text in texts {
                for argv in invocations_in(&text) {
                    found.push((format!("{name}:{number}"), argv));
                }
            }
        }
    }
    found
}

fn invocations_in(text: &str) -> Vec<Vec<String>> {
    let words = shell_words(text.trim().trim_start_matches("$ "));
    let lead = words
        .iter()
        .position(|w| {
            !(w == "sudo"
                || w == "exec"
                || w.split_once('=').is_some_and(|(k, _)| k.starts_with(char::is_uppercase)))
        })
        .unwrap_or(words.len());
    let mut found = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let name = word.rsplit('/').next().unwrap().split(':').next().unwrap();
        let rest = &words[i + 1..];
        let starts = rest.first().is_some_and(|next| {
            SUBCOMMANDS.contains(&next.as_str()) || (i == lead && next.starts_with("--"))
        });
        if name == "sshbio" && starts {
            let end = ["|", "||", "&&", ";", "&", "2>&1"];
            found.push(
                rest.iter()
                    .take_while(|w| !end.contains(&w.as_str()) && !w.starts_with(['#', '>', '<']))
                    .cloned()
                    .collect(),
            );
        }
    }
    found
}

fn deploy_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("deploy"), &mut files);
    files.sort();
    files
}

// ---- the tests

#[test]
fn every_sshbio_command_line_in_deploy_parses() {
    let helps: BTreeMap<Option<&str>, String> =
        std::iter::once(None).chain(SUBCOMMANDS.map(Some)).map(|sub| (sub, help(sub))).collect();
    let mut problems = Vec::new();
    let lines = command_lines();
    assert!(lines.len() >= 8, "found only {} command lines: {lines:?}", lines.len());
    for (place, argv) in &lines {
        let sub = argv.first().map(String::as_str).filter(|s| SUBCOMMANDS.contains(s));
        for flag in argv.iter().filter(|w| w.starts_with("--")) {
            let flag = flag.split('=').next().unwrap();
            if !mentions(&helps[&sub], flag) {
                problems.push(format!("{place}: {flag} is not in `sshbio {} --help`", sub.unwrap_or("")));
            }
        }
        // clap checks every value it has read before it acts on --help.
        let mut args: Vec<&str> = argv.iter().map(String::as_str).collect();
        args.push("--help");
        let out = sshbio(&args);
        if !out.status.success() {
            problems.push(format!(
                "{place}: `sshbio {}` does not parse: {}",
                argv.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    // The flags these files lean on most, by name, so a rename cannot slip through.
    for flag in
        ["--listen", "--metrics-listen", "--trusted-proxies", "--content", "--keys", "--drain-timeout"]
    {
        if !mentions(&helps[&Some("serve")], flag) {
            problems.push(format!("`sshbio serve --help` has no {flag}"));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_sshbio_variable_in_deploy_is_read_by_sshbio() {
    let all_help: String = std::iter::once(None).chain(SUBCOMMANDS.map(Some)).map(help).collect();
    let known: BTreeSet<&str> =
        all_help.split("[env: ").skip(1).filter_map(|rest| rest.split('=').next()).chain(EXTRA_ENV).collect();
    let mut used = BTreeSet::new();
    for path in deploy_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        for (at, _) in text.match_indices("SSHBIO_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            // A bare "SSHBIO_" is a prefix test in check.sh, not a name.
            if name.len() > "SSHBIO_".len() {
                used.insert(name);
            }
        }
    }
    assert!(used.contains("SSHBIO_HOST_KEY_FILE") && used.contains("SSHBIO_METRICS_LISTEN"), "{used:?}");
    let unknown: Vec<_> = used.iter().filter(|name| !known.contains(name.as_str())).collect();
    assert!(unknown.is_empty(), "deploy/ names variables sshbio does not read: {unknown:?}");
}

#[test]
fn ports_agree_across_docker_kubernetes_fly_and_systemd() {
    // The image: SSH from CMD's --listen, metrics from SSHBIO_METRICS_LISTEN; both EXPOSEd.
    let cmd = docker_json("CMD");
    let listen = flag_value(&cmd, "--listen").unwrap();
    assert!(listen.starts_with("0.0.0.0:"), "the container must listen on all addresses: {listen}");
    let ssh = port_of(listen);
    let metrics_listen = docker_env()["SSHBIO_METRICS_LISTEN"].clone();
    assert!(metrics_listen.starts_with("0.0.0.0:"), "{metrics_listen}");
    let metrics = port_of(&metrics_listen);
    let exposed: BTreeSet<u16> = dockerfile()
        .into_iter()
        .filter(|(w, _)| w == "EXPOSE")
        .flat_map(|(_, rest)| {
            rest.split_whitespace()
                .map(|p| p.split('/').next().unwrap().parse().unwrap())
                .collect::<Vec<u16>>()
        })
        .collect();
    assert_eq!(exposed, BTreeSet::from([ssh, metrics]), "EXPOSE");

    // Kubernetes: args, containerPorts, probes, annotation, Service.
    let objects = kubernetes();
    let c = container(&objects);
    let args = c.at("args").strs();
    let ports: BTreeMap<String, u16> = c
        .at("ports")
        .seq()
        .iter()
        .map(|p| (p.at("name").str().to_owned(), p.at("containerPort").int().try_into().unwrap()))
        .collect();
    let resolve =
        |port: &Yaml| ports.get(port.str()).copied().unwrap_or_else(|| port.int().try_into().unwrap());
    assert_eq!(ports["ssh"], ssh, "containerPort ssh vs the image");
    assert_eq!(ports["metrics"], metrics, "containerPort metrics vs the image");
    assert_eq!(port_of(flag_value(&args, "--listen").unwrap()), ssh, "--listen in the args");
    let k8s_metrics = flag_value(&args, "--metrics-listen").unwrap();
    assert!(k8s_metrics.starts_with("0.0.0.0:"), "probes come from the node: {k8s_metrics}");
    assert_eq!(port_of(k8s_metrics), metrics, "--metrics-listen in the args");
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = c.at(probe).at("httpGet");
        assert_eq!(get.at("path").str(), path, "{probe}");
        assert_eq!(resolve(get.at("port")), metrics, "{probe} port");
    }
    let annotations = objects["Deployment"].at("spec.template.metadata.annotations");
    assert_eq!(annotations.get("prometheus.io/port").unwrap().int(), u64::from(metrics));
    let service_port = objects["Service"].at("spec.ports.0");
    assert_eq!(service_port.at("port").int(), 22);
    assert_eq!(resolve(service_port.at("targetPort")), ssh, "Service targetPort");

    // fly.io: raw TCP 22 -> the image's SSH port; checks and metrics on the metrics port.
    let fly = fly();
    let service = &fly["services"].as_array().unwrap()[0];
    assert_eq!(service["protocol"].as_str(), Some("tcp"));
    assert_eq!(service["internal_port"].as_integer(), Some(i64::from(ssh)));
    let fly_ports = service["ports"].as_array().unwrap();
    assert!(fly_ports.iter().any(|p| p["port"].as_integer() == Some(22)), "fly answers on 22");
    for p in fly_ports {
        let handlers = p.get("handlers").and_then(|h| h.as_array()).cloned().unwrap_or_default();
        assert!(
            handlers.is_empty(),
            "raw TCP needs no handlers (PROXY needs --trusted-proxies): {handlers:?}"
        );
    }
    for (name, check) in fly["checks"].as_table().unwrap() {
        assert_eq!(check["port"].as_integer(), Some(i64::from(metrics)), "fly check {name}");
    }
    assert_eq!(fly["metrics"]["port"].as_integer(), Some(i64::from(metrics)));

    // systemd: port 22 itself, metrics kept on loopback.
    let argv = unit_argv();
    assert_eq!(flag_value(&argv, "--listen"), Some("0.0.0.0:22"));
    assert!(flag_value(&argv, "--metrics-listen").unwrap().starts_with("127.0.0.1:"));
}

#[test]
fn systemd_unit_keeps_its_hardening() {
    let unit = unit();
    let has = |key: &str, value: &str| unit.get(key).is_some_and(|values| values.iter().any(|v| v == value));
    let required = [
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallFilter", "@system-service"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("StateDirectory", "sshbio"),
        ("ConfigurationDirectory", "sshbio"),
        ("Restart", "on-failure"),
        ("ExecReload", "kill -HUP $MAINPID"),
        ("KillSignal", "SIGTERM"),
    ];
    let missing: Vec<_> =
        required.iter().filter(|(k, v)| !has(k, v)).map(|(k, v)| format!("{k}={v}")).collect();
    assert!(missing.is_empty(), "sshbio.service lacks {missing:?}");

    let argv = unit_argv();
    assert_eq!(
        flag_value(&argv, "--content"),
        Some("/etc/sshbio/content.toml"),
        "inside ConfigurationDirectory"
    );
    assert_eq!(flag_value(&argv, "--keys"), Some("/var/lib/sshbio/keys"), "inside StateDirectory");
    let drain = flag_value(&argv, "--drain-timeout").map_or(DRAIN_DEFAULT, |d| d.parse().unwrap());
    let stop: u64 = unit["TimeoutStopSec"][0].trim_end_matches('s').parse().unwrap();
    assert!(stop > drain + 1, "TimeoutStopSec={stop}s must outlast the {drain} s drain + 1 s");
}

#[test]
fn kubernetes_pods_are_locked_down_and_share_one_key() {
    let objects = kubernetes();
    let deployment = &objects["Deployment"];
    assert!(deployment.at("spec.replicas").int() >= 2);
    let pod = deployment.at("spec.template.spec");
    let labels = deployment.at("spec.template.metadata.labels").entries();
    for selector in [
        deployment.at("spec.selector.matchLabels"),
        objects["Service"].at("spec.selector"),
        objects["PodDisruptionBudget"].at("spec.selector.matchLabels"),
    ] {
        for (k, v) in selector.entries() {
            assert!(labels.iter().any(|(lk, lv)| lk == k && lv.str() == v.str()), "selector {k}={v:?}");
        }
    }
    assert_eq!(objects["Service"].at("spec.type").str(), "LoadBalancer");
    assert_eq!(objects["Service"].at("spec.externalTrafficPolicy").str(), "Local");

    let c = container(&objects);
    assert!(c.get("command").is_none(), "keep the image's entrypoint: it installs the key");
    let sc = c.at("securityContext");
    assert_eq!(sc.at("runAsNonRoot").str(), "true");
    assert_eq!(sc.at("readOnlyRootFilesystem").str(), "true");
    assert_eq!(sc.at("allowPrivilegeEscalation").str(), "false");
    assert_eq!(sc.at("capabilities.drop").strs(), ["ALL"]);
    assert_eq!(pod.at("securityContext.seccompProfile.type").str(), "RuntimeDefault");
    assert!(
        c.at("resources.requests").get("memory").is_some()
            && c.at("resources.limits").get("memory").is_some()
    );

    let args = c.at("args").strs();
    let volumes: BTreeMap<&str, &Yaml> =
        pod.at("volumes").seq().iter().map(|v| (v.at("name").str(), v)).collect();
    let mount = |path: &str| {
        let m = c.at("volumeMounts").seq().iter().find(|m| m.at("mountPath").str() == path);
        let m = m.unwrap_or_else(|| panic!("nothing mounted at {path}"));
        (m, volumes[m.at("name").str()])
    };

    // Content: a ConfigMap directory, no subPath, or live reload never sees an update.
    let content = Path::new(flag_value(&args, "--content").unwrap());
    let (m, v) = mount(content.parent().unwrap().to_str().unwrap());
    assert!(v.get("configMap").is_some() && m.get("subPath").is_none(), "content: ConfigMap dir, no subPath");

    // Keys: a writable emptyDir (the root filesystem is read-only) ...
    let (m, v) = mount(flag_value(&args, "--keys").unwrap());
    assert!(v.get("emptyDir").is_some() && m.get("readOnly").is_none(), "--keys must be a writable emptyDir");
    // ... filled from the Secret by the entrypoint. fsGroup lets uid 10001 read the Secret's
    // files; it also adds group-read to them, which is why they are copied, not used in place.
    let env = c.at("env").seq();
    let key_file =
        env.iter().find(|e| e.at("name").str() == "SSHBIO_HOST_KEY_FILE").unwrap().at("value").str();
    let key_file = Path::new(key_file);
    assert_eq!(key_file.file_name().unwrap(), KEY_FILE);
    let (_, v) = mount(key_file.parent().unwrap().to_str().unwrap());
    let mode = v.at("secret.defaultMode").int();
    assert_eq!(mode & 0o077, 0, "Secret defaultMode {mode:o} must give group and others nothing");
    assert!(
        pod.at("securityContext").get("fsGroup").is_some(),
        "fsGroup: the Secret is root-owned otherwise"
    );

    let drain = flag_value(&args, "--drain-timeout").map_or(DRAIN_DEFAULT, |d| d.parse().unwrap());
    let pre_stop = c.at("lifecycle.preStop.exec.command").strs();
    let pre_stop: u64 = if pre_stop[0] == "sleep" { pre_stop[1].parse().unwrap() } else { 0 };
    let grace = pod.at("terminationGracePeriodSeconds").int();
    assert!(
        grace > pre_stop + drain + 1,
        "terminationGracePeriodSeconds {grace} vs preStop {pre_stop} + drain {drain}"
    );
}

#[test]
fn dockerfile_stubs_every_target_and_keeps_keys_out_of_the_context() {
    let dockerfile_text = read("deploy/Dockerfile");
    let manifest: toml::Table = read("Cargo.toml").parse().unwrap();
    let mut targets = vec![manifest["lib"]["path"].as_str().unwrap().to_owned()];
    for bin in manifest["bin"].as_array().unwrap() {
        targets.push(bin["path"].as_str().unwrap().to_owned());
    }
    for bench in manifest.get("bench").and_then(|b| b.as_array()).into_iter().flatten() {
        let default = format!("benches/{}.rs", bench["name"].as_str().unwrap());
        targets.push(bench.get("path").and_then(|p| p.as_str()).map_or(default, str::to_owned));
    }
    assert!(
        manifest.get("example").is_none() && manifest.get("test").is_none(),
        "stub these in the Dockerfile too"
    );
    for target in &targets {
        assert!(root().join(target).exists(), "{target}");
        assert!(
            dockerfile_text.contains(target.as_str()),
            "the Dockerfile's dependency layer must stub {target}"
        );
    }
    assert!(!root().join("build.rs").exists(), "a build script would need copying into the dependency layer");

    let allowed: Vec<String> = read("deploy/Dockerfile.dockerignore")
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .map(|l| l.trim_end_matches('/').to_owned())
        .collect();
    assert_eq!(read("deploy/Dockerfile.dockerignore").lines().find(|l| !l.starts_with('#')), Some("*"));
    assert!(!allowed.iter().any(|a| a == "keys" || a.starts_with("keys/")), "keys/ must stay out");
    for (word, rest) in dockerfile() {
        if word != "COPY" || rest.starts_with("--from") {
            continue;
        }
        let words = shell_words(&rest);
        for source in &words[..words.len() - 1] {
            assert!(root().join(source).exists(), "COPY {source}: no such file");
            let let_in = allowed.iter().any(|a| source == a || source.starts_with(&format!("{a}/")));
            assert!(let_in, "COPY {source} is filtered out by Dockerfile.dockerignore");
        }
    }
    assert_eq!(docker_json("ENTRYPOINT"), ["/usr/local/bin/sshbio-entrypoint"]);
}

/// The Kubernetes case: the Secret's file is group-readable (fsGroup), which sshbio refuses;
/// the entrypoint must install a private copy, and the result must be the same key.
#[test]
fn entrypoint_hands_over_a_group_readable_key_as_a_private_one() {
    let dir = std::env::temp_dir().join(format!("sshbio-deploy-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (secret, keys, path) = (dir.join("secret"), dir.join("keys"), dir.join("bin"));
    std::fs::create_dir_all(&path).unwrap();
    std::os::unix::fs::symlink(BIN, path.join("sshbio")).unwrap();
    assert!(sshbio(&["keygen", "--keys", secret.to_str().unwrap()]).status.success());
    let want =
        String::from_utf8(sshbio(&["fingerprint", "--keys", secret.to_str().unwrap()]).stdout).unwrap();
    let secret_key = secret.join(KEY_FILE);
    std::fs::set_permissions(&secret_key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let refused = sshbio(&["fingerprint", "--keys", secret.to_str().unwrap()]);
    assert!(!refused.status.success(), "sshbio itself must refuse a group-readable key");

    let entrypoint = |env: (&str, String), keys: &Path| {
        Command::new("sh")
            .arg(root().join("deploy/docker-entrypoint.sh"))
            .args(["fingerprint", "--keys", keys.to_str().unwrap()])
            .env("PATH", format!("{}:{}", path.display(), std::env::var("PATH").unwrap_or_default()))
            .env_remove("SSHBIO_KEYS")
            .env(env.0, env.1)
            .output()
            .unwrap()
    };
    let out = entrypoint(("SSHBIO_HOST_KEY_FILE", secret_key.to_str().unwrap().to_owned()), &keys);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), want);
    let mode = std::fs::metadata(keys.join(KEY_FILE)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // fly.io: the key arrives base64-encoded in an environment variable.
    let pem = std::fs::read(&secret_key).unwrap();
    let b64 = base64(&pem);
    let out = entrypoint(("SSHBIO_HOST_KEY_B64", b64), &dir.join("keys-b64"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), want);
    let _ = std::fs::remove_dir_all(&dir);
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn the_small_yaml_reader_reads_what_the_manifests_use() {
    let docs = parse_yaml(
        "a: 1 # note\nb:\n  - x\n  - name: n\n    port: \"22\"\n  -\n    deep: [p, q]\nc:\n- y\nd: {}\n---\nkind: K\n",
    );
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].at("a").int(), 1);
    assert_eq!(docs[0].at("b.0").str(), "x");
    assert_eq!(docs[0].at("b.1.port").str(), "22");
    assert_eq!(docs[0].at("b.2.deep").strs(), ["p", "q"]);
    assert_eq!(docs[0].at("c.0").str(), "y");
    assert!(docs[0].at("d").entries().is_empty());
    assert_eq!(docs[1].at("kind").str(), "K");
    assert_eq!(Yaml::Str("0400".into()).int(), 0o400);
}

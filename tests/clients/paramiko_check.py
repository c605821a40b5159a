"""paramiko's SSHClient, as Ansible, Fabric and Netmiko use it: connect with an empty
password (it never tries `none`), then the UI in a pty, plain text, commands and a route; and
the ciphers a paramiko before 3.5 offers (no AES-GCM, no ETM MACs)."""
import socket

import paramiko

from common import COMMANDS, ROUTE_USER, Deadline, drive_tui, port, report, text

OLD_PARAMIKO = {
    "ciphers": ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com"],
    "macs": ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com"],
}


def client(user, disabled=None):
    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    c.connect("127.0.0.1", port(), username=user, password="", look_for_keys=False,
              allow_agent=False, timeout=10, banner_timeout=10, auth_timeout=10,
              disabled_algorithms=disabled)
    return c


def tui(user, keys):
    c = client(user)
    chan = c.invoke_shell(term="xterm-256color", width=80, height=24)

    def recv(seconds):
        chan.settimeout(seconds)
        try:
            return chan.recv(65536)
        except socket.timeout:
            return None

    result = drive_tui(recv, chan.sendall, chan.recv_exit_status, keys)
    c.close()
    return result


def run(c, command):
    _, out, err = c.exec_command(command, timeout=10)
    stdout, stderr = out.read(), err.read()
    return text(stdout), text(stderr), out.channel.recv_exit_status()


result = {"version": paramiko.__version__}
c = client("visitor")
result["login"] = True
t = c.get_transport()
result["cipher"], result["mac"] = t.remote_cipher, t.remote_mac
for name, command in COMMANDS.items():
    result[name], result[name + "_stderr"], result[name + "_status"] = run(c, command)
chan = c.get_transport().open_session(timeout=10)
chan.invoke_shell()
plain = b""
deadline = Deadline()
while not deadline.over():
    data = chan.recv(65536)
    if not data:
        break
    plain += data
result["plain"], result["plain_status"] = text(plain), chan.recv_exit_status()
c.close()
result["tui"] = tui("visitor", True)
result["route"] = tui(ROUTE_USER, False)

old = client("visitor", OLD_PARAMIKO)
t = old.get_transport()
result["old_cipher"], result["old_mac"] = t.remote_cipher, t.remote_mac
result["old_section"] = run(old, "section early")[0]
old.close()
report(result)

"""libssh through its PyPI bindings (ssh-python), as KDE, Remmina and Blink's fork drive it:
`userauth_none`, then the UI in a pty, plain text, commands and a route."""
import ssh
from ssh import options
from ssh.session import Session

from common import COMMANDS, ROUTE_USER, Deadline, drive_tui, port, report, text


def session(user):
    s = Session()
    s.options_set(options.HOST, "127.0.0.1")
    s.options_set_port(port())
    s.options_set(options.USER, user)
    s.options_set(options.TIMEOUT, "10")
    s.connect()
    assert s.userauth_none() == 0, "userauth_none refused"
    return s


def read_all(channel):
    """Reads stdout and stderr until the channel ends (both, in turn: libssh reports EOF only
    once stderr is read too)."""
    out, err = b"", b""
    deadline = Deadline()
    while not deadline.over():
        n, chunk = channel.read_timeout(50, 65536, False)
        m, chunk_err = channel.read_timeout(1, 65536, True)
        out += chunk if n > 0 else b""
        err += chunk_err if m > 0 else b""
        if n <= 0 and m <= 0 and (channel.is_eof() or channel.is_closed() or n < 0):
            break
    return out, err


def run(s, command):
    channel = s.channel_new()
    channel.open_session()
    if command is None:
        channel.request_shell()
    else:
        channel.request_exec(command)
    stdout, stderr = read_all(channel)
    status = channel.get_exit_status()
    channel.close()
    return text(stdout), text(stderr), status


def tui(user, keys):
    s = session(user)
    channel = s.channel_new()
    channel.open_session()
    channel.request_pty_size("xterm-256color", 80, 24)
    channel.request_shell()

    def recv(seconds):
        n, chunk = channel.read_timeout(max(1, int(seconds * 1000)), 65536)
        if n > 0:
            return chunk
        return b"" if channel.is_eof() or channel.is_closed() or n < 0 else None

    def status():
        read_all(channel)
        return channel.get_exit_status()

    result = drive_tui(recv, channel.write, status, keys)
    channel.close()
    s.disconnect()
    return result


result = {"version": "ssh-python " + ssh.__version__}
s = session("visitor")
result["login"] = True
result["cipher"], result["mac"] = text(s.get_cipher_in()), text(s.get_hmac_in())
for name, command in COMMANDS.items():
    result[name], result[name + "_stderr"], result[name + "_status"] = run(s, command)
result["plain"], _, result["plain_status"] = run(s, None)
s.disconnect()
result["tui"] = tui("visitor", True)
result["route"] = tui(ROUTE_USER, False)
report(result)

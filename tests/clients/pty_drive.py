"""Runs a command-line client (plink, dbclient, ssh) in a pseudo-terminal of 80x24, as a
person at a terminal would, and drives the UI: first frame, `l` (unless --no-keys), `q`.
Usage: pty_drive.py [--no-keys] PROGRAM ARGS...; prints the phases' bytes and the exit
status as JSON."""
import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios

from common import Deadline, drive_tui, report

master, slave = pty.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
env = dict(os.environ, TERM="xterm-256color")
keys = sys.argv[1] != "--no-keys"
argv = sys.argv[1:] if keys else sys.argv[2:]
proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                        start_new_session=True)
os.close(slave)


def recv(seconds):
    ready, _, _ = select.select([master], [], [], seconds)
    if not ready:
        return None
    try:
        return os.read(master, 65536)
    except OSError:  # EIO: the client exited and the terminal is gone
        return b""


def status():
    deadline = Deadline()
    while proc.poll() is None and not deadline.over():
        recv(min(0.1, deadline.left()))
    if proc.poll() is None:
        proc.kill()
    return proc.wait()


report(drive_tui(recv, lambda data: os.write(master, data), status, keys))

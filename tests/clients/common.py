"""Shared by the client scripts: what to run and what the Rust test reads back.

Each script logs in as the visitor (and as `compilers` for the route), drives the server the
way an app on that library would, and prints one JSON object of what it saw. Every wait is
bounded by a deadline; nothing sleeps a fixed time.
"""
import json
import sys
import time
import warnings

warnings.filterwarnings("ignore")

# The fixture bio (tests/fixtures/small.toml): the user name whose route the scripts open.
ROUTE_USER = "compilers"
# Every frame ratatui draws ends by hiding the cursor: the script waits for it before the next
# key. What the screen shows is checked by the Rust test, through a terminal emulator (frames
# after the first are diffs, so words are not contiguous in the bytes).
FRAME_END = b"\x1b[?25l"
COMMANDS = {"bio": "bio", "json": "json", "section": "section lighthouse", "unknown": "launch-rockets"}
WAIT = 10.0


class Deadline:
    def __init__(self, seconds=WAIT):
        self.end = time.monotonic() + seconds

    def left(self):
        return max(0.0, self.end - time.monotonic())

    def over(self):
        return time.monotonic() >= self.end


def port():
    return int(sys.argv[1])


def report(result):
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()


def text(data):
    return data.decode("utf-8", "replace") if isinstance(data, (bytes, bytearray)) else data


def drive_tui(recv, send, exit_status, keys=True):
    """Drives the UI: waits for the first frame, presses `l` and waits for the next frame,
    presses `q` and reads to the end. `recv(seconds)` returns bytes, b"" at the end
    of the stream, or None when nothing came in time. Returns the bytes of each phase (hex, for
    the Rust test's terminal emulator) and the exit status."""
    phases = {"first": [], "after_l": []}

    def read_until(phase, needle, deadline):
        seen = b""
        while not deadline.over():
            data = recv(min(0.5, deadline.left()))
            if data is None:
                continue
            if data == b"":
                return False
            phases[phase].append(data.hex())
            seen += data
            # The first frame also starts by hiding the cursor: only an end counts.
            # The first frame ends with the background-colour query (OSC 11) after its reset.
            end = seen.removesuffix(b"\x1b]11;?\x1b\\").removesuffix(b"\x1b[0m")
            if needle is not None and end.endswith(needle):
                return True
        return False

    # Generous deadlines: the first covers the client's start, key exchange and login on a
    # loaded machine. A missed one is reported as such, not as a wrong frame.
    if not read_until("first", FRAME_END, Deadline(WAIT * 3)):
        raise SystemExit("no complete first frame in time")
    if keys:
        send(b"l")
        if not read_until("after_l", FRAME_END, Deadline(WAIT)):
            raise SystemExit("no complete frame after 'l' in time")
    send(b"q")
    read_until("after_l", None, Deadline(WAIT))
    return {"first": phases["first"], "after_l": phases["after_l"], "status": exit_status()}

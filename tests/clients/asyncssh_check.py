"""asyncssh, with a user name only (it tries `none` first): the UI in a pty, plain text,
commands and a route."""
import asyncio

import asyncssh

from common import COMMANDS, ROUTE_USER, drive_tui, port, report


def connect(user):
    return asyncssh.connect("127.0.0.1", port(), username=user, known_hosts=None, client_keys=None,
                            agent_path=None, password=None, login_timeout=10)


async def tui(user, keys):
    async with connect(user) as conn:
        proc = await conn.create_process(term_type="xterm-256color", term_size=(80, 24), encoding=None)
        loop = asyncio.get_running_loop()
        # drive_tui is synchronous: run it in a thread and hop back to the loop for I/O.

        def recv(seconds):
            future = asyncio.run_coroutine_threadsafe(
                asyncio.wait_for(proc.stdout.read(65536), seconds), loop)
            try:
                return future.result()
            except asyncio.TimeoutError:
                return None

        def send(data):
            loop.call_soon_threadsafe(proc.stdin.write, data)

        def status():
            return asyncio.run_coroutine_threadsafe(asyncio.wait_for(proc.wait(), 10), loop).result().exit_status

        return await loop.run_in_executor(None, drive_tui, recv, send, status, keys)


async def main():
    result = {"version": asyncssh.__version__}
    async with connect("visitor") as conn:
        result["login"] = True
        for name, command in COMMANDS.items():
            r = await asyncio.wait_for(conn.run(command), 10)
            result[name], result[name + "_stderr"], result[name + "_status"] = r.stdout, r.stderr, r.exit_status
        r = await asyncio.wait_for(conn.run(), 10)
        result["plain"], result["plain_status"] = r.stdout, r.exit_status
        result["cipher"] = conn.get_extra_info("send_cipher")
        result["mac"] = conn.get_extra_info("send_mac")
    result["tui"] = await tui("visitor", True)
    result["route"] = await tui(ROUTE_USER, False)
    report(result)


asyncio.run(main())

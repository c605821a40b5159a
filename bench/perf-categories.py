#!/usr/bin/env python3
"""Splits a `perf record --call-graph dwarf` profile of the server into where the CPU goes.

    perf script -i perf.data -F comm,tid,ip,sym | bench/perf-categories.py

Each sample is put in the first category (in the order below) whose pattern matches any frame
of its stack, so the shares add up to 100 %. Used by bench/profile.sh for BENCHMARKS.md.
"""
import re
import sys

# (category, regex on a frame's symbol), checked in this order.
CATEGORIES = [
    ("kex: ML-KEM-768 (mlkem768x25519)", r"ml_kem::|module_lattice|keccak|shake::"),
    ("kex: X25519", r"MontgomeryPoint::mul|montgomery::|x25519"),
    ("host key: Ed25519 signature", r"sign_with_hash_alg|ed25519_dalek|Ed25519Keypair"),
    ("kex: hashes, key derivation, other", r"russh::kex::|russh::server::kex::|compute_keys|russh::negotiation"),
    ("first frame: new Terminal (2 buffers)", r"new_terminal|Terminal<B>>::with_options|Terminal.*::with_options"),
    ("first frame: drop Terminal", r"drop_in_place<ratatui_core::terminal::Terminal"),
    ("frame: ui::draw (widgets into the buffer)", r"sshbio::ui::draw|ui::draw"),
    ("frame: diff + ANSI encoding", r"apply_buffer|BufferDiff|AnsiBackend|Terminal<B>>::flush|try_draw|swap_buffers"),
    ("frame: other render", r"Screen::render|session::render"),
    ("cipher + MAC (chacha20-poly1305 / aes-gcm)", r"ChaCha20|chacha|poly1305|Poly1305|aes_|gcm|CRYPTO_|ring_core"),
    ("TCP send (kernel)", r"sendto|sendmsg|tcp_sendmsg|__libc_send|tcp_write_xmit"),
    ("TCP receive (kernel)", r"recvfrom|recvmsg|tcp_recvmsg|__libc_recv"),
    ("accept, connect, close (kernel)", r"__sys_accept|accept4|do_accept|inet_csk_accept|tcp_close|__x64_sys_close|sock_close|shutdown"),
    ("logging (tracing)", r"tracing_subscriber|tracing_core|tracing::"),
    ("russh packet handling, channels", r"russh::|russh_cryptovec"),
    ("scheduler, wakeups, timers (tokio + kernel)", r"tokio::runtime|epoll|futex|schedule|finish_task_switch|mio::"),
    ("malloc/free", r"malloc|_int_free|cfree|realloc|unlink_chunk|malloc_consolidate"),
]


def main() -> None:
    compiled = [(name, re.compile(rx)) for name, rx in CATEGORIES]
    counts: dict[str, int] = {}
    total = 0
    stack: list[str] = []

    def flush() -> None:
        nonlocal total
        if not stack:
            return
        total += 1
        for name, rx in compiled:
            if any(rx.search(frame) for frame in stack):
                counts[name] = counts.get(name, 0) + 1
                return
        counts["other"] = counts.get("other", 0) + 1

    for line in sys.stdin:
        if not line.strip():
            flush()
            stack = []
        elif line[0] in " \t":
            parts = line.strip().split(" ", 1)
            stack.append(parts[1] if len(parts) > 1 else parts[0])
        else:
            flush()
            stack = []
    flush()
    print(f"{total} samples")
    for name, count in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"{100.0 * count / max(total, 1):6.1f} %  {name}")


if __name__ == "__main__":
    main()

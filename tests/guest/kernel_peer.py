#!/usr/bin/env python3
"""The kernel's side of user-level TCP tests: plain kernel sockets, many
connections in one process (starting a process per connection costs
seconds in the TCG guest).

  sink ADDR PORT N [--reset-after BYTES]  accept N connections, hash each
                                           until EOF (or reset it with an
                                           RST once BYTES arrived)
  source HOST PORT N FILE                 connect N times at once, send FILE
                                           on each, wait until the peer
                                           acknowledged it, then read until
                                           EOF

Prints one JSON line per connection: its peer, bytes received, SHA-256, or
the error it ended with ("reset" for ECONNRESET)."""

import fcntl
import hashlib
import json
import os
import socket
import struct
import sys
import termios
import threading
import time

lock = threading.Lock()


def say(obj):
    with lock:
        print(json.dumps(obj), flush=True)


def drain(conn, peer, reset_after=None):
    h, got = hashlib.sha256(), 0
    try:
        while True:
            b = conn.recv(1 << 16)
            if not b:
                break
            h.update(b)
            got += len(b)
            if reset_after is not None and got >= reset_after:
                # SO_LINGER 0: close sends a reset.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                say({"peer": peer, "received": got, "did": "reset"})
                return
        say({"peer": peer, "received": got, "sha256": h.hexdigest()})
    except (ConnectionResetError, BrokenPipeError):
        # EPIPE on a socket this side never shut down: the peer reset it.
        say({"peer": peer, "received": got, "error": "reset"})
    except OSError as e:
        say({"peer": peer, "received": got, "error": str(e)})
    finally:
        conn.close()


def sink(addr, port, n, reset_after=None):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(256)
    print("listening", file=sys.stderr, flush=True)
    threads = []
    for _ in range(n):
        conn, peer = ls.accept()
        t = threading.Thread(target=drain, args=(conn, f"{peer[0]}:{peer[1]}", reset_after))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()


def one_source(host, port, data):
    try:
        s = socket.create_connection((host, port), timeout=60)
    except OSError as e:
        say({"error": str(e)})
        return
    peer = f"{host}:{port}"
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        acknowledged(s)
    except OSError as e:
        # EPIPE on a socket this side never shut down: the peer reset it.
        reset = isinstance(e, (ConnectionResetError, BrokenPipeError))
        say({"peer": peer, "error": "reset" if reset else str(e)})
        s.close()
        return
    drain(s, peer)


def acknowledged(s, timeout=120.0):
    """Waits until the peer acknowledged everything sent, FIN included.
    A peer with nothing to send may close its side at once, and reading
    to EOF then returns while the data is still in flight; closing the
    socket then would leave the kernel to finish the transfer from an
    orphaned socket, which it resets under memory pressure (many
    megabytes in flight on a small guest), and the peer would see its
    data cut short for no fault of its own."""
    deadline = time.monotonic() + timeout
    while True:
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
        # SIOCOUTQ: bytes sent but not yet acknowledged (and unsent).
        left = struct.unpack("i", fcntl.ioctl(s.fileno(), termios.TIOCOUTQ, struct.pack("i", 0)))[0]
        if left == 0:
            return
        if time.monotonic() > deadline:
            raise OSError(f"{left} bytes unacknowledged after {timeout} s")
        time.sleep(0.01)


def source(host, port, n, path):
    data = open(path, "rb").read()
    threads = [threading.Thread(target=one_source, args=(host, port, data)) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "sink":
        ra = int(sys.argv[6]) if len(sys.argv) > 6 and sys.argv[5] == "--reset-after" else None
        sink(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), ra)
    elif mode == "source":
        source(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        sys.exit(f"unknown mode {mode}")

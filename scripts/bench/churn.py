#!/usr/bin/env python3
"""Short connections at a steady rate, for the archiver's churn benchmark.

    churn.py server ADDR PORT
    churn.py client ADDR PORT RATE SECONDS

The server accepts and closes; the client opens RATE connections a second
(each: connect, 4 bytes out, wait for the server's close) for SECONDS and
prints how many it completed. Run them in the benchmark's namespaces
(scripts/bench/churn.sh does): no traffic leaves them.
"""
import socket
import sys
import time


def server(addr, port):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((addr, port))
    listener.listen(4096)
    while True:
        conn, _ = listener.accept()
        try:
            conn.recv(4)
        finally:
            conn.close()


def client(addr, port, rate, seconds):
    done = 0
    start = time.monotonic()
    end = start + seconds
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - start) * rate)
        while done < due:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.connect((addr, port))
                s.sendall(b"ping")
                s.recv(1)
                done += 1
            except OSError:
                pass
            finally:
                s.close()
        time.sleep(0.001)
    elapsed = time.monotonic() - start
    print(f"churn_connections={done} churn_rate_per_s={done / elapsed:.0f}")


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2], int(sys.argv[3]))
    else:
        client(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))

#!/usr/bin/env python3
"""The kernel's cost of tcp-info's dumps at tcp-info's cadence.

Issues the same SOCK_DIAG_BY_FAMILY dumps as tcp-info (AF_INET6 then AF_INET,
TCP, every state but SYN_RECV/TIME_WAIT/CLOSE, extension mask 0xff) every
INTERVAL seconds, reads every reply without parsing it, and exits on SIGTERM.
Run it as the COMMAND of ../shared/bench/bench-collector.sh to get the floor
a 10 ms poller cannot go below: the harness's own floor2full loops without
pausing, so its caches stay warm and its per-dump cost is lower than any
poller's that sleeps between dumps.

With --combined it issues tcp-info's actual request instead: one
TCPDIAG_GETSOCK dump of both families (see inetdiag's TCPDIAG_GETSOCK).

usage: dump-floor.py [--combined] [INTERVAL_SECONDS]   (default 0.01)
"""
import os
import signal
import socket
import struct
import sys
import time

NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, TCPDIAG_GETSOCK = 4, 20, 18
NLM_F_REQUEST, NLM_F_DUMP, NLMSG_ERROR, NLMSG_DONE = 1, 0x300, 2, 3
STATES = 0xFFF & ~((1 << 3) | (1 << 6) | (1 << 7))

args = sys.argv[1:]
combined = "--combined" in args
args = [a for a in args if a != "--combined"]
interval = float(args[0]) if args else 0.01
running = True
polls = 0


def stop(*_):
    global running
    running = False


def report_polls(*_):
    # For thread-sampler.sh: the polls so far, to count them in its window.
    if os.environ.get("POLLS_FILE"):
        with open(os.environ["POLLS_FILE"], "a") as f:
            f.write("%d\n" % polls)


signal.signal(signal.SIGUSR1, report_polls)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)

s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.bind((0, 0))
portid = s.getsockname()[0]
buf = bytearray(1 << 16)


def dump(family, seq):
    if family is None:
        # struct inet_diag_req: family, src_len, dst_len, ext, sockid, states, dbs
        body = struct.pack("=BBBB", 0, 0, 0, 0xFF) + b"\0" * 48 + struct.pack("=II", STATES, 0)
        kind = TCPDIAG_GETSOCK
    else:
        body = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0xFF, 0, STATES) + b"\0" * 48
        kind = SOCK_DIAG_BY_FAMILY
    s.send(struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
    while True:
        n = s.recv_into(buf)
        if n >= 20:
            ln, ty, _fl, sq, pid = struct.unpack_from("=IHHII", buf, n - 20)
            if ln == 20 and ty == NLMSG_DONE and sq == seq and pid == portid:
                return
            if ty == NLMSG_ERROR and sq == seq:
                raise SystemExit("netlink error")


seq = 1
dumping = 0.0
start = time.monotonic()
nxt = start
while running:
    now = time.monotonic()
    if now < nxt:
        time.sleep(nxt - now)
        continue
    nxt += interval
    if nxt < now:
        nxt = now
    began = time.monotonic()
    if combined:
        dump(None, seq)
    else:
        dump(socket.AF_INET6, seq)
        dump(socket.AF_INET, seq + 1)
    dumping += time.monotonic() - began
    seq += 2
    polls += 1
elapsed = time.monotonic() - start
print("dump-floor: polls=%d mean_interval=%.2fms mean_dump=%.3fms"
      % (polls, 1000 * elapsed / max(polls, 1), 1000 * dumping / max(polls, 1)), file=sys.stderr)

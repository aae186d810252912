#!/usr/bin/env python3
"""Reads an `strace -f -tt -T` log of a server answering one connection
(scripts/syscalls-per-call.sh --timeline) and prints, as medians over the
calls: the time from a request's `recvfrom` to the first `writev` (the
answer's head leaves), to the `writev` that ends the answer (the chunked
body's last chunk, or a JSON body), from that `writev` to the next
`epoll_wait` (the work the server does after the answer has left, before
it can wait for the next request), and a system call's own duration.

    scripts/strace-gaps.py LOG NAME
"""

import statistics
import sys


def micros(stamp):
    hours, minutes, seconds = stamp.split(":")
    return (int(hours) * 3600 + int(minutes) * 60 + float(seconds)) * 1e6


def main():
    log, name = sys.argv[1], sys.argv[2]
    received, started, answered = None, False, None
    head, end, after, durations = [], [], [], []
    with open(log, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            fields = line.split()
            if len(fields) < 3:
                continue
            at, call = micros(fields[1]), fields[2]
            last = fields[-1]
            if last.startswith("<") and last.endswith(">"):
                try:
                    durations.append(float(last.strip("<>")) * 1e6)
                except ValueError:
                    pass
            if call.startswith("epoll_wait(") and answered is not None:
                after.append(at - answered)
                answered = None
            if call.startswith("recvfrom(") and '"POST' in line:
                received, started = at, False
            elif call.startswith("writev(") and received is not None:
                if not started:
                    head.append(at - received)
                    started = True
                # strace prints "\r\n" as the four characters \ r \ n.
                if "0\\r\\n\\r\\n" in line or 'iov_base="{' in line:
                    end.append(at - received)
                    received, answered = None, at
    if not end:
        print(f"  timeline {name}: no complete call found in {log}")
        return
    print(
        f"  timeline {name}: {len(end)} calls; recvfrom to first writev "
        f"{statistics.median(head):.0f} us, to the writev that ends the answer "
        f"{statistics.median(end):.0f} us, from that writev to the worker's next epoll_wait "
        f"{statistics.median(after):.0f} us; median system call {statistics.median(durations):.0f} us"
    )


if __name__ == "__main__":
    main()

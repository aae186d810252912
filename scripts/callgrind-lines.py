#!/usr/bin/env python3
"""The code a call touches, from a callgrind profile made with
`--dump-instr=yes`: the number of 64-byte lines of machine code that run at
least once per call on average (their instructions summed, divided by the
calls). Callgrind counts instructions; this counts the instruction cache
lines they come from, the footprint that has to be fetched again when a
call starts with cold caches (BENCHMARKS.md, eighteenth pass).

    scripts/callgrind-lines.py PROFILE CALLS

Hand-written: callgrind_annotate reports per function or source line, not
per cache line, and no packaged tool reads the format for this.
"""
import re
import sys
from collections import Counter

LINE = 64


def hot_lines(path, calls):
    cost = Counter()
    positions = 0
    addr = 0
    after_call = False
    with open(path, encoding="utf-8", errors="replace") as profile:
        for text in profile:
            if text.startswith("positions:"):
                names = text.split()[1:]
                if names[:1] != ["instr"]:
                    sys.exit(f"callgrind-lines: {path} was not made with --dump-instr=yes")
                positions = len(names)
                continue
            if after_call:
                # The line after `calls=` is the call's inclusive cost: it
                # moves the position, its instructions are the callee's.
                after_call = False
                addr = _position(text.split()[0], addr)
                continue
            if text.startswith("calls="):
                after_call = True
                continue
            if not text or text[0] not in "0123456789+-*" or text.startswith("totals"):
                continue
            fields = text.split()
            addr = _position(fields[0], addr)
            if len(fields) > positions:
                cost[addr // LINE] += int(fields[positions])
    if positions == 0:
        sys.exit(f"callgrind-lines: {path} names no positions (not a callgrind profile?)")
    return sum(1 for n in cost.values() if n >= calls)


def _position(field, addr):
    if field == "*":
        return addr
    if field.startswith(("+", "-")):
        return addr + int(field)
    return int(field, 16) if field.startswith("0x") else int(field)


if __name__ == "__main__":
    if len(sys.argv) != 3 or not re.fullmatch(r"[0-9]+", sys.argv[2]) or int(sys.argv[2]) == 0:
        sys.exit("usage: callgrind-lines.py PROFILE CALLS")
    print(hot_lines(sys.argv[1], int(sys.argv[2])))

#!/usr/bin/env python3
"""Ratios of the criterion benchmarks in benches/auth.rs to their baselines.

Reads target/criterion/**/new/{estimates,sample,benchmark}.json (written by
`cargo bench --bench auth`) and prints one row per benchmark: its estimate
(the mean by default) with the 95% confidence interval, its fastest sample,
the baseline it is compared with, the ratio for both figures, the time net
of the per-call `block_on` overhead where the benchmark pays it, and the
issue 7 target with a verdict for the estimate and for the fastest sample.

The fastest sample is shown because this machine is shared: other work only
ever slows a sample down, so on a busy machine the fastest sample is the
figure least disturbed by it, and the mean is the honest upper one.

    python3 scripts/bench-ratios.py                  # plain table, means
    python3 scripts/bench-ratios.py --markdown       # for BENCHMARKS.md
    python3 scripts/bench-ratios.py --estimate slope # criterion's headline figure
    python3 scripts/bench-ratios.py --dir other/criterion

Standard library only. Exits 1 when no estimates are found. Directories
left over from benchmarks that no longer exist are listed at the end.
"""

import argparse
import json
import os
import sys

OVERHEAD = "overhead/block_on_empty"
ALGS = ("RS256", "ES256", "EdDSA")
FLOODS = ("malformed", "wrong_issuer", "expired", "bad_signature")


class Bench:
    """One benchmark: estimate (ns) with its interval, and the fastest sample (ns)."""

    def __init__(self, value, low, high, fastest):
        self.value, self.low, self.high, self.fastest = value, low, high, fastest


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fastest_sample(doc):
    """The fastest sample's time per iteration (ns), or None."""
    try:
        return min(t / n for t, n in zip(doc["times"], doc["iters"]) if n)
    except (TypeError, KeyError, ValueError):
        return None


def load(root, estimate):
    """{benchmark id: Bench} for every `new` measurement under root."""
    found = {}
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
            continue
        name = os.path.relpath(os.path.dirname(dirpath), root).replace(os.sep, "/")
        meta = read_json(os.path.join(dirpath, "benchmark.json")) or {}
        name = meta.get("full_id", name)
        doc = read_json(os.path.join(dirpath, "estimates.json")) or {}
        # `slope` is null for flat sampling; fall back to the mean then.
        est = doc.get(estimate) or doc.get("mean")
        if not est:
            continue
        point = est["point_estimate"]
        ci = est.get("confidence_interval", {})
        found[name] = Bench(
            point,
            ci.get("lower_bound", point),
            ci.get("upper_bound", point),
            fastest_sample(read_json(os.path.join(dirpath, "sample.json"))),
        )
    return found


def rules():
    """(benchmark, baseline or None, subtract block_on overhead?, target text, check)."""
    out = [
        (OVERHEAD, None, False, "", None),
        ("baseline/read_header", OVERHEAD, True, "", None),
        ("baseline/build_header", None, False, "", None),
    ]
    for alg in ALGS:
        out.append((f"bare/{alg}", None, False, "", None))
    for kind in ("verify", "verify_nocache", "authenticate"):
        for alg in ALGS:
            out.append((f"cold/{kind}/{alg}", f"bare/{alg}", False, "ratio <= 1.15",
                        ("ratio", 1.15)))
    for alg in ALGS:
        out.append((f"warm/authenticate/{alg}", "baseline/read_header", True,
                    "net <= 2 us", ("net", 2000.0)))
    out.append(("warm/authenticate_amortized/ES256", None, False, "<= 2 us",
                ("value", 2000.0)))
    out += [
        ("challenge/initial", "challenge/format_baseline", False, "", None),
        ("challenge/invalid_token", "challenge/format_baseline", False, "", None),
        ("challenge/format_baseline", None, False, "", None),
        ("metadata/auth_layer", "metadata/plain_route", True, "", None),
        ("metadata/plain_route", None, True, "", None),
    ]
    out.append(("e2e/rmcp", None, True, "", None))
    out.append(("e2e/rmcp_after", "e2e/rmcp", True, "drift", None))
    for alg in ("RS256", "ES256"):
        for kind in ("auth_layer", "mcp_server"):
            # Throughput >= 0.95x the plain server: time per call <= 1/0.95.
            out.append((f"e2e/{kind}/{alg}", "e2e/rmcp", True, "ratio <= 1.053 (0.95x req/s)",
                        ("ratio", 1 / 0.95)))
    for kind in FLOODS:
        # The cache must not make a flood dearer (5% allowed for noise).
        out.append((f"flood/{kind}", f"flood_nocache/{kind}", True,
                    "ratio <= 1.0 (+5% noise)", ("ratio", 1.05)))
    for kind in FLOODS:
        if kind == "bad_signature":
            out.append((f"flood_nocache/{kind}", "bare/RS256", True, "one RS256 verify", None))
        else:
            out.append((f"flood_nocache/{kind}", "baseline/read_header", True, "no crypto",
                        None))
    return out


def fmt_time(ns):
    if ns is None:
        return "-"
    if abs(ns) >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if abs(ns) >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.0f} ns"


def fmt_ratio(r):
    return f"{r:.2f}x" if r is not None else "-"


def div(a, b):
    return a / b if a is not None and b else None


def verdict(check, value, ratio, net):
    if not check:
        return ""
    what, limit = check
    x = {"ratio": ratio, "net": net, "value": value}[what]
    if x is None:
        return "?"
    return "met" if x <= limit else "NOT met"


def rows(est):
    over = est.get(OVERHEAD)
    known = set()
    out = []
    for name, base, subtract, target, check in rules():
        known.add(name)
        b = est.get(name)
        if b is None:
            continue
        bb = est.get(base) if base else None
        ratio = div(b.value, bb.value if bb else None)
        ratio_fast = div(b.fastest, bb.fastest if bb else None)
        net = b.value - over.value if subtract and over else None
        net_fast = (b.fastest - over.fastest
                    if subtract and over and b.fastest is not None and over.fastest is not None
                    else None)
        v1 = verdict(check, b.value, ratio, net)
        v2 = verdict(check, b.fastest, ratio_fast, net_fast)
        out.append([
            name,
            fmt_time(b.value),
            f"{fmt_time(b.low)} .. {fmt_time(b.high)}",
            fmt_time(b.fastest),
            base or "-",
            fmt_ratio(ratio),
            fmt_ratio(ratio_fast),
            fmt_time(net),
            fmt_time(net_fast),
            target,
            f"{v1} / {v2}" if check else "",
        ])
    for name in sorted(set(est) - known):
        b = est[name]
        out.append([name, fmt_time(b.value), f"{fmt_time(b.low)} .. {fmt_time(b.high)}",
                    fmt_time(b.fastest), "-", "-", "-", "-", "-", "(not a known benchmark)", ""])
    return out


def header(estimate):
    return ["benchmark", estimate, "95% CI", "fastest", "baseline", "ratio",
            "ratio (fastest)", "net of block_on", "net (fastest)", "target",
            "verdict (est. / fastest)"]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(os.path.dirname(here), "target", "criterion")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=default, help="criterion output (default %(default)s)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--estimate", choices=("mean", "median", "slope"), default="mean",
                        help="criterion estimate to use (default %(default)s; criterion's own "
                             "summary line shows the slope)")
    args = parser.parse_args()

    est = load(args.dir, args.estimate)
    if not est:
        print(f"no criterion estimates under {args.dir}; run `cargo bench --bench auth` first",
              file=sys.stderr)
        return 1
    head = header(args.estimate)
    table = rows(est)
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in table:
            print("| " + " | ".join(c.replace("|", "\\|") or " " for c in r) + " |")
    else:
        widths = [max(len(r[i]) for r in table + [head]) for i in range(len(head))]
        print("  ".join(c.ljust(w) for c, w in zip(head, widths)).rstrip())
        print("  ".join("-" * w for w in widths))
        for r in table:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if OVERHEAD in est:
        print(f"\nnet of block_on = time - {OVERHEAD} ({fmt_time(est[OVERHEAD].value)}, fastest "
              f"{fmt_time(est[OVERHEAD].fastest)}); cold/*, bare/* and *_amortized run many "
              "calls per block_on (or none) and need no subtraction.")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        sys.exit(0)

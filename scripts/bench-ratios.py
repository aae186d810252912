#!/usr/bin/env python3
"""Ratios of the criterion benchmarks in benches/auth.rs to their baselines.

Reads target/criterion/**/new/estimates.json (written by
`cargo bench --bench auth`) and prints one row per benchmark: its mean, the
baseline it is compared with, the ratio, the time net of the per-call
`block_on` overhead where the benchmark pays it, and the issue 7 target.

    python3 scripts/bench-ratios.py                  # plain table
    python3 scripts/bench-ratios.py --markdown       # for BENCHMARKS.md
    python3 scripts/bench-ratios.py --estimate slope # criterion's headline figure
    python3 scripts/bench-ratios.py --dir other/criterion

Standard library only. Exits 1 when no estimates are found.
"""

import argparse
import json
import os
import sys

OVERHEAD = "overhead/block_on_empty"
ALGS = ("RS256", "ES256", "EdDSA")
FLOODS = ("malformed", "wrong_issuer", "expired", "bad_signature")


def load(root, estimate="mean"):
    """{benchmark id: (estimate ns, ci low ns, ci high ns)} for every `new` estimate."""
    found = {}
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
            continue
        bench_dir = os.path.dirname(dirpath)
        name = os.path.relpath(bench_dir, root).replace(os.sep, "/")
        meta = os.path.join(dirpath, "benchmark.json")
        if os.path.exists(meta):
            try:
                with open(meta) as f:
                    name = json.load(f).get("full_id", name)
            except (OSError, ValueError):
                pass
        try:
            with open(os.path.join(dirpath, "estimates.json")) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue
        # `slope` is null for flat sampling; fall back to the mean then.
        mean = doc.get(estimate) or doc.get("mean")
        if not mean:
            continue
        ci = mean.get("confidence_interval", {})
        found[name] = (
            mean["point_estimate"],
            ci.get("lower_bound", mean["point_estimate"]),
            ci.get("upper_bound", mean["point_estimate"]),
        )
    return found


def rules():
    """(benchmark, baseline or None, subtract block_on overhead?, target text, check)."""
    out = [
        ("overhead/block_on_empty", None, False, "", None),
        ("baseline/read_header", OVERHEAD, True, "", None),
        ("baseline/build_header", None, False, "", None),
    ]
    for alg in ALGS:
        out.append((f"bare/{alg}", None, False, "", None))
    for alg in ALGS:
        out.append((f"cold/verify/{alg}", f"bare/{alg}", False, "ratio <= 1.15",
                    ("ratio", 1.15)))
    for alg in ALGS:
        out.append((f"cold/verify_nocache/{alg}", f"bare/{alg}", False, "ratio <= 1.15",
                    ("ratio", 1.15)))
    for alg in ALGS:
        out.append((f"cold/authenticate/{alg}", f"bare/{alg}", False, "ratio <= 1.15",
                    ("ratio", 1.15)))
    for alg in ALGS:
        out.append((f"warm/authenticate/{alg}", "baseline/read_header", True,
                    "net <= 2 us", ("net", 2000.0)))
    out.append(("warm/authenticate_amortized/ES256", None, False, "mean <= 2 us",
                ("mean", 2000.0)))
    out += [
        ("challenge/initial", "challenge/format_baseline", False, "", None),
        ("challenge/invalid_token", "challenge/format_baseline", False, "", None),
        ("challenge/format_baseline", None, False, "", None),
        ("metadata/auth_layer", "metadata/plain_route", True, "", None),
        ("metadata/plain_route", None, True, "", None),
    ]
    for kind in FLOODS:
        # The cache must not make a flood dearer (5% allowed for noise).
        out.append((f"flood/{kind}", f"flood_nocache/{kind}", True, "ratio <= 1.0 (+5% noise)",
                    ("ratio", 1.05)))
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
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.0f} ns"


def rows(est):
    overhead = est.get(OVERHEAD, (None,))[0]
    known = set()
    out = []
    for name, base, subtract, target, check in rules():
        known.add(name)
        if name not in est:
            continue
        mean, lo, hi = est[name]
        base_mean = est[base][0] if base in est else None
        ratio = mean / base_mean if base_mean else None
        net = mean - overhead if subtract and overhead is not None else None
        verdict = ""
        if check:
            what, limit = check
            value = {"ratio": ratio, "net": net, "mean": mean}[what]
            if value is not None:
                verdict = "met" if value <= limit else "NOT met"
        out.append([
            name,
            fmt_time(mean),
            f"{fmt_time(lo)} .. {fmt_time(hi)}",
            base or "-",
            fmt_time(base_mean),
            f"{ratio:.2f}x" if ratio is not None else "-",
            fmt_time(net),
            target,
            verdict,
        ])
    for name in sorted(set(est) - known):
        mean, lo, hi = est[name]
        out.append([name, fmt_time(mean), f"{fmt_time(lo)} .. {fmt_time(hi)}",
                    "-", "-", "-", "-", "", ""])
    return out


HEADER = ["benchmark", "estimate", "95% CI", "baseline", "baseline est.", "ratio",
          "net of block_on", "target", "verdict"]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(os.path.dirname(here), "target", "criterion")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=default, help="criterion output (default %(default)s)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--estimate", choices=("mean", "median", "slope"), default="mean",
                        help="which criterion estimate to use (default %(default)s; criterion's "
                             "own summary line shows the slope)")
    args = parser.parse_args()

    est = load(args.dir, args.estimate)
    if not est:
        print(f"no criterion estimates under {args.dir}; run `cargo bench --bench auth` first",
              file=sys.stderr)
        return 1
    table = rows(est)
    if args.markdown:
        print("| " + " | ".join(HEADER) + " |")
        print("|" + "---|" * len(HEADER))
        for r in table:
            print("| " + " | ".join(c if c else " " for c in r) + " |")
    else:
        widths = [max(len(r[i]) for r in table + [HEADER]) for i in range(len(HEADER))]
        line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
        print(line(HEADER))
        print("  ".join("-" * w for w in widths))
        for r in table:
            print(line(r))
    if OVERHEAD in est:
        print(f"\nnet of block_on = mean - {OVERHEAD} ({fmt_time(est[OVERHEAD][0])}); "
              "cold/* and *_amortized run many calls per block_on and need no subtraction.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

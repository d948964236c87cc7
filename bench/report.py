#!/usr/bin/env python3
"""Renders swasm-bench's raw results (and the criterion benches' printed output) into
bench/results/RESULTS.md, bench/results/throughput.png and the marked section of
BENCHMARKS.md. Run by bench/run; safe to rerun on the same raw directory."""
import argparse
import glob
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys

START, END = "<!-- results:start -->", "<!-- results:end -->"

# Goals from the issues: (bench, variant) -> (text, check(median, ctx) -> bool | None)
GOALS = {
    ("throughput", "swasm-rust"): "≥ 0.9× native and ≥ 10× boto3",
    ("throughput", "swasm-rust / native"): "≥ 0.9",
    ("memory", "swasm-rust"): "≤ 256 MB",
    ("heartbeat", "heartbeat calls"): "≤ 1 per interval + final flush",
    ("hotswap", "rust cold"): "≤ 150 ms",
    ("hotswap", "rust warm"): "≤ 20 ms",
}


def sh(*cmd, default="?"):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        return default


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
        ram = f"{mem_kb / 1024 / 1024:.1f} GiB"
    except Exception:
        ram = "?"
    try:
        load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return {"nproc": sh("nproc"), "cpu": cpu, "ram": ram, "kernel": platform.release(), "load": load}


def lock_version(name):
    try:
        text = open("Cargo.lock").read()
        m = re.search(r'name = "%s"\nversion = "([^"]+)"' % re.escape(name), text)
        return m.group(1) if m else "?"
    except OSError:
        return "?"


def versions(python):
    rev = sh("git", "rev-parse", "--short=12", "HEAD")
    if sh("git", "status", "--porcelain", "--untracked-files=no", default=""):
        rev += " (with uncommitted changes)"
    return {
        "rustc": sh("rustc", "--version"),
        "wasmtime": lock_version("wasmtime"),
        "aws-sdk-swf": lock_version("aws-sdk-swf"),
        "swasm": rev,
        "python": sh(python, "--version"),
        "boto3": sh(python, "-c", "import boto3; print(boto3.__version__)"),
    }


def median(values):
    return statistics.median(values) if values else None


def fmt(x, unit=""):
    if x is None:
        return "–"
    if abs(x) >= 100:
        s = f"{x:,.0f}"
    elif abs(x) >= 10:
        s = f"{x:.1f}"
    elif abs(x) >= 0.1:
        s = f"{x:.2f}"
    else:
        s = f"{x:.3g}"
    return s


# ---- criterion output ----------------------------------------------------------------
UNITS = {"ps": 1e-6, "ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}


NOISE = re.compile(
    r"^\s*(Compiling|Finished|Running|Blocking|Downloaded|Downloading|Updating|Locking|warning|Benchmarking|Gnuplot|"
    r"Analyzing|Found \d+ outliers|\d+ \(\d|change:|Performance has|No change|Change within|-->|\||=|note:|help:)"
)


def criterion(path):
    """Rows (id, value, unit, detail) from a bench's printed output: criterion `time:` lines
    (median in µs) and `NAME: X pairs/s (N tasks)` lines; plus the output worth showing."""
    rows, extra = [], []
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        return None, []
    name = None
    for line in lines:
        m = re.match(r"^(\S.*?)\s+time:\s+\[(.*)\]", line)
        m2 = re.match(r"^\s+time:\s+\[(.*)\]", line)
        if m or m2:
            ident = m.group(1).strip() if m else name
            interval = (m.group(2) if m else m2.group(1)).split()
            if len(interval) == 6 and ident:
                mid, unit = float(interval[2]), interval[3]
                rows.append((ident, mid * UNITS.get(unit, float("nan")), "µs", "criterion median [" + " ".join(interval) + "]"))
            continue
        p = re.match(r"^\s*([^:]+?):\s+([\d.]+) pairs/s\s*(.*)$", line)
        if p:
            rows.append((p.group(1), float(p.group(2)), "pairs/s", p.group(3).strip("() ")))
        if line.strip() and not line[0].isspace() and "time:" not in line:
            name = line.strip()
        if line.strip() and not NOISE.match(line) or line.startswith("|"):
            extra.append(line.rstrip())
    return rows, extra[-80:]


def repeated(first, more):
    """`first` (rows, extra) with each row that also appears in the repeat files `more`
    replaced by the median over all processes, its detail giving the spread."""
    rows, extra = first
    if rows is None or not more:
        return first
    runs = [dict(((i, u), v) for i, v, u, _ in (criterion(f)[0] or [])) for f in more]
    out = []
    for ident, value, unit, detail in rows:
        values = [value] + [r[(ident, unit)] for r in runs if (ident, unit) in r]
        if len(values) > 1:
            detail = (
                f"median of {len(values)} processes (each a criterion estimate); "
                f"range {min(values):.1f}..{max(values):.1f} {unit}"
            )
            value = median(values)
        out.append((ident, value, unit, detail))
    return out, extra


# ---- the table -----------------------------------------------------------------------
def table(records, crit):
    by = {(r["bench"], r["variant"]): r for r in records}
    med = {k: median(r["values"]) for k, r in by.items()}
    out = [
        "| benchmark | variant | median | unit | runs | goal | ratio / verdict | notes |",
        "|---|---|---:|---|---|---|---|---|",
    ]

    def row(r, ratio="", goal=""):
        vals = ", ".join(fmt(v) for v in r["values"]) or "–"
        notes = "; ".join(r["notes"]).replace("|", "/")
        out.append(
            f"| {r['bench']} | {r['variant']} | {fmt(median(r['values']))} | {r['metric']} | {vals} | {goal} | {ratio} | {notes} |"
        )

    native = med.get(("throughput", "native"))
    boto3 = med.get(("throughput", "boto3"))
    # The goal's ratio: the median of the per-repetition ratios (each pair ran back to
    # back), when recorded; else the ratio of the medians.
    paired = med.get(("throughput", "swasm-rust / native"))
    for r in records:
        key = (r["bench"], r["variant"])
        m = med[key]
        goal = GOALS.get(key, "")
        ratio = ""
        if key == ("throughput", "swasm-rust / native") and m is not None:
            vals = r["values"]
            ratio = (
                f"median of {len(vals)} pairs, range {min(vals):.2f}..{max(vals):.2f}, "
                + ("**meets goal**" if m >= 0.9 else "**misses goal**")
            )
        elif r["bench"] == "throughput" and m is not None:
            parts = []
            if key == ("throughput", "swasm-rust") and paired is not None:
                parts.append(f"{paired:.2f}× native (median of the pairs, row below)")
            elif native:
                parts.append(f"{m / native:.2f}× native")
            if boto3 and r["variant"] != "boto3":
                parts.append(f"{m / boto3:.1f}× boto3")
            if key == ("throughput", "swasm-rust") and native and boto3:
                to_native = paired if paired is not None else m / native
                ok = to_native >= 0.9 and m >= 10 * boto3
                parts.append("**meets goal**" if ok else "**misses goal**")
            ratio = ", ".join(parts)
        elif r["bench"] in ("worker CPU", "machine CPU") and m is not None and med.get((r["bench"], "native")):
            ratio = f"{m / med[(r['bench'], 'native')]:.2f}× native"
        elif key == ("memory", "swasm-rust") and m is not None:
            ratio = f"{m / 256:.2f}× goal, " + ("**meets goal**" if m <= 256 else "**misses goal**")
        elif r["bench"] == "memory" and m is not None and med.get(("memory", "swasm-rust")):
            ratio = f"{m / med[('memory', 'swasm-rust')]:.1f}× swasm-rust"
        elif key == ("heartbeat", "heartbeat calls") and r["values"]:
            goals = by.get(("heartbeat", "heartbeat goal"), {}).get("values", [])
            if goals:
                ok = all(c <= g for c, g in zip(r["values"], goals))
                ratio = f"{m / median(goals):.2f}× goal, " + ("**meets goal**" if ok else "**misses goal**")
        elif key in (("hotswap", "rust cold"), ("hotswap", "rust warm")) and m is not None:
            limit = 150 if "cold" in key[1] else 20
            ratio = f"{m / limit:.2f}× goal, " + ("**meets goal**" if m <= limit else "**misses goal**")
        elif r["bench"] in ("hotswap", "startup") and m is not None:
            lang, kind = (r["variant"].split() + [""])[:2]
            rust = med.get((r["bench"], f"rust {kind}"))
            if rust and lang != "rust":
                ratio = f"{m / rust:.1f}× rust {kind}"
        row(r, ratio, goal)
    for title, (rows, _) in crit.items():
        if rows is None:
            out.append(f"| {title} | – | – | – | – | | not run | no output file |")
            continue
        ours = next((v for i, v, u, _ in rows if i == "swf-local" and u == "pairs/s"), None)
        warm = next((v for i, v, u, _ in rows if i.endswith("rust_echo_lookup_instantiate_run")), None)
        for ident, value, unit, detail in rows:
            goal = ""
            ratio = ""
            if title == "dispatch" and unit == "µs" and re.search(r"rust|echo", ident, re.I) and not re.search(
                r"native|direct|compile|load|evict|python|js|javascript|\bc\b", ident, re.I
            ):
                goal = "≤ 20 µs per task"
                ratio = f"{value / 20:.2f}× goal, " + ("**meets goal**" if value <= 20 else "**misses goal**")
            if title == "dispatch" and "evict" in ident and warm:
                ratio = f"{value / warm:.1f}× with warm caches (row above)"
            if ident.startswith("swf-local") and unit == "pairs/s":
                goal = "≥ 5,000 pairs/s"
                ratio = f"{value / 5000:.2f}× goal, " + ("**meets goal**" if value >= 5000 else "**misses goal**")
            elif ident == "moto" and unit == "pairs/s" and ours:
                ratio = f"swf-local is {ours / value:.0f}× moto"
            out.append(f"| {title} | {ident} | {fmt(value)} | {unit} | – | {goal} | {ratio} | {detail} |")
    return "\n".join(out)


def run_facts(args):
    """The machine, the versions (swasm's as `--rev` names it, if given) and the time now."""
    m, v = machine(), versions(sys.executable)
    if args.rev:
        v["swasm"] = args.rev
    return m, v, datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def pyplot():
    """matplotlib's pyplot without a display, or None (and a note) when it is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: matplotlib missing, no chart", file=sys.stderr)
        return None
    return plt


def chart(records, path):
    plt = pyplot()
    if plt is None:
        return False
    panels = [("throughput", "tasks/s (higher is better)"), ("memory", "peak RSS, MB (lower is better)")]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, (bench, label) in zip(axes, panels):
        rows = [r for r in records if r["bench"] == bench and r["values"] and r["metric"] != "×"]
        names = [r["variant"] for r in rows]
        meds = [median(r["values"]) for r in rows]
        lo = [m - min(r["values"]) for m, r in zip(meds, rows)]
        hi = [max(r["values"]) - m for m, r in zip(meds, rows)]
        colors = ["#4c72b0" if n.startswith("swasm") else "#999999" for n in names]
        ax.bar(names, meds, yerr=[lo, hi], color=colors, capsize=4)
        for i, m in enumerate(meds):
            ax.text(i, m, f"{m:,.0f}", ha="center", va="bottom", fontsize=9)
        ax.set_title(f"{bench}: {label}")
        ax.tick_params(axis="x", rotation=20)
    fig.suptitle("swasm vs native Rust and boto3 workers (median of runs; bars: min..max)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def splice(path, start, end, section):
    """Writes `section` between the `start` and `end` markers of `path` (appended, with
    the markers, where they are missing; a missing file starts as a bare heading)."""
    try:
        text = open(path).read()
    except OSError:
        text = "# Benchmarks\n"
    if start in text and end in text:
        a, rest = text.split(start, 1)
        _, b = rest.split(end, 1)
        text = f"{a}{start}\n{section}{end}{b}"
    else:
        text += f"\n{start}\n{section}{end}\n"
    with open(path, "w") as f:
        f.write(text)


def publish(args, name, title, body, image, markers):
    """Writes `body` (and its chart, `image` = `(file, alt text)` beside it, if any) as
    `args.out/name`, and the same between `markers` in BENCHMARKS.md, with the chart's
    path relative to the repository root."""
    if image:
        body += f"\n![{image[1]}]({image[0]})\n"
    with open(os.path.join(args.out, name), "w") as f:
        f.write(f"# {title}\n\n" + body)
    if image:
        body = body.replace(f"]({image[0]})", f"](bench/results/{image[0]})")
    splice(args.benchmarks, *markers, body)


# ---- the soak (bench/run --soak) --------------------------------------------------------
SOAK_START, SOAK_END = "<!-- soak:start -->", "<!-- soak:end -->"


def soak_table(records):
    out = [
        "| figure | after warm-up | at end | end / after warm-up | unit | notes |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in records:
        v = r["values"]
        notes = "; ".join(r["notes"]).replace("|", "/")
        if len(v) == 2:
            ratio = f"{v[1] / v[0]:.2f}×" if v[0] else "–"
            out.append(f"| {r['variant']} | {fmt(v[0])} | {fmt(v[1])} | {ratio} | {r['metric']} | {notes} |")
        else:
            out.append(f"| {r['variant']} | | {fmt(v[0] if v else None)} | | {r['metric']} | {notes} |")
    return "\n".join(out)


def soak_chart(samples, path):
    plt = pyplot() if samples else None
    if plt is None:
        return False
    tasks = [s["tasks"] / 1000 for s in samples]
    fig, (mem, res) = plt.subplots(1, 2, figsize=(12, 4.5))
    mem.plot(tasks, [s["host_rss_mb"] for s in samples], label="swasm host RSS", color="#4c72b0")
    mem.plot(tasks, [s["host_pool_rss_mb"] for s in samples], label="of it, the instance pool's", color="#55a868")
    mem.plot(tasks, [s["endpoint_rss_mb"] for s in samples], label="swf-local + driver RSS", color="#999999")
    mem.set_xlabel("tasks answered (thousands)")
    mem.set_ylabel("MB")
    mem.set_ylim(bottom=0)
    mem.legend()
    mem.set_title("memory over the soak")
    res.plot(tasks, [s["host_fds"] for s in samples], label="open fds", color="#4c72b0")
    res.plot(tasks, [s["host_threads"] for s in samples], label="threads", color="#dd8452")
    res.set_xlabel("tasks answered (thousands)")
    res.set_ylim(bottom=0)
    res.legend()
    res.set_title("swasm host: open fds and threads")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def soak_report(args):
    raw = json.load(open(os.path.join(args.raw, "soak.json")))
    m, v, when = run_facts(args)
    head = [
        f"Run: `bench/run --soak {raw['minutes']:g}` on {when}"
        + (f", {args.seconds / 60:.1f} min with its builds" if args.seconds else "")
        + f"; waves of {raw['wave']} tasks.",
        "",
        f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram']} RAM, Linux {m['kernel']}",
        f"- Versions: swasm `{v['swasm']}`, {v['rustc']}, wasmtime {v['wasmtime']}, aws-sdk-swf {v['aws-sdk-swf']}",
        "",
    ]
    os.makedirs(args.out, exist_ok=True)
    has_chart = soak_chart(raw["samples"], os.path.join(args.out, "soak.png"))
    tbl = soak_table(raw["records"])
    body = "\n".join(head) + "\n" + tbl + "\n"
    image = ("soak.png", "the soak: memory, fds and threads over tasks") if has_chart else None
    publish(args, "SOAK.md", "swasm soak results", body, image, (SOAK_START, SOAK_END))
    print(tbl)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--soak", action="store_true", help="render raw/soak.json instead (bench/run --soak)")
    p.add_argument("--raw", default="bench/results/raw")
    p.add_argument("--out", default="bench/results")
    p.add_argument("--benchmarks", default="BENCHMARKS.md")
    p.add_argument("--mode", default="full")
    p.add_argument("--seconds", type=float, default=None, help="wall time of the run")
    p.add_argument("--rev", default=None, help="the swasm revision measured (default: HEAD now)")
    args = p.parse_args()
    if args.soak:
        return soak_report(args)
    raw = json.load(open(os.path.join(args.raw, "results.json")))
    records = raw["records"]
    crit = {
        "dispatch": repeated(criterion(os.path.join(args.raw, "dispatch.txt")), sorted(glob.glob(os.path.join(args.raw, "dispatch-*.txt")))),
        "swf-local throughput": criterion(os.path.join(args.raw, "swf-local-throughput.txt")),
    }
    m, v, when = run_facts(args)
    sizes = raw.get("sizes", {})
    head = [
        f"Run: `bench/run{' --quick' if args.mode == 'quick' else ''}` on {when}"
        + (f", {args.seconds / 60:.1f} min" if args.seconds else "")
        + ".",
        "",
        f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram']} RAM, Linux {m['kernel']}; load average"
        f" (1/5/15 min) at the end of the run: {m['load']} (above 0 means other work shared the CPUs)",
        f"- Versions: swasm `{v['swasm']}`, {v['rustc']}, wasmtime {v['wasmtime']}, aws-sdk-swf {v['aws-sdk-swf']}, {v['python']}, boto3 {v['boto3']}",
        f"- Sizes: {json.dumps(sizes)}",
        "- Method: see BENCHMARKS.md; every worker is a separate process against swf-local on 127.0.0.1 in the driver's process; baselines measured in the same run. Medians of the runs listed.",
        "",
    ]
    tbl = table(records, crit)
    os.makedirs(args.out, exist_ok=True)
    png = os.path.join(args.out, "throughput.png")
    has_chart = chart(records, png)
    extras = []
    for title, (rows, extra) in crit.items():
        if extra:
            extras += ["", f"Printed by the {title} bench:", "", "```", *extra, "```"]
    body = "\n".join(head) + "\n" + tbl + "\n" + "\n".join(extras) + "\n"
    image = ("throughput.png", "throughput and memory") if has_chart else None
    publish(args, "RESULTS.md", "swasm benchmark results", body, image, (START, END))
    print(tbl)


if __name__ == "__main__":
    main()

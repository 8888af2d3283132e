#!/usr/bin/env python3
"""Turn the KEY VALUE records of run.sh / chunksize.sh into Markdown.

report.py compare RESULTS INFO   Haven vs restic (run.sh)
report.py chunks  RESULTS INFO   Haven per chunk size (chunksize.sh)
"""
import statistics
import sys

MIB = 1 << 20
NOTE = ("Page cache dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`) before every timed "
        "step, so every step reads cold; every timed step ends with `sync`, so data left dirty "
        "is paid for by the step that wrote it. MB/s = logical image size (4 GiB = 4295 MB) / wall "
        "time. CPU = user + system seconds (user / system in brackets: on this shared VM the system "
        "time of cold reads varies much more between runs than user time). With RUNS > 1 every number is the median over runs. Stored = `du -sb` of the repository.")


def load(path):
    """KEY VALUE lines; a key seen in several runs yields its median."""
    runs = {}
    for line in open(path):
        if line.startswith("#"):  # results.txt starts with the run's info
            continue
        k, v = line.split()
        runs.setdefault(k, []).append(float(v))
    return {k: statistics.median(v) for k, v in runs.items()}


def cpu(r, k):
    """user+sys seconds with the split, from the medians of each."""
    if f"{k}.user" not in r:
        return f"{r[k + '.cpu']:.1f}"
    return f"{r[k + '.cpu']:.1f} ({r[k + '.user']:.1f}/{r[k + '.sys']:.1f})"


def mib(b):
    return f"{b / MIB:,.1f} MiB"


def compare(r, info):
    size = r["img_size"]
    out = [f"# Haven vault vs restic: 4 GiB ext4 image ({mib(r['img_used'])} allocated)", "",
           f"`{info}`", "", NOTE, "",
           "| step | Haven s | restic s | Haven MB/s | restic MB/s | speed Haven/restic "
           "| Haven CPU s (user/sys) | restic CPU s (user/sys) | CPU Haven/restic | load at start Haven/restic |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    names = {"a": "a. first snapshot", "b": "b. snapshot after 1 % changed", "c": "c. full restore (sha256 verified)"}
    speed = {}
    for s, name in names.items():
        hw, rw = r[f"haven.{s}.wall"], r[f"restic.{s}.wall"]
        hc, rc = r[f"haven.{s}.cpu"], r[f"restic.{s}.cpu"]
        hcs, rcs = cpu(r, f"haven.{s}"), cpu(r, f"restic.{s}")
        speed[s] = rw / hw
        out.append(f"| {name} | {hw:.1f} | {rw:.1f} | {size / 1e6 / hw:,.0f} | {size / 1e6 / rw:,.0f} "
                   f"| {speed[s]:.2f}× | {hcs} | {rcs} | {hc / rc:.2f}× "
                   f"| {r.get(f'haven.{s}.load1', float('nan')):.1f} / {r.get(f'restic.{s}.load1', float('nan')):.1f} |")
    ch = r["changed"]
    hg, rg = r["haven.b.stored"] - r["haven.a.stored"], r["restic.b.stored"] - r["restic.a.stored"]
    out += ["", f"Bytes changed in step b: {mib(ch)} ({ch:,.0f} B, random 4 KiB blocks at distinct scattered offsets).", "",
            "| stored | Haven | restic | Haven/restic |", "|---|---:|---:|---:|",
            f"| after a | {mib(r['haven.a.stored'])} | {mib(r['restic.a.stored'])} | {r['haven.a.stored'] / r['restic.a.stored']:.2f} |",
            f"| growth in b | {mib(hg)} | {mib(rg)} | {hg / rg:.2f} |",
            f"| growth / bytes changed | {hg / ch:.1f}× | {rg / ch:.1f}× | |",
            f"| total after b | {mib(r['haven.b.stored'])} | {mib(r['restic.b.stored'])} | {r['haven.b.stored'] / r['restic.b.stored']:.2f} |",
            "", "| target (issue 20) | measured | met |", "|---|---:|---|"]
    targets = [("first snapshot ≥ 5× restic's speed", speed["a"], speed["a"] >= 5, "×"),
               ("incremental ≥ 12× restic's speed", speed["b"], speed["b"] >= 12, "×"),
               ("incremental growth ≤ 4× bytes changed", hg / ch, hg / ch <= 4, "× changed"),
               ("restore ≥ 6× restic's speed", speed["c"], speed["c"] >= 6, "×"),
               ("total stored ≤ restic's", r["haven.b.stored"] / r["restic.b.stored"],
                r["haven.b.stored"] <= r["restic.b.stored"], " of restic")]
    for name, val, ok, unit in targets:
        out.append(f"| {name} | {val:.2f}{unit} | {'yes' if ok else '**no**'} |")
    return out


def chunks(r, info):
    size, ch = r["img_size"], r["changed"]
    sizes = sorted({int(k.split(".")[0][2:]) for k in r if k.startswith("cs")})
    out = [f"# Haven vault: chunk size (4 GiB ext4 image, {mib(r['img_used'])} allocated)", "",
           f"`{info}`", "", NOTE, f" Step b changes {mib(ch)}.", "",
           "| chunk | a: s | a: MB/s | a: CPU s (user/sys) | stored after a | b: s | b: MB/s | b: CPU s (user/sys) "
           "| growth in b | growth / changed |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for cs in sizes:
        p = f"cs{cs}"
        aw, bw = r[f"{p}.a.wall"], r[f"{p}.b.wall"]
        g = r[f"{p}.b.stored"] - r[f"{p}.a.stored"]
        out.append(f"| {cs} KiB | {aw:.1f} | {size / 1e6 / aw:,.0f} | {cpu(r, p + '.a')} | {mib(r[f'{p}.a.stored'])} "
                   f"| {bw:.1f} | {size / 1e6 / bw:,.0f} | {cpu(r, p + '.b')} | {mib(g)} | {g / ch:.1f}× |")
    return out


def main():
    mode, results, info = sys.argv[1:4]
    r = load(results)
    info = open(info).read().strip().replace("\n", "; ")
    print("\n".join({"compare": compare, "chunks": chunks}[mode](r, info)))


if __name__ == "__main__":
    main()

"""DIR/report.html for a Jepsen run: a self-contained page (gnuplot PNGs
inlined as base64, no network) with the verdict, counts, anomalies and
  - latency of every operation over time, by outcome, fault windows shaded;
  - ok operations per second;
  - per-node role timeline (leader / follower / candidate / unreachable / down);
  - chain runs: the on-chain leader token and the votes against it, as each
    node's /status reported the contract.
write(out_dir, history_records, results) -> path of report.html; raises
OSError/RuntimeError when gnuplot fails (the verdict in results.json stands)."""
import base64
import html
import json
import os
import subprocess
import tempfile

ROLE_Y = {"leader": 0, "follower": 1, "candidate": 2, "unreachable": 3, "down": 4}
ROLE_COLOR = {"leader": "#d62728", "follower": "#2ca02c", "candidate": "#ff7f0e",
              "unreachable": "#9467bd", "down": "#7f7f7f"}
NEM_COLOR = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
             "#e377c2", "#bcbd22", "#17becf"]


def windows(hist, end):
    """[(name, start, stop)] from nemesis start/stop pairs."""
    open_, out = {}, []
    for h in hist:
        if h["kind"] != "nemesis":
            continue
        if h["type"] == "start":
            open_[h["f"]] = h["time"]
        elif h["type"] == "stop" and h["f"] in open_:
            out.append((h["f"], open_.pop(h["f"]), h["time"]))
    out += [(f, t, end) for f, t in open_.items()]
    return sorted(out, key=lambda w: w[1])


def gnuplot(script, tmp):
    r = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True,
                       cwd=tmp, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("gnuplot: %s" % r.stderr[-500:])


def shade(wins, names, ymin_expr="graph 0", ymax_expr="graph 1"):
    lines = []
    for k, (f, a, b) in enumerate(wins):
        c = NEM_COLOR[names.index(f) % len(NEM_COLOR)]
        lines.append("set object %d rect from %.3f, %s to %.3f, %s fc rgb '%s' "
                     "fs transparent solid 0.15 noborder behind"
                     % (k + 1, a, ymin_expr, b, ymax_expr, c))
    return "\n".join(lines)


def write(out, hist, results):
    ops = [h for h in hist if h["kind"] == "op"]
    end = max([results["time_s"]] + [o["complete"] for o in ops])
    wins = windows(hist, end)
    names = sorted({w[0] for w in wins})
    tmp = tempfile.mkdtemp(prefix="jepsen-plot-")
    for outcome in ("ok", "fail", "info"):
        for f in ("inc", "read", "insert"):
            with open(os.path.join(tmp, "lat-%s-%s.dat" % (f, outcome)), "w") as fh:
                for o in ops:
                    if o["type"] == outcome and o["f"] == f:
                        fh.write("%.4f %.3f\n" % (o["invoke"],
                                                  max(0.05, 1000 * (o["complete"] - o["invoke"]))))
    per_s = {}
    for o in ops:
        if o["type"] == "ok":
            per_s[int(o["complete"])] = per_s.get(int(o["complete"]), 0) + 1
    with open(os.path.join(tmp, "rate.dat"), "w") as fh:
        for s in range(0, int(end) + 1):
            fh.write("%d %d\n" % (s, per_s.get(s, 0)))
    nodes = sorted({h["node"] for h in hist if h["kind"] == "status"})
    with open(os.path.join(tmp, "roles.dat"), "w") as fh:
        for h in hist:
            if h["kind"] == "status":
                fh.write("%.3f %d %d\n" % (h["time"], h["node"], ROLE_Y.get(h["role"], 3)))
    # The fault names above the plot, in as many rows as keep them apart
    # (at most 7 a row: `all` has 17).
    rows = max(1, -(-len(names) // 7))
    per_row = -(-len(names) // rows) if names else 1
    legend_keys = "\n".join(
        "set label %d '%s' at graph %.3f, graph 1 offset 0,%.1f tc rgb '%s'" %
        (k + 1, f, 0.01 + min(0.16, 0.99 / per_row) * (k % per_row),
         0.7 + 1.1 * (rows - 1 - k // per_row), NEM_COLOR[k % len(NEM_COLOR)])
        for k, f in enumerate(names))
    common = "set terminal pngcairo size 1100,%d font 'sans,9'\nset xrange [0:%.1f]\n" % (
        360 + 24 * (rows - 1), end)
    common += "set tmargin %d\n" % (2 + 2 * rows)
    toff = 1 + (rows - 1)  # the title above the rows of fault names
    common += "set xlabel 'time since start (s)'\nset grid\nset key outside right\n"
    pts = []
    for f, pt in (("inc", 7), ("read", 6), ("insert", 5)):
        for outcome, col in (("ok", "#2ca02c"), ("fail", "#d62728"), ("info", "#ff7f0e")):
            dat = "lat-%s-%s.dat" % (f, outcome)
            if os.path.getsize(os.path.join(tmp, dat)):
                pts.append("'%s' using 1:2 with points pt %d ps 0.3 lc rgb '%s' title '%s %s'"
                           % (dat, pt, col, f, outcome))
    if not pts:
        pts = ["1/0 title 'no operations'"]
    gnuplot(common + "set output 'latency.png'\nset logscale y\nset ylabel 'latency (ms)'\n"
            "set title 'operation latency by outcome (shaded: fault windows)' offset 0,%d\n" % toff
            + shade(wins, names) + "\n" + legend_keys + "\nplot " + ", ".join(pts) + "\n", tmp)
    gnuplot(common + "set output 'rate.png'\nset ylabel 'ok ops / s'\nset yrange [0:*]\n"
            "set title 'completed ok operations per second' offset 0,%d\n" % toff
            + shade(wins, names) + "\n" + legend_keys +
            "\nplot 'rate.dat' using 1:2 with steps lw 1.5 lc rgb '#1f77b4' title 'ok/s'\n", tmp)
    role_plots = ", ".join(
        "'roles.dat' using 1:($3==%d ? $2 : 1/0) with points pt 5 ps 0.5 lc rgb '%s' title '%s'"
        % (y, ROLE_COLOR[r], r) for r, y in ROLE_Y.items())
    gnuplot(common.replace("1100,%d" % (360 + 24 * (rows - 1)),
                           "1100,%d" % (140 + 40 * len(nodes) + 24 * (rows - 1))) +
            "set output 'roles.png'\nset ylabel 'node'\nset yrange [%.1f:%.1f]\nset ytics 1\n"
            "set title 'role of each node as /status reported it' offset 0,%d\n"
            % (0.5, len(nodes) + 0.5, toff) + shade(wins, names) + "\n" + legend_keys +
            "\nplot " + role_plots + "\n", tmp)
    plots = ["latency", "rate", "roles"]
    chain_recs = [h for h in hist if h["kind"] == "status" and h.get("chain")]
    if chain_recs:
        with open(os.path.join(tmp, "chain.dat"), "w") as fh:
            for h in chain_recs:
                c = h["chain"]
                fh.write("%.3f %d %s %s\n" % (h["time"], h["node"],
                                               c.get("leader") if c.get("leader") is not None
                                               else "NaN",
                                               c.get("votes") if c.get("votes") is not None
                                               else "NaN"))
        top = max([len(nodes)] + [h["chain"].get("leader") or 0 for h in chain_recs]) + 0.5
        gnuplot(common + "set output 'chain.png'\nset ylabel 'on-chain leader token'\n"
                "set y2label 'votes against the leader'\nset yrange [-0.5:%.1f]\n"
                "set y2range [0:*]\nset ytics 1\nset y2tics 1\n"
                "set title 'contract view as each node reported it (leader token, votes)' "
                "offset 0,%d\n" % (top, toff) + shade(wins, names) + "\n" + legend_keys + "\nplot " +
                ", ".join("'chain.dat' using 1:($2==%d ? $3+0.08*(%d-2) : 1/0) with points pt 5 "
                          "ps 0.4 title 'leader seen by node %d'" % (i, i, i) for i in nodes) +
                ", 'chain.dat' using 1:4 axes x1y2 with points pt 1 ps 0.6 lc rgb 'black' "
                "title 'votes against'\n", tmp)
        plots.append("chain")
    imgs = {}
    for p in plots:
        with open(os.path.join(tmp, p + ".png"), "rb") as fh:
            imgs[p] = base64.b64encode(fh.read()).decode()
        os.replace(os.path.join(tmp, p + ".png"), os.path.join(out, p + ".png"))
    for f in os.listdir(tmp):
        os.unlink(os.path.join(tmp, f))
    os.rmdir(tmp)
    r = results
    verdict = ("<span style='color:#2ca02c'>VALID</span>" if r["valid"]
               else "<span style='color:#d62728'>INVALID</span>")
    rows = "".join("<tr><td>%s</td><td>%d</td><td>%d</td><td>%d</td></tr>" %
                   (f, c["ok"], c["fail"], c["info"]) for f, c in sorted(r["counts"].items()))
    an = "".join("<li><b>%s</b>: %s <small>(ops %s)</small></li>" %
                 (html.escape(a["type"]), html.escape(a["msg"]),
                  html.escape(str(a["ops"][:10]))) for a in r["anomalies"][:200])
    wl = "".join("<tr><td>%s</td><td>%.1f</td><td>%.1f</td></tr>" % (html.escape(f), a, b)
                 for f, a, b in wins)
    av = r["availability"]
    page = """<!doctype html><html><head><meta charset="utf-8">
<title>nftraft Jepsen run, seed %(seed)s</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1150px}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
img{max-width:100%%;display:block;margin:0.5em 0 1.5em}</style></head><body>
<h1>nftraft Jepsen run: %(verdict)s</h1>
<p>seed %(seed)s &middot; %(nodes)s nodes &middot; chain %(chain)s &middot; %(time)s s &middot;
%(conc)s clients &middot; nemesis <code>%(nem)s</code> &middot; idempotency keys %(keys)s</p>
<p>%(ops)d operations, %(entries)s log entries, %(okps)s ok/s, longest unavailability
%(unav)s s (from t=%(unavfrom)s s), %(secs)s of seconds had an ok operation.</p>
<table><tr><th>op</th><th>ok</th><th>fail</th><th>info</th></tr>%(rows)s</table>
<h2>Anomalies (%(nan)d)</h2><ul>%(an)s</ul>
%(warn)s<h2>Latency</h2><img src="data:image/png;base64,%(lat)s">
<h2>Throughput</h2><img src="data:image/png;base64,%(rate)s">
<h2>Roles</h2><img src="data:image/png;base64,%(roles)s">%(chainimg)s
<h2>Fault windows</h2><table><tr><th>nemesis</th><th>start (s)</th><th>stop (s)</th></tr>%(wl)s
</table><p><small>history: history.jsonl &middot; verdict: results.json</small></p>
</body></html>""" % {
        "verdict": verdict, "seed": r["seed"], "nodes": r["nodes"], "chain": r["chain"],
        "time": r["time_s"], "conc": r["concurrency"], "nem": html.escape(r["nemesis"]),
        "keys": r["idempotency_keys"], "ops": r["ops"], "entries": r["log_entries"],
        "okps": av["ok_per_s"], "unav": av["longest_unavailability_s"],
        "unavfrom": av["longest_unavailability_from_s"],
        "secs": "%.0f%%" % (100 * av["seconds_with_an_ok_op"]), "rows": rows,
        "nan": sum(r["anomaly_counts"].values()), "an": an or "<li>none</li>",
        "warn": ("<h2>Warnings</h2><ul>%s</ul>" % "".join(
            "<li>%s</li>" % html.escape(w) for w in r.get("warnings", []))
                 if r.get("warnings") else ""),
        "lat": imgs["latency"], "rate": imgs["rate"], "roles": imgs["roles"], "wl": wl,
        "chainimg": ("<h2>Chain</h2><img src=\"data:image/png;base64,%s\">" % imgs["chain"]
                  if "chain" in imgs else "")}
    path = os.path.join(out, "report.html")
    with open(path, "w") as fh:
        fh.write(page)
    return path


if __name__ == "__main__":  # re-render: report.py DIR
    import sys
    d = sys.argv[1]
    hist = [json.loads(l) for l in open(os.path.join(d, "history.jsonl"))]
    print(write(d, hist, json.load(open(os.path.join(d, "results.json")))))

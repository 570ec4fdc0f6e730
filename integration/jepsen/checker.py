"""Exact linearizability checker for the nftraft counter, in O(n log n).

Why exact without a search: every increment carries a `by` that no other
logical operation uses, and the raft op log (GET /log) shows each entry's
`by`, so the log *is* the linearization order of the writes: each entry is
attributed to exactly one operation. Reads are placed by value: `by` > 0, so
the counter's prefix sums strictly increase and a read's value names the one
gap of the log it observed. Then the history is linearizable iff
  * every node holds the same log and each entry's value = previous + by;
  * every entry belongs to exactly one invoked operation, at most once
    (an Idempotency-Key retried after "outcome unknown" reuses the `by`,
    so a second entry is an idempotency violation);
  * every ok increment is in the log, at the index and with the value it
    was answered; no increment whose every attempt failed is in it;
  * positions respect real time: if A completed before B was invoked,
    pos(A) <= pos(B) (writes at integer positions, reads at k + 0.5; equal
    only for two reads of the same gap). Pairwise suffices: a cycle in
    real-time-plus-position order would need equal positions, i.e. reads of
    one gap only, whose real-time order is acyclic.

An op (one line of history.jsonl with "kind":"op"): id, f ("inc"|"read"),
by, key (or null), type ("ok"|"fail"|"info"), invoke, complete (seconds),
value, index, node. check(ops, logs) -> {"valid", "counts", "anomalies"},
each anomaly {"type", "msg", "ops": [ids], "index": [...]}."""
import bisect

INF = float("inf")
MAX_PER_TYPE = 50  # anomalies listed per type (all are counted)


class Result:
    def __init__(self):
        self.counts = {}
        self.anomalies = []

    def add(self, typ, msg, ops=(), index=()):
        self.counts[typ] = self.counts.get(typ, 0) + 1
        if self.counts[typ] <= MAX_PER_TYPE:
            self.anomalies.append({"type": typ, "msg": msg, "ops": list(ops),
                                   "index": list(index)})


def check_logs(logs, res):
    """All nodes' logs identical; returns the reference log."""
    ids = sorted(logs)
    ref_id = max(ids, key=lambda i: len(logs[i]))
    ref = logs[ref_id]
    key = lambda e: (e["index"], e["by"], e["value"], e.get("term"))
    for i in ids:
        if i == ref_id:
            continue
        a, b = logs[i], ref
        if len(a) != len(b) or any(key(x) != key(y) for x, y in zip(a, b)):
            k = next((j for j, (x, y) in enumerate(zip(a, b)) if key(x) != key(y)),
                     min(len(a), len(b)))
            res.add("log-divergence",
                    "node %s's log differs from node %s's at op-log position %d "
                    "(%d vs %d entries): %s vs %s" %
                    (i, ref_id, k + 1, len(a), len(b),
                     a[k] if k < len(a) else "end", b[k] if k < len(b) else "end"),
                    index=[b[k]["index"]] if k < len(b) else [])
    prev = 0
    for e in ref:
        if e["value"] != prev + e["by"]:
            res.add("log-value-jump", "entry at raft index %d has value %d, previous %d + by %d"
                    % (e["index"], e["value"], prev, e["by"]), index=[e["index"]])
        prev = e["value"]
    return ref


def check(ops, logs):
    res = Result()
    ref = check_logs(logs, res)
    prefix = [0]
    for e in ref:
        prefix.append(prefix[-1] + e["by"])
    # Logical increments: attempts sharing a `by` (Idempotency-Key retries).
    groups = {}
    for o in ops:
        if o["f"] == "inc":
            groups.setdefault(o["by"], []).append(o)
    for by, atts in groups.items():
        keys = {a.get("key") for a in atts}
        if len(keys) > 1 or (len(atts) > 1 and None in keys):
            res.add("history-malformed", "by %d used by unrelated operations" % by,
                    ops=[a["id"] for a in atts])
    where = {}  # by -> list of op-log positions (1-based)
    for pos, e in enumerate(ref, 1):
        where.setdefault(e["by"], []).append(pos)
    for by, poss in where.items():
        atts = groups.get(by)
        if atts is None:
            res.add("unknown-entry", "log entry at raft index %d (by %d) matches no invoked "
                    "operation" % (ref[poss[0] - 1]["index"], by),
                    index=[ref[p - 1]["index"] for p in poss])
        elif len(poss) > 1:
            keyed = atts[0].get("key") is not None
            res.add("idempotency-violation" if keyed else "duplicate-entry",
                    "%s applied %d times (raft indexes %s)" %
                    (("key %s" % atts[0]["key"]) if keyed else ("increment by %d" % by),
                     len(poss), [ref[p - 1]["index"] for p in poss]),
                    ops=[a["id"] for a in atts], index=[ref[p - 1]["index"] for p in poss])
    items = []  # (invoke, complete, pos, op ids, kind)
    for by, atts in groups.items():
        poss = where.get(by, [])
        oks = [a for a in atts if a["type"] == "ok"]
        if oks and not poss:
            res.add("lost-write", "acknowledged increment by %d (value %s, index %s) is not in "
                    "the log" % (by, oks[0].get("value"), oks[0].get("index")),
                    ops=[a["id"] for a in oks])
        if poss and all(a["type"] == "fail" for a in atts):
            res.add("failed-applied", "increment by %d failed (definitely not applied) but is "
                    "in the log at raft index %d" % (by, ref[poss[0] - 1]["index"]),
                    ops=[a["id"] for a in atts], index=[ref[poss[0] - 1]["index"]])
        if not poss:
            continue
        e = ref[poss[0] - 1]
        for a in oks:
            if a.get("value") != e["value"] or a.get("index") != e["index"]:
                res.add("wrong-answer", "increment by %d answered value %s index %s, the log "
                        "has value %d at index %d" % (by, a.get("value"), a.get("index"),
                                                       e["value"], e["index"]),
                        ops=[a["id"]], index=[e["index"]])
        inv = min(a["invoke"] for a in atts)
        comp = min((a["complete"] for a in oks), default=INF)
        items.append((inv, comp, poss[0], [a["id"] for a in atts], "inc"))
    for o in ops:
        if o["f"] != "read" or o["type"] != "ok":
            continue
        k = bisect.bisect_left(prefix, o["value"])
        if k == len(prefix) or prefix[k] != o["value"]:
            res.add("impossible-read", "read of %s matches no prefix of the log" % o["value"],
                    ops=[o["id"]])
            continue
        items.append((o["invoke"], o["complete"], k + 0.5, [o["id"]], "read"))
    # Real time: sweep B by invoke; best = max position of any A with
    # complete(A) < invoke(B).
    by_comp = sorted(items, key=lambda t: t[1])
    j, best = 0, None
    for b in sorted(items, key=lambda t: t[0]):
        while j < len(by_comp) and by_comp[j][1] < b[0]:
            if best is None or by_comp[j][2] > best[2]:
                best = by_comp[j]
            j += 1
        if best is not None and best[2] > b[2]:
            a = best
            typ = "stale-read" if b[4] == "read" else "real-time-order"
            res.add(typ, "%s %s completed at %.3f s at log position %s, but %s %s invoked at "
                    "%.3f s sits earlier at position %s" %
                    (a[4], a[3], a[1], a[2], b[4], b[3], b[0], b[2]), ops=a[3] + b[3])
    return {"valid": not res.counts, "counts": res.counts, "anomalies": res.anomalies,
            "log_entries": len(ref)}

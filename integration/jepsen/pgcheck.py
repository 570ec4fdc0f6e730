"""Checker of the pg workload (run.py --workload pg): clients INSERT rows
with unique ids into one table through whatever node they believe holds the
primary PostgreSQL; after healing, every node's table is read. Valid iff
  * every acknowledged insert (type ok) is on every node (lost-write);
  * no insert whose outcome was a certain failure (type fail: nothing
    reached the server, or it answered ERROR) is on any node
    (failed-write-visible);
  * no node holds an id no client ever sent (phantom-row);
  * every node holds the same set of ids (divergent-nodes);
  * no acknowledgment came from an isolated primary for an insert invoked
    more than `fence_s` after the pg-partition nemesis cut it off
    (stale-primary-ack: its commits wait for a standby it cannot reach).
Inserts whose outcome is unknown (type info: timeout, reset, FATAL, a
cancelled synchronous wait) may or may not be there: counted (present /
absent), never an anomaly.

An op: {"kind": "op", "id", "f": "insert", "row", "type", "node", "invoke",
"complete"}. check(ops, rows, partitions, fence_s) with rows = {node: set of
ids} and partitions = [(node, start, stop)] -> {"valid", "counts",
"anomalies", "log_entries", "unknown"}."""

MAX_PER_TYPE = 50


def check(ops, rows, partitions=(), fence_s=1.3):
    counts, anomalies = {}, []

    def add(typ, msg, op_ids=()):
        counts[typ] = counts.get(typ, 0) + 1
        if counts[typ] <= MAX_PER_TYPE:
            anomalies.append({"type": typ, "msg": msg, "ops": list(op_ids), "index": []})

    ins = [o for o in ops if o.get("f") == "insert"]
    sent = {o["row"]: o for o in ins}
    nodes = sorted(rows)
    for o in ins:
        if o["type"] == "ok":
            missing = [n for n in nodes if o["row"] not in rows[n]]
            if missing:
                add("lost-write", "row %d acknowledged by node %s at %.3f s is missing on node(s) %s"
                    % (o["row"], o["node"], o["complete"], missing), [o["id"]])
        elif o["type"] == "fail":
            there = [n for n in nodes if o["row"] in rows[n]]
            if there:
                add("failed-write-visible", "row %d failed (%s) but is on node(s) %s"
                    % (o["row"], o.get("error", "?"), there), [o["id"]])
    for n in nodes:
        for rid in sorted(rows[n] - set(sent))[:MAX_PER_TYPE]:
            add("phantom-row", "node %s holds row %d that no client sent" % (n, rid))
    if nodes:
        union = set().union(*rows.values())
        for n in nodes:
            diff = union - rows[n]
            if diff:
                add("divergent-nodes", "node %s lacks %d row(s) other nodes hold (e.g. %s)"
                    % (n, len(diff), sorted(diff)[:5]))
    for node, start, stop in partitions:
        for o in ins:
            if (o["type"] == "ok" and o["node"] == node and o["invoke"] > start + fence_s
                    and (stop is None or o["invoke"] < stop)):
                add("stale-primary-ack", "node %s, isolated at %.3f s, acknowledged row %d "
                    "invoked at %.3f s" % (node, start, o["row"], o["invoke"]), [o["id"]])
    unknown = [o["row"] for o in ins if o["type"] == "info"]
    present = sum(1 for r in unknown if nodes and all(r in rows[n] for n in nodes))
    return {"valid": not counts, "counts": counts, "anomalies": anomalies,
            "log_entries": len(set().union(*rows.values())) if rows else 0,
            "unknown": {"total": len(unknown), "present": present,
                        "absent": len(unknown) - present}}


def check_unconverged(ops, rows):
    """When the nodes never converged: rows = {node: ids} of the nodes that
    could still be read. Every acknowledged row must be on at least one of
    them (lost-write-unconverged) and no failed insert's row on any; a
    weaker check than check(), but it tells a stuck cluster that kept every
    acknowledged row from one that lost some."""
    counts, anomalies = {}, []
    held = set().union(*rows.values()) if rows else set()
    ins = [o for o in ops if o.get("f") == "insert"]
    acked = [o for o in ins if o["type"] == "ok"]
    if rows:
        for o in acked:
            if o["row"] not in held:
                counts["lost-write-unconverged"] = counts.get("lost-write-unconverged", 0) + 1
                if counts["lost-write-unconverged"] <= MAX_PER_TYPE:
                    anomalies.append({"type": "lost-write-unconverged", "ops": [o["id"]], "index": [],
                                      "msg": "row %d acknowledged by node %s is on none of the readable "
                                             "nodes %s" % (o["row"], o["node"], sorted(rows))})
        for o in ins:
            if o["type"] == "fail" and o["row"] in held:
                counts["failed-write-visible"] = counts.get("failed-write-visible", 0) + 1
                if counts["failed-write-visible"] <= MAX_PER_TYPE:
                    anomalies.append({"type": "failed-write-visible", "ops": [o["id"]], "index": [],
                                      "msg": "row %d failed but is on a readable node" % o["row"]})
    return {"counts": counts, "anomalies": anomalies, "readable": sorted(rows),
            "acked": len(acked), "acked_found": sum(1 for o in acked if o["row"] in held)}

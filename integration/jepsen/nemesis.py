"""Nemeses: named, composable faults. Each is a class with
  name                 as given to --nemesis
  needs                "static", "chain" or None (any mode)
  start(ctx, rnd)  ->  a short description of what it did (dict), or None
                       when it did nothing (e.g. no leader known); when it
                       raises, the scheduler still calls stop()
  stop(ctx)            undoes it; must be safe to call after a failed start
The scheduler (run.py) runs at most one instance of each nemesis at a time,
writes a {"kind":"nemesis","type":"start"|"stop"} line to the history for
each, and calls stop() on every active one at the end (heal).

ctx is the Run object of run.py: ctx.topo (topology), ctx.n, ctx.node_ids,
ctx.leader() (id or None), ctx.kill(i), ctx.restart(i), ctx.data_dir(i), ctx.signal(i, sig),
ctx.fault_switch(i, on), ctx.chain (None or the chain fixture), ctx.procs
(node -> Popen), ctx.pg_primary() (--workload pg: the node whose /status
says raft leader with a primary PostgreSQL, or None); for delay:
ctx.delay_range, ctx.start_relay(i, ms, jitter, seed), ctx.stop_relays(),
ctx.peer_ports, ctx.relay_port, ctx.relay_mark.

Adding a nemesis = one class here + one line in REGISTRY. NOT_YET names
the ones left out and says why."""
import email.utils
import json
import os
import random
import signal
import time
import urllib.request


class Nemesis:
    name = "?"
    needs = None
    # starts a node with an empty data dir, which must read its raft id
    # from the contract (exits if it cannot: no cached view yet)
    starts_nodes = False
    # keeps the nodes from reading the current contract state
    cuts_chain = False
    # "pg": only with --workload pg (the nodes run --pg)
    workload = None

    def start(self, ctx, rnd):
        raise NotImplementedError

    def stop(self, ctx):
        pass


class Kill(Nemesis):
    """SIGKILL the leader (or a random node), restart it at stop."""
    name = "kill"

    def start(self, ctx, rnd):
        lead = ctx.leader()
        self.victim = lead if (lead and rnd.random() < 0.6) else rnd.choice(ctx.node_ids)
        ctx.kill(self.victim)
        return {"node": self.victim, "was_leader": self.victim == lead}

    def stop(self, ctx):
        ctx.restart(self.victim)
        return {"node": self.victim}


class Pause(Nemesis):
    """SIGSTOP the leader or a random node; SIGCONT at stop."""
    name = "pause"

    def start(self, ctx, rnd):
        lead = ctx.leader()
        self.victim = lead if (lead and rnd.random() < 0.6) else rnd.choice(ctx.node_ids)
        ctx.signal(self.victim, signal.SIGSTOP)
        paused(ctx).add(self.victim)
        return {"node": self.victim, "was_leader": self.victim == lead}

    def stop(self, ctx):
        ctx.signal(self.victim, signal.SIGCONT)
        paused(ctx).discard(self.victim)
        return {"node": self.victim}


def paused(ctx):
    """The nodes a pause nemesis holds stopped now (the clock nemesis does
    not pick them: their Date header cannot show its offset)."""
    if not hasattr(ctx, "paused"):
        ctx.paused = set()
    return ctx.paused


def node_wall_clock(ctx, i):
    """The node's wall-clock time, from the Date header of its HTTP answer
    (h2o takes it from gettimeofday, which libfaketime offsets)."""
    with urllib.request.urlopen(ctx.url(i) + "/status", timeout=3) as r:
        return email.utils.parsedate_to_datetime(r.headers["Date"]).timestamp()


class Clock(Nemesis):
    """Steps the wall clock (CLOCK_REALTIME) of one node (the leader half
    the time) or of a random subset by +/-5..120 s, through libfaketime
    (the runner preloads it into every node when this nemesis is selected);
    CLOCK_MONOTONIC stays real, as after an NTP step. Reset to "+0" at stop.
    start() checks, from each victim's HTTP Date header, that the offset
    took effect, and raises (an error in the history) when it did not."""
    name = "clock"

    def set(self, ctx, i, off):
        tmp = ctx.clock_file(i) + ".tmp"
        with open(tmp, "w") as f:
            f.write("%+ds\n" % off)
        os.replace(tmp, ctx.clock_file(i))

    def start(self, ctx, rnd):
        lead = ctx.leader()
        pool = [i for i in ctx.node_ids if i not in paused(ctx)] or ctx.node_ids
        if lead and lead in pool and rnd.random() < 0.5:
            victims = [lead]
        else:
            victims = sorted(rnd.sample(pool, rnd.randint(1, max(1, min(len(pool), ctx.n // 2)))))
        self.offsets = {i: rnd.choice((-1, 1)) * rnd.randint(5, 120) for i in victims}
        for i, off in self.offsets.items():
            self.set(ctx, i, off)
        # libfaketime re-reads the file when its cache (1 s, compared in
        # whole seconds) expires: up to ~3 s after the write
        seen, unseen = {}, []
        for i, off in self.offsets.items():
            deadline = time.time() + 6.0
            skew = None
            while time.time() < deadline and i not in ctx.expect_dead:
                try:
                    skew = node_wall_clock(ctx, i) - time.time()
                except (OSError, ValueError):
                    skew = None  # paused, partitioned or stalled: cannot check now
                if skew is not None and abs(skew - off) <= 3.0:
                    break
                time.sleep(0.5)
            if skew is None:
                unseen.append(i)
                continue
            seen[i] = round(skew, 1)
            if abs(skew - off) > 3.0:
                raise RuntimeError("clock offset %+d s on node %d did not take effect "
                                   "(its Date header is %+.1f s off)" % (off, i, skew))
        return {"offsets": {str(i): o for i, o in self.offsets.items()},
                "was_leader": lead in self.offsets, "observed": seen, "unobservable": unseen}

    def stop(self, ctx):
        offs = getattr(self, "offsets", {})
        for i in offs:
            self.set(ctx, i, 0)
        return {"nodes": sorted(offs)}


class Partition(Nemesis):
    """Base: grudge() gives, per node, the set of nodes it cannot reach."""

    def grudge(self, ctx, rnd):
        raise NotImplementedError

    def start(self, ctx, rnd):
        g = self.grudge(ctx, rnd)
        if g is None:
            return None
        # make it symmetric, then install at both ends
        for a in list(g):
            for b in g[a]:
                g.setdefault(b, set()).add(a)
        for a, peers in g.items():
            if peers:
                ctx.topo.block(a, sorted(peers))
        return {"cut": {str(a): sorted(p) for a, p in sorted(g.items()) if p}}

    def stop(self, ctx):
        for i in ctx.node_ids:
            ctx.topo.heal(i, "jpart")
        return {}


def components_grudge(ids, comps):
    g = {}
    for c in comps:
        for a in c:
            g[a] = set(ids) - set(c)
    return g


class PartitionLeader(Partition):
    """Isolate the current leader from every other node."""
    name = "partition-leader"

    def grudge(self, ctx, rnd):
        lead = ctx.leader()
        if lead is None:
            return None
        return components_grudge(ctx.node_ids, [[lead], [i for i in ctx.node_ids if i != lead]])


class PartitionHalves(Partition):
    """Random majority / minority split."""
    name = "partition-halves"

    def grudge(self, ctx, rnd):
        ids = list(ctx.node_ids)
        rnd.shuffle(ids)
        k = len(ids) // 2
        return components_grudge(ctx.node_ids, [ids[:k], ids[k:]])


class Bridge(Partition):
    """Two halves that cannot talk, joined by one node that sees both."""
    name = "bridge"

    def grudge(self, ctx, rnd):
        ids = list(ctx.node_ids)
        rnd.shuffle(ids)
        mid = ids[0]
        rest = ids[1:]
        k = len(rest) // 2
        a, b = rest[:k], rest[k:]
        g = {mid: set()}
        for x in a:
            g[x] = set(b)
        for x in b:
            g[x] = set(a)
        return g


class PartitionRing(Partition):
    """Each node reaches only its two neighbours on a random ring (with 3
    nodes that is everyone: the fault is then a no-op, by construction)."""
    name = "partition-ring"

    def grudge(self, ctx, rnd):
        ids = list(ctx.node_ids)
        rnd.shuffle(ids)
        n = len(ids)
        g = {}
        for k, x in enumerate(ids):
            near = {ids[(k - 1) % n], ids[(k + 1) % n], x}
            g[x] = set(ids) - near
        return g


class Loss(Nemesis):
    """iptables statistic: drop a random 10-40% of inter-node packets at a
    random majority of nodes."""
    name = "loss"

    def start(self, ctx, rnd):
        self.p = rnd.choice([0.1, 0.2, 0.3, 0.4])
        ids = list(ctx.node_ids)
        rnd.shuffle(ids)
        self.victims = sorted(ids[: len(ids) // 2 + 1])
        for i in self.victims:
            ctx.topo.loss(i, self.p)
        return {"nodes": self.victims, "probability": self.p}

    def stop(self, ctx):
        for i in ctx.node_ids:
            ctx.topo.heal(i, "jloss")
        return {}


class Delay(Nemesis):
    """Userspace delaying relay (no tc netem on this kernel): links between
    the victims and everyone (all nodes, or one node: the leader or a random
    one) get a one-way delay of D +/- D/4 ms, D drawn from --delay-ms (default
    50-200). Each node with an affected link runs relay.py in its own
    namespace; its new connections to the affected peers' raft and HTTP
    ports are DNATed there (topo.redirect) and its existing ones are closed
    (topo.kill_links) so raft reconnects through the relay. Every connection
    is initiated by one end, so each byte between two affected nodes crosses
    exactly one relay, in either direction. stop() removes the rules and
    ends the relays, which closes the relayed connections: raft reconnects
    directly."""
    name = "delay"

    def start(self, ctx, rnd):
        lo, hi = ctx.delay_range
        self.ms = round(rnd.uniform(lo, hi))
        jitter = round(self.ms / 4)
        ids = ctx.node_ids
        if rnd.random() < 0.5:
            victims = list(ids)
        else:
            lead = ctx.leader()
            victims = [lead if (lead and rnd.random() < 0.6) else rnd.choice(ids)]
        links = {a: [b for b in ids if b != a and (a in victims or b in victims)] for a in ids}
        seed = rnd.randrange(1 << 30)
        for a, peers in links.items():
            if peers:
                ctx.start_relay(a, self.ms, jitter, seed + a)
                for b in peers:
                    ctx.topo.redirect(a, b, ctx.peer_ports, ctx.relay_port, ctx.relay_mark)
        for a, peers in links.items():
            for b in peers:
                ctx.topo.kill_links(a, b, ctx.peer_ports)
        return {"nodes": sorted(victims), "delay_ms": self.ms, "jitter_ms": jitter}

    def stop(self, ctx):
        for i in ctx.node_ids:
            ctx.topo.heal(i, "jdelay")
        ctx.stop_relays()
        return {}


class StallLeader(Nemesis):
    """The leader's HTTP API stops answering (POST /fault http_stall, needs
    --enable-fault-switch); raft keeps running, so it stays leader."""
    name = "stall-leader"

    def start(self, ctx, rnd):
        lead = ctx.leader()
        if lead is None:
            return None
        self.victim = lead
        # Even when the answer is lost the switch may be on: report it as
        # started either way, so that stop() always turns it off.
        return {"node": lead, "acknowledged": ctx.fault_switch(lead, True)}

    def stop(self, ctx):
        ctx.fault_switch(self.victim, False)
        return {"node": self.victim}


class ChainOutage(Nemesis):
    """Chain mode: the nodes lose their JSON-RPC endpoint (iptables DROP of
    the RPC relay's port in every node namespace)."""
    name = "chain-outage"
    needs = "chain"
    cuts_chain = True

    def start(self, ctx, rnd):
        port = int(ctx.chain.proxy.url.rsplit(":", 1)[1])
        for i in ctx.node_ids:
            ctx.topo.iptables(i, ["-A", "jrpc", "-d", ctx.topo.client_ip(), "-p", "tcp",
                                  "--dport", str(port), "-j", "DROP"])
        return {"nodes": ctx.node_ids}

    def stop(self, ctx):
        for i in ctx.node_ids:
            ctx.topo.heal(i, "jrpc")
        return {}


class ChainLag(Nemesis):
    """Chain mode: the RPC relay serves block numbers, contract reads and
    logs as they were 5-20 s earlier."""
    name = "chain-lag"
    needs = "chain"
    cuts_chain = True

    def start(self, ctx, rnd):
        ctx.chain.proxy.lag = rnd.choice([5.0, 10.0, 20.0])
        return {"lag_s": ctx.chain.proxy.lag}

    def stop(self, ctx):
        ctx.chain.proxy.lag = 0.0
        return {}


def membership_settled(ctx):
    """The raft leader's configuration is exactly the contract's members,
    all voters: the last new server (a replaced or re-registered instance)
    has been absorbed. Replacing another voter before that can leave a
    majority of the configuration dead for good (in a 3-node cluster, two
    old voters gone before their new servers joined: no quorum is left to
    remove or add anyone), which no protocol can recover from."""
    lead = ctx.leader()
    if lead is None:
        return False
    try:
        with urllib.request.urlopen(ctx.url(lead) + "/members", timeout=2) as r:
            m = json.loads(r.read())
    except (OSError, ValueError):
        return False
    members = {x.get("raft_id") for x in m.get("members", [])}
    voters = {x["id"] for x in m.get("raft", []) if x.get("role") == "voter"}
    return bool(members) and members == voters and \
        len(m.get("raft", [])) == len(voters)


def nft_victim(ctx, rnd):
    """The raft leader half the time (the hard case: it must hand over
    before it is removed), else a random node; never a token another NFT
    nemesis holds right now (ctx.nft_busy). None when all are taken, or
    while raft's configuration is not yet the contract's members, all
    voters: every NFT change now makes a new raft server (a new epoch), and
    stacking them can leave a majority of the voters dead or unauthorized
    for good (see membership_settled). So one NFT nemesis at a time, and
    not within 3 s of the last one's stop (the nodes' view of the contract
    must have caught up before membership_settled can judge)."""
    busy = ctx.__dict__.setdefault("nft_busy", set())
    if busy or time.time() - ctx.__dict__.get("nft_stopped", 0.0) < 3.0 or \
            not membership_settled(ctx):
        return None, False
    free = [i for i in ctx.node_ids if i not in busy]
    if not free:
        return None, False
    lead = ctx.leader()
    v = lead if (lead in free and rnd.random() < 0.5) else rnd.choice(free)
    busy.add(v)
    return v, v == lead


def nft_release(ctx, v):
    """The token is registered again: a restart deferred while it was
    revoked (run.py restart) happens now."""
    ctx.__dict__.setdefault("nft_busy", set()).discard(v)
    ctx.nft_stopped = time.time()
    pending = ctx.__dict__.setdefault("nft_restart", set())
    if v in pending:
        pending.discard(v)
        ctx.restart(v)


class NftEvict(Nemesis):
    """Chain mode: the contract owner evicts a node's token (the node leaves
    raft; a leader hands over first); at stop the owner readmits it and the
    token's owner registers the instance again (a new epoch), so the
    reconciler must add the running node back."""
    name = "nft-evict"
    needs = "chain"

    def start(self, ctx, rnd):
        self.victim, was_leader = nft_victim(ctx, rnd)
        if self.victim is None:
            return None
        self.token = ctx.chain.token(self.victim)
        ctx.chain.cli(["evict", "--token", str(self.token)], 0)
        return {"node": self.victim, "token": self.token, "was_leader": was_leader}

    def stop(self, ctx):
        v = getattr(self, "victim", None)
        if v is None:
            return {}
        done = []
        t = self.token
        for step, fn in (("readmit", lambda: ctx.chain.cli(["readmit", "--token", str(t)], 0)),
                         ("register", lambda: ctx.chain.register(v))):
            try:
                fn()
                done.append(step)
            except RuntimeError as e:  # e.g. the eviction never took effect
                done.append("%s failed: %s" % (step, e))
        nft_release(ctx, v)
        return {"node": v, "token": t, "steps": done}


class NftTransfer(Nemesis):
    """Chain mode: a node's token is sold (transferred to another account),
    which revokes its instance; at stop it is bought back and its owner
    registers the instance again (a new epoch)."""
    name = "nft-transfer"
    needs = "chain"

    def start(self, ctx, rnd):
        self.victim, was_leader = nft_victim(ctx, rnd)
        if self.victim is None:
            return None
        buyer = ctx.chain.address(ctx.chain.BUYER)
        self.token = ctx.chain.token(self.victim)
        ctx.chain.cli(["transfer", "--token", str(self.token), "--to", buyer], self.victim)
        return {"node": self.victim, "token": self.token, "was_leader": was_leader,
                "to": buyer}

    def stop(self, ctx):
        v = getattr(self, "victim", None)
        if v is None:
            return {}
        done = []
        back = ctx.chain.address(v)
        t = self.token
        for step, fn in (("transfer back", lambda: ctx.chain.cli(
                ["transfer", "--token", str(t), "--to", back], ctx.chain.BUYER)),
                         ("register", lambda: ctx.chain.register(v))):
            try:
                fn()
                done.append(step)
            except RuntimeError as e:
                done.append("%s failed: %s" % (step, e))
        nft_release(ctx, v)
        return {"node": v, "token": t, "steps": done}


class InstanceReplace(Nemesis):
    """Chain mode: a node's instance is replaced: the node is killed, its
    token's owner registers the token to a NEW instance id (a new epoch,
    so a new raft id), and a node starts with that id and an empty data
    dir (--join). The leader must remove the old raft id and add the new
    one; the new node catches up from nothing. Only when no other NFT
    nemesis holds a token and the last change was absorbed."""
    name = "instance-replace"
    needs = "chain"
    starts_nodes = True

    def start(self, ctx, rnd):
        self.victim, was_leader = nft_victim(ctx, rnd)
        v = self.victim
        if v is None:
            return None
        ctx.kill(v)
        try:
            inst = ctx.chain.replace(v)
        except RuntimeError as e:
            inst = "register failed: %s" % e
        ctx.__dict__.setdefault("nft_restart", set()).discard(v)
        ctx.nft_busy.discard(v)  # so restart() starts it now
        ctx.restart(v)
        ctx.nft_busy.add(v)  # held until stop: one NFT change at a time
        return {"node": v, "token": ctx.chain.token(v), "was_leader": was_leader,
                "instance": inst, "data_dir": ctx.data_dir(v)}

    def stop(self, ctx):
        v = getattr(self, "victim", None)
        if v is not None:
            nft_release(ctx, v)
        return {"node": v, "token": ctx.chain.token(v)} if v is not None else {}


class NftBurn(Nemesis):
    """Chain mode: a node's owner burns its token (the leader's half the
    time): the contract revokes the instance, the node stops serving and
    the leader removes it (a leader hands over first). At stop the node is
    brought back as a user would: it is stopped, the contract owner mints a
    NEW token to the same owner, who registers the node's instance under it
    (a burn frees the instance id, so the same one is accepted) with the
    node key and its endpoints (the runner's --peers know only the original
    tokens), and the node starts with an empty data dir
    (nodes/n<i>-t<token>) and --join, a new raft id (token << 32 | 1)."""
    name = "nft-burn"
    needs = "chain"
    starts_nodes = True

    def start(self, ctx, rnd):
        self.victim, was_leader = nft_victim(ctx, rnd)
        v = self.victim
        if v is None:
            return None
        self.token = ctx.chain.token(v)
        try:
            ctx.chain.burn(self.token, v)
        except RuntimeError:
            ctx.nft_busy.discard(v)  # nothing changed: no NFT change held
            self.victim = None
            raise
        return {"node": v, "token": self.token, "was_leader": was_leader}

    def stop(self, ctx):
        v = getattr(self, "victim", None)
        if v is None:
            return {}
        steps = []
        ctx.kill(v)
        steps.append("stopped")
        try:
            t = ctx.chain.mint(v, "node%d-reminted" % v)
            ctx.chain.__dict__.setdefault("tokens", {})[v] = t
            steps.append("minted %d" % t)
            ctx.chain.register(v, ("%s:%d" % (ctx.topo.ip(v), ctx.peer_ports[0]),
                                   "http://%s:%d" % (ctx.topo.ip(v), ctx.peer_ports[1])))
            steps.append("registered")
        except RuntimeError as e:
            steps.append("failed: %s" % e)
        ctx.__dict__.setdefault("nft_restart", set()).discard(v)
        ctx.nft_busy.discard(v)  # so restart() starts it now
        ctx.restart(v)
        steps.append("restarted")
        nft_release(ctx, v)
        return {"node": v, "burned": self.token, "token": ctx.chain.token(v),
                "data_dir": ctx.data_dir(v), "steps": steps}


class MemberAdd(Nemesis):
    """Chain mode: a fifth wheel joins. The first start mints a token for
    the spare's owner; each start registers the token's instance with its
    node key and endpoints (re-activating it: a new epoch) and starts the spare's node with an empty data dir and --join,
    so the raft leader must add it and promote it once it answers and has
    caught up, under load. At stop the owner deactivates the instance (the
    leader removes it from raft) and the node is stopped. The checker reads
    only nodes 1..n; the spare must not disturb them."""
    name = "member-add"
    needs = "chain"
    starts_nodes = True

    def start(self, ctx, rnd):
        import os
        import subprocess
        ch = ctx.chain
        ctx.__dict__.setdefault("spare_starts", 0)
        if ctx.__dict__.get("spare_token") is None:
            ctx.spare_token = ch.mint(ch.SPARE_OWNER, "spare")
        t = ctx.spare_token
        ctx.spare_starts += 1
        ip = ctx.topo.ip("spare")
        raft_port, http_port = ctx.peer_ports
        ch.cli(["register", "--instance-id", "spare%d" % t, "--token", str(t),
                "--node-key", ch.address(ch.SPARE_KEY),
                "--raft-endpoint", "%s:%d" % (ip, raft_port),
                "--http-endpoint", "http://%s:%d" % (ip, http_port)], ch.SPARE_OWNER)
        d = os.path.join(ctx.a.out, "nodes", "spare-%d" % ctx.spare_starts)  # empty
        os.makedirs(d)
        logf = open(os.path.join(ctx.a.out, "nodes", "spare.log"), "a")
        ctx.spare_proc = subprocess.Popen(ctx.spare_args(t, d), stdout=subprocess.DEVNULL,
                                          stderr=logf, start_new_session=True)
        logf.close()
        return {"token": t, "start": ctx.spare_starts}

    def stop(self, ctx):
        t = ctx.__dict__.get("spare_token")
        if t is None:
            return {}
        steps = []
        try:
            ctx.chain.cli(["deactivate", "--token", str(t)], ctx.chain.SPARE_OWNER)
            steps.append("deactivated")
        except RuntimeError as e:
            steps.append("deactivate failed: %s" % e)
        p = ctx.__dict__.get("spare_proc")
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except Exception:
                p.kill()
                p.wait()
            steps.append("stopped")
        elif p is not None:
            steps.append("had exited with %s" % p.returncode)
        return {"token": t, "steps": steps}


def descendants(pid):
    """Every process under pid (from /proc)."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            kids.setdefault(int(st[st.rindex(")") + 2:].split()[1]), []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


class PgKill(Nemesis):
    """--workload pg: SIGKILL the node whose PostgreSQL is the primary (the
    raft leader's; a random node 30% of the time) AND every process under
    it (its postgres and backends) at once, so no orphan can finish a
    commit; restart the node at stop (it rejoins by rewind or re-clone)."""
    name = "pg-kill"
    workload = "pg"

    def start(self, ctx, rnd):
        prim = ctx.pg_primary()
        self.victim = prim if (prim and rnd.random() < 0.7) else rnd.choice(ctx.node_ids)
        p = ctx.procs[self.victim]
        if p.poll() is not None:
            self.victim = None
            return None
        under = descendants(p.pid)
        ctx.expect_dead.add(self.victim)
        for pid in [p.pid] + under:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.wait()
        return {"node": self.victim, "was_primary": self.victim == prim,
                "killed_under_it": len(under)}

    def stop(self, ctx):
        if getattr(self, "victim", None) is None:
            return {}
        ctx.restart(self.victim)
        return {"node": self.victim}


class PgPartition(Partition):
    """--workload pg: cut the node whose PostgreSQL is the primary off from
    every other node (raft and replication; the clients still reach it, so
    they keep sending it writes): its commits must stop being acknowledged
    (checked: stale-primary-ack) and none it acknowledged may be lost."""
    name = "pg-partition"
    workload = "pg"

    def grudge(self, ctx, rnd):
        prim = ctx.pg_primary()
        if prim is None:
            return None
        self.victim = prim
        return components_grudge(ctx.node_ids, [[prim], [i for i in ctx.node_ids if i != prim]])

    def start(self, ctx, rnd):
        d = super().start(ctx, rnd)
        if d is not None:
            d["primary"] = self.victim
        return d


REGISTRY = {c.name: c for c in (Kill, Pause, PartitionLeader, PartitionHalves, Bridge,
                                 PartitionRing, Loss, Delay, StallLeader, ChainOutage, ChainLag,
                                 NftEvict, NftTransfer, InstanceReplace, NftBurn, MemberAdd,
                                 Clock, PgKill, PgPartition)}

# Named in the issue, not implemented (yet): why, so --nemesis can say so.
NOT_YET = {}


def compatible(a, b):
    """Whether nemesis classes a and b may run in the same round. A node
    started with an empty data dir while the chain is cut off or lagging
    cannot read its own registration and exits (as designed: it does not
    know its raft id); in these runs no supervisor starts it again, so the
    run would report a crash the fault combination forced."""
    return not ((a.starts_nodes and b.cuts_chain) or (a.cuts_chain and b.starts_nodes))


def parse(spec, chain, workload="counter"):
    """'all' or a comma list -> list of nemesis classes; ValueError with a
    clear message for unknown or not-yet-implemented names. The pg-*
    nemeses need --workload pg ('all' includes them only then)."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if names == ["none"]:
        return []
    if "all" in names:
        return [c for c in REGISTRY.values()
                if (c.needs is None or c.needs == ("chain" if chain else "static"))
                and c.workload in (None, workload)]
    out = []
    for nm in names:
        if nm in REGISTRY and REGISTRY[nm].needs == "chain" and not chain:
            raise ValueError("nemesis '%s' needs --chain anvil" % nm)
        if nm in REGISTRY and REGISTRY[nm].workload not in (None, workload):
            raise ValueError("nemesis '%s' needs --workload %s" % (nm, REGISTRY[nm].workload))
        if nm in REGISTRY:
            out.append(REGISTRY[nm])
        elif nm in NOT_YET:
            raise ValueError("nemesis '%s' is not implemented: %s" % (nm, NOT_YET[nm]))
        else:
            raise ValueError("unknown nemesis '%s' (known: %s, all, none)" %
                             (nm, ", ".join(sorted(REGISTRY))))
    return out

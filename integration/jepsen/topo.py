"""Network topology for the Jepsen runner: one network namespace per node
(and one for anvil in chain mode), each with a veth onto a bridge that lives
in a private "hub" namespace, in a private 10.77.X.0/24 chosen so that it
collides with no route of the host. The runner itself (the clients) reaches
the nodes through one more veth from the root namespace into the hub
(10.77.X.254). Nothing else is touched: no host interface, no host firewall.

Faults are iptables rules inside the node namespaces (partitions, loss; and
for the delay nemesis a nat DNAT of peer links to a relay), so they are per
node and real; teardown deletes every namespace (which deletes
their veths and rules) and the root-side veth.

Contract: Topology(n, extra=[...]).up() raises TopoError with a clear message
when something is missing (not root, no iproute2/iptables); down() is
idempotent and safe after a partial up()."""
import os
import random
import shutil
import subprocess


class TopoError(Exception):
    pass


def sh(args, ns=None, check=True, timeout=20):
    """Run a command (in namespace ns); returns stdout. Raises TopoError."""
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise TopoError("%s: %s" % (" ".join(cmd), (r.stderr or r.stdout).strip()))
    return r.stdout


def preflight():
    """A clear reason this machine cannot run the topology, or None."""
    if os.geteuid() != 0:
        return "the Jepsen runner needs root (network namespaces, veth, iptables); run it as root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return "'%s' is not installed (apt-get install iproute2 iptables)" % tool
    return None


class Topology:
    def __init__(self, n, extra=()):
        self.n = n
        self.extra = list(extra)          # extra hosts, e.g. ["anvil"]
        self.tag = None                   # the X of 10.77.X.0/24, also in names
        self.hub = None
        self.created = []                 # namespaces made by us, for teardown
        self.root_if = None

    # -- names and addresses --
    def ns(self, node):
        """Namespace of node i (1-based) or of an extra host by name."""
        return "jep%d-%s" % (self.tag, node if isinstance(node, str) else "n%d" % node)

    def ip(self, node):
        if isinstance(node, str):
            return "10.77.%d.%d" % (self.tag, 200 + self.extra.index(node))
        return "10.77.%d.%d" % (self.tag, node)

    def client_ip(self):
        return "10.77.%d.254" % self.tag

    def subnet(self):
        return "10.77.%d.0/24" % self.tag

    # -- lifecycle --
    def _pick_tag(self):
        used = sh(["ip", "-4", "route", "show"]) + sh(["ip", "-4", "addr", "show"])
        names = sh(["ip", "netns", "list"])
        tags = list(range(1, 250))
        random.shuffle(tags)
        for t in tags:
            if ("10.77.%d." % t) not in used and ("jep%d-" % t) not in names:
                return t
        raise TopoError("no free 10.77.X.0/24 subnet")

    def _add_ns(self, name):
        sh(["ip", "netns", "add", name])
        self.created.append(name)
        sh(["ip", "link", "set", "lo", "up"], ns=name)

    def up(self):
        why = preflight()
        if why:
            raise TopoError(why)
        self.tag = self._pick_tag()
        self.hub = self.ns("hub")
        self._add_ns(self.hub)
        sh(["ip", "link", "add", "br0", "type", "bridge"], ns=self.hub)
        sh(["ip", "link", "set", "br0", "up"], ns=self.hub)
        hosts = list(range(1, self.n + 1)) + self.extra
        for h in hosts:
            name = self.ns(h)
            self._add_ns(name)
            port = "p-%s" % (h if isinstance(h, str) else "n%d" % h)
            sh(["ip", "link", "add", "eth0", "netns", name, "type", "veth",
                "peer", "name", port, "netns", self.hub])
            sh(["ip", "link", "set", port, "master", "br0", "up"], ns=self.hub)
            sh(["ip", "addr", "add", self.ip(h) + "/24", "dev", "eth0"], ns=name)
            sh(["ip", "link", "set", "eth0", "up"], ns=name)
        # The runner's own leg: root namespace <-> hub.
        self.root_if = "jep%dc" % self.tag
        sh(["ip", "link", "add", self.root_if, "type", "veth", "peer", "name",
            "p-client", "netns", self.hub])
        sh(["ip", "link", "set", "p-client", "master", "br0", "up"], ns=self.hub)
        sh(["ip", "addr", "add", self.client_ip() + "/24", "dev", self.root_if])
        sh(["ip", "link", "set", self.root_if, "up"])
        return self

    def down(self):
        if self.root_if:
            sh(["ip", "link", "del", self.root_if], check=False)
            self.root_if = None
        for name in reversed(self.created):
            sh(["ip", "netns", "del", name], check=False)
        self.created = []

    # -- faults: each kind of fault owns an iptables chain per node
    # (jpart, jloss, jrpc), jumped to from INPUT and OUTPUT, so they compose and
    # heal independently. --
    CHAINS = ("jpart", "jloss", "jrpc")
    NAT_CHAINS = ("jdelay",)   # nat OUTPUT: DNAT of peer links to a delaying relay

    def iptables(self, node, args, check=True):
        return sh(["iptables", "-w"] + list(args), ns=self.ns(node), check=check)

    def init_faults(self, node):
        for c in self.CHAINS:
            self.iptables(node, ["-N", c])
            self.iptables(node, ["-A", "INPUT", "-j", c])
            self.iptables(node, ["-A", "OUTPUT", "-j", c])
        for c in self.NAT_CHAINS:
            self.iptables(node, ["-t", "nat", "-N", c])
            self.iptables(node, ["-t", "nat", "-A", "OUTPUT", "-j", c])

    def heal(self, node, chain):
        table = ["-t", "nat"] if chain in self.NAT_CHAINS else []
        self.iptables(node, table + ["-F", chain], check=False)

    def redirect(self, node, peer, ports, relay_port, mark):
        """node's new TCP connections to peer's ports go to the relay at
        node's own address:relay_port instead (packets carrying mark, the
        relay's own, are left alone). Established connections are not
        affected by a nat rule: kill_links() closes them."""
        self.iptables(node, ["-t", "nat", "-A", "jdelay", "-p", "tcp", "-d", self.ip(peer),
                             "-m", "multiport", "--dports", ",".join(str(p) for p in ports),
                             "-m", "mark", "!", "--mark", str(mark), "-j", "DNAT",
                             "--to-destination", "%s:%d" % (self.ip(node), relay_port)])

    def kill_links(self, node, peer, ports):
        """Close (ss -K) node's established TCP connections to peer's ports, so
        that the node reconnects (through whatever nat rules are now in place)."""
        flt = " or ".join("dport = :%d" % p for p in ports)
        sh(["ss", "-K", "-t", "dst", self.ip(peer), "( %s )" % flt], ns=self.ns(node))

    def block(self, node, peers):
        """node stops exchanging packets with each of peers (both directions
        at node's end)."""
        for p in peers:
            self.iptables(node, ["-A", "jpart", "-s", self.ip(p), "-j", "DROP"])
            self.iptables(node, ["-A", "jpart", "-d", self.ip(p), "-j", "DROP"])
            # a link the delay nemesis DNATed to the local relay still has
            # the peer as its original destination: cut it too, so the
            # relay cannot turn a silent partition into an accepted link
            self.iptables(node, ["-A", "jpart", "-m", "conntrack", "--ctorigdst", self.ip(p),
                                 "-j", "DROP"])

    def loss(self, node, probability):
        """Drop a random fraction of node's packets from/to other nodes (the
        clients' packets are spared)."""
        for flag in ("-s", "-d"):
            self.iptables(node, ["-A", "jloss", flag, self.client_ip(), "-j", "RETURN"])
        # the leg to a local delay relay is not an inter-node link
        self.iptables(node, ["-A", "jloss", "-s", self.ip(node), "-d", self.ip(node),
                             "-j", "RETURN"])
        self.iptables(node, ["-A", "jloss", "-m", "statistic", "--mode", "random",
                             "--probability", "%.3f" % probability, "-j", "DROP"])

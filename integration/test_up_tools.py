#!/usr/bin/env python3
"""`nftraft up --chain anvil` outside the source tree (issue 14): it finds
anvil and cast on PATH, then in $NFTRAFT_ROOT, then beside the binary, then
in the source tree it was built from, and says which it used; it prints each
step (anvil, keys, deploy, mint, register, nodes, elect) with its duration.
One full start (a 1-node cluster, binaries copied to a directory of their
own, Foundry on PATH); the other lookups stop early on a busy anvil port."""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import NFTRAFT, NFTRAFTD, check, free_base_port, run  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "contracts", "node_modules", ".bin")
S = {}


def env(path_dirs, root=None):
    e = {k: v for k, v in os.environ.items() if k != "NFTRAFT_ROOT"}
    # Keep python3/sh/tail reachable, but no directory that has anvil.
    e["PATH"] = ":".join(path_dirs + ["/usr/bin", "/bin"])
    if root:
        e["NFTRAFT_ROOT"] = root
    return e


def setup():
    if "bin" in S:
        return
    d = tempfile.mkdtemp(prefix="nftraft-up-")
    S["dir"] = d
    S["bin"] = os.path.join(d, "bin")
    os.mkdir(S["bin"])
    for b in (NFTRAFT, NFTRAFTD):
        shutil.copy2(b, S["bin"])
    S["tools"] = os.path.join(d, "foundry")
    os.mkdir(S["tools"])
    for t in ("anvil", "cast"):
        os.symlink(os.path.join(TOOLS, t), os.path.join(S["tools"], t))


def up(e, *extra, timeout=240):
    nft = os.path.join(S["bin"], "nftraft")
    return subprocess.run([nft, "up", *extra], capture_output=True, text=True, env=e, timeout=timeout)


def test_full_start_with_foundry_on_path_reports_steps():
    setup()
    base = free_base_port(1)
    cdir = os.path.join(S["dir"], "cluster")
    r = up(env([S["tools"]]), "--nodes", "1", "--base-port", str(base), "--anvil-port", str(base + 50),
           "--dir", cdir, "--detach")
    try:
        print(r.stdout.rstrip())
        check(r.returncode == 0, "up from a directory of its own: %s %s" % (r.stdout, r.stderr))
        check("up: using anvil %s/anvil (on PATH)" % S["tools"] in r.stdout, "says anvil came from PATH")
        check("up: using cast  %s/cast (on PATH)" % S["tools"] in r.stdout, "says cast came from PATH")
        steps = re.findall(r"^up: (\w+) +.*\.\.\. .*\((\d+\.\d) s\)$", r.stdout, re.M)
        check([s for s, _ in steps] == ["anvil", "keys", "deploy", "mint", "register", "nodes", "elect"],
              "every step with its duration, in order: %s" % steps)
        check("leader node 1" in r.stdout and "token 1 (" in r.stdout, "nodes and elect results")
    finally:
        subprocess.run([os.path.join(S["bin"], "nftraft"), "down", "--dir", cdir], capture_output=True,
                       timeout=60)


def lookup(e, nft=None):
    """Where `up` says it found anvil; stops at the busy anvil port."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        port = s.getsockname()[1]
        d = tempfile.mkdtemp(prefix="nftraft-up-", dir=S["dir"])
        r = subprocess.run([nft or os.path.join(S["bin"], "nftraft"), "up", "--anvil-port", str(port),
                            "--base-port", str(free_base_port(1)), "--dir", d],
                           capture_output=True, text=True, env=e, timeout=60)
    finally:
        s.close()
    check(r.returncode == 1 and "anvil port %d is in use" % port in r.stderr, "stops at the busy port: %s %s" %
          (r.stdout, r.stderr))
    m = re.search(r"^up: using anvil (\S+) \((.*)\)$", r.stdout, re.M)
    check(m is not None, "says which anvil: %r" % r.stdout)
    return m.group(1), m.group(2)


def test_lookup_order():
    setup()
    tool = os.path.realpath(os.path.join(TOOLS, "anvil"))
    # NFTRAFT_ROOT before the binary's place and the source tree
    path, why = lookup(env([], root=ROOT))
    check(why == "NFTRAFT_ROOT" and os.path.realpath(path) == tool, "NFTRAFT_ROOT: %s (%s)" % (path, why))
    # a copied binary with nothing else: the source tree it was built from
    path, why = lookup(env([]))
    check(why == "the source tree it was built from" and os.path.realpath(path) == tool,
          "source tree: %s (%s)" % (path, why))
    # beside the binary: anvil in the binary's own directory
    os.symlink(os.path.join(TOOLS, "anvil"), os.path.join(S["bin"], "anvil"))
    os.symlink(os.path.join(TOOLS, "cast"), os.path.join(S["bin"], "cast"))
    path, why = lookup(env([]))
    check(why == "beside the binary" and path == os.path.join(S["bin"], "anvil"), "beside: %s (%s)" % (path, why))
    # PATH wins over everything
    path, why = lookup(env([S["tools"]], root=ROOT))
    check(why == "on PATH" and path == os.path.join(S["tools"], "anvil"), "PATH: %s (%s)" % (path, why))


def test_help_documents_the_lookup():
    r = subprocess.run([NFTRAFT, "up", "--help"], capture_output=True, text=True, timeout=10)
    for needle in ("on PATH first", "$NFTRAFT_ROOT/contracts/node_modules/.bin", "beside this binary",
                   "source tree", "with its duration"):
        check(needle in r.stdout, "up --help mentions %r" % needle)


def test_overlapping_ports_are_refused():
    """anvil's or PostgreSQL's port on a node's HTTP or raft port: a usage
    error (exit 2) before anything starts."""
    for args, what in ((["--base-port", "25000", "--anvil-port", "25101"], "--anvil-port"),
                       (["--base-port", "25000", "--anvil-port", "25002"], "--anvil-port"),
                       (["--chain", "none", "--base-port", "25000", "--pg", "--pg-base-port", "25099"],
                        "--pg-base-port"),
                       (["--base-port", "25000", "--anvil-port", "26000", "--pg", "--pg-base-port",
                         "25998"], "--pg-base-port")):
        r = subprocess.run([NFTRAFT, "up", "--dir", "/nonexistent/nftraft-up"] + args,
                           capture_output=True, text=True, timeout=10)
        check(r.returncode == 2 and r.stderr.startswith("nftraft up: %s" % what),
              "up %s: want a usage error about %s, got %d %r" % (" ".join(args), what, r.returncode,
                                                                 r.stderr[:200]))


def main():
    try:
        return run([test_help_documents_the_lookup, test_overlapping_ports_are_refused, test_lookup_order,
                    test_full_start_with_foundry_on_path_reports_steps])
    finally:
        if "dir" in S:
            shutil.rmtree(S["dir"], ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

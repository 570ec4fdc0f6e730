#!/usr/bin/env python3
"""Static check of docker/ (no Docker engine runs here): every service,
port, volume, secret and env var of docker/docker-compose.yml agrees with the
binaries' flags (`nftraftd --help`, `nftraft kms-auth --help`) and with the
Dockerfile; prints the compose hash phase-2 validation would register."""
import os
import re
import subprocess
import sys

try:
    import yaml
except ImportError:  # Debian's python3-yaml lives in the system python
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("NFTRAFT_ROOT") or os.path.dirname(HERE)
BUILD = os.environ.get("NFTRAFT_BUILD") or os.path.join(ROOT, "build")
failures = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures.append(msg)


def flags_of(args):
    out = subprocess.run(args, capture_output=True, text=True, timeout=20).stdout
    return set(re.findall(r"--[a-z][a-z-]*", out)), out


compose = yaml.safe_load(open(os.path.join(ROOT, "docker", "docker-compose.yml")))
dockerfile = open(os.path.join(ROOT, "docker", "Dockerfile")).read()
cmake = open(os.path.join(ROOT, "CMakeLists.txt")).read()
node_flags, node_help = flags_of([os.path.join(BUILD, "nftraftd"), "--help"])
auth_flags, auth_help = flags_of([os.path.join(BUILD, "nftraft"), "kms-auth", "--help"])
check(bool(node_flags) and bool(auth_flags), "binaries answer --help")

services = compose["services"]
check(set(services) >= {"anvil", "kms-auth", "counter1", "counter2", "counter3"},
      "services: anvil, kms-auth, three counters")
subnet = compose["networks"]["cluster"]["ipam"]["config"][0]["subnet"]
check(subnet.startswith("172.28.0."), "fixed IPv4 subnet for raft addresses")

# kms-auth: env names and port agree with `nftraft kms-auth --help`.
ka = services["kms-auth"]
env = dict(e.split("=", 1) for e in ka["environment"])
for name in ("ETH_RPC_URL", "KMS_CONTRACT_ADDR", "PORT", "HOST"):
    check(name in env and name in auth_help, "kms-auth env %s is set and documented" % name)
check(ka["entrypoint"] == ["nftraft", "kms-auth"], "kms-auth runs `nftraft kms-auth`")
check(ka["ports"] == ["%s:%s" % (env["PORT"], env["PORT"])], "kms-auth publishes PORT")
check(env["ETH_RPC_URL"] == "http://anvil:8545", "kms-auth talks to the anvil service")

volumes = set(compose.get("volumes", {}))
secrets = compose.get("secrets", {})
raft_addrs = set()
for i in (1, 2, 3):
    name = "counter%d" % i
    svc = services[name]
    cmd = svc["command"]
    used = {a for a in cmd if a.startswith("--")}
    check(used <= node_flags, "%s flags are nftraftd flags (%s)" % (name, sorted(used - node_flags) or "all known"))
    arg = dict(zip(cmd[::2], cmd[1::2]))
    ip = svc["networks"]["cluster"]["ipv4_address"]
    check(arg["--raft"] == "%s:9080" % ip, "%s --raft is its own IPv4 address" % name)
    raft_addrs.add(arg["--raft"])
    check(arg["--advertise-url"] == "http://%s:8080" % ip, "%s advertises its address" % name)
    http_port = arg["--http"].rsplit(":", 1)[1]
    check(svc["ports"] == ["808%d:%s" % (i, http_port)], "%s publishes its --http port as 808%d" % (name, i))
    check(http_port in " ".join(svc["healthcheck"]["test"]) and "/status" in " ".join(svc["healthcheck"]["test"]),
          "%s health check hits /status on its port" % name)
    vol, mount = svc["volumes"][0].split(":")
    check(vol in volumes and arg["--data-dir"].startswith(mount), "%s data dir is on volume %s" % (name, vol))
    senv = dict(e.split("=", 1) for e in svc["environment"])
    check(set(senv) == {"ETH_RPC_URL", "CONTRACT_ADDRESS"} and all(k in node_help for k in senv),
          "%s env ETH_RPC_URL/CONTRACT_ADDRESS documented by nftraftd" % name)
    key = arg["--wallet-key"]
    check(key.startswith("/run/secrets/") and key.rsplit("/", 1)[1] in secrets, "%s wallet key is a declared secret" % name)
check(len(raft_addrs) == 3, "three distinct raft addresses")

# Dockerfile: multi-stage, the libraries CMake asks pkg-config for, the binaries.
check(len(re.findall(r"^FROM ", dockerfile, re.M)) == 2, "multi-stage Dockerfile")
# raft 0.22.1 is built from Debian's source package by the project's script
# (a static library: no libraft in the runtime stage).
check("RUN scripts/build-raft.sh" in dockerfile and "COPY scripts/raft-patches" in dockerfile,
      "build stage builds raft 0.22.1 with scripts/build-raft.sh")
check("liblz4-dev" in dockerfile and "liblz4-1" in dockerfile and "libraft" not in dockerfile,
      "raft's lz4 dependency in both stages, no Debian libraft")
for mod, pkg in (("libuv", "libuv1-dev"), ("libh2o", "libh2o-dev"),
                 ("libsecp256k1", "libsecp256k1-dev"), ("libcurl", "libcurl4-openssl-dev"),
                 ("msgpack", "libmsgpack-dev"), ("sqlite3", "libsqlite3-dev"), ("jansson", "libjansson-dev"),
                 ("libpq", "libpq-dev")):
    check(mod in cmake and pkg in dockerfile, "build stage installs %s for pkg-config %s" % (pkg, mod))
check("/src/build/nftraftd" in dockerfile and "/src/build/nftraft " in dockerfile, "runtime stage gets both binaries")
check("/src/build/nftraft-pgexec" in dockerfile and "libpq5" in dockerfile and
      "postgresql-15" in dockerfile, "runtime stage: nftraft-pgexec, libpq and PostgreSQL 15 (--pg)")
check(re.search(r"^EXPOSE 8080 9080", dockerfile, re.M) is not None, "EXPOSE http and raft ports")
check("HEALTHCHECK" in dockerfile and "/status" in dockerfile, "image health check")
# Every folder the top-level CMakeLists.txt builds from must be copied.
folders = re.findall(r"^add_subdirectory\((\w+)\)", cmake, re.M)
folders += re.findall(r"^include\((\w+)/", cmake, re.M)
check(len(folders) >= 8, "top-level CMakeLists.txt names its folders (%s)" % folders)
for d in folders:
    check("COPY %s %s" % (d, d) in dockerfile, "build copies %s/" % d)

r = subprocess.run([os.path.join(BUILD, "nftraft"), "compose-hash", "--docker-compose",
                    os.path.join(ROOT, "docker", "docker-compose.yml"), "--kms"],
                   capture_output=True, text=True, timeout=20)
check(r.returncode == 0 and re.fullmatch(r"0x[0-9a-f]{64}", r.stdout.strip()), "compose hash computed")
# compose-hash CLI contract: missing file or invalid JSON -> 1, bad flags -> 2.
import tempfile
with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
    f.write("{not json")
ch = [os.path.join(BUILD, "nftraft"), "compose-hash"]
check(subprocess.run(ch + ["/nonexistent.json"], capture_output=True).returncode == 1, "compose-hash: missing file exits 1")
bad = subprocess.run(ch + [f.name], capture_output=True, text=True)
check(bad.returncode == 1 and "invalid JSON" in bad.stderr, "compose-hash: invalid JSON exits 1 with a message")
check(subprocess.run(ch + ["--bogus"], capture_output=True).returncode == 2, "compose-hash: bad flag exits 2")
os.unlink(f.name)
print("phase-2 compose hash (runner docker-compose, manifest_version 2, kms_enabled): %s" % r.stdout.strip())
print("docker static: %d passed, %d failed" % (0 if failures else 1, 1 if failures else 0))
sys.exit(1 if failures else 0)

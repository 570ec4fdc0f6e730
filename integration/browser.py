"""A real headless browser for the integration tests: Debian's chromium
driven by chromedriver through the W3C WebDriver HTTP API (python3 stdlib
only: urllib + json). One Browser = one chromedriver process on a free
loopback port + one session with a fresh profile in the test's temp dir."""
import base64
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request

from cluster import TestFailure, port_free  # noqa: E402

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars"]


def find_tools():
    """(chromium, chromedriver) paths, or None when either is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


class Browser:
    def __init__(self, workdir, width=1280, height=1000):
        tools = find_tools()
        if tools is None:
            raise TestFailure("chromium and chromedriver are needed (scripts/install-deps.sh installs them)")
        chromium, driver = tools
        self.port = next(p for p in range(29100 + os.getpid() % 700, 29990) if port_free(p))
        self.log_path = os.path.join(workdir, "chromedriver.log")
        self.driver = subprocess.Popen([driver, "--port=%d" % self.port, "--allowed-ips=127.0.0.1"],
                                       stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.base = "http://127.0.0.1:%d" % self.port
        deadline = time.time() + 20
        while True:
            try:
                if self._call("GET", "/status", timeout=2).get("ready"):
                    break
            except (OSError, TestFailure):
                pass
            if time.time() > deadline or self.driver.poll() is not None:
                self.quit()
                raise TestFailure("chromedriver did not start; see %s" % self.log_path)
            time.sleep(0.1)
        profile = os.path.join(workdir, "chromium-profile")
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": CHROMIUM_FLAGS + [
                "--user-data-dir=" + profile, "--window-size=%d,%d" % (width, height)]}}}}
        try:
            v = self._call("POST", "/session", caps, timeout=90)
        except TestFailure:
            self.quit()
            raise
        self.session = "/session/" + v["sessionId"]
        self.browser_pid = None

    def _call(self, method, path, body=None, timeout=30):
        data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read()).get("value")
        except urllib.error.HTTPError as e:
            raise TestFailure("WebDriver %s %s: %s" % (method, path, e.read()[:500].decode(errors="replace")))

    def get(self, url):
        self._call("POST", self.session + "/url", {"url": url}, timeout=60)

    def execute(self, script, *args):
        """Run script (a function body; `arguments` holds args) in the page."""
        return self._call("POST", self.session + "/execute/sync", {"script": script, "args": list(args)})

    def click(self, css):
        e = self._call("POST", self.session + "/element", {"using": "css selector", "value": css})
        eid = list(e.values())[0]
        self._call("POST", self.session + "/element/%s/click" % eid)

    def set_window(self, width, height):
        self._call("POST", self.session + "/window/rect", {"width": width, "height": height})

    def screenshot(self, path):
        png = base64.b64decode(self._call("GET", self.session + "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)
        return len(png)

    def quit(self):
        if getattr(self, "session", None):
            try:
                self._call("DELETE", self.session, timeout=20)
            except (OSError, TestFailure):
                pass
            self.session = None
        if self.driver.poll() is None:
            self.driver.terminate()
            try:
                self.driver.wait(10)
            except subprocess.TimeoutExpired:
                self.driver.kill()

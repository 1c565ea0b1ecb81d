#!/usr/bin/env python3
"""The status page in a real browser.

Starts the real `istio-ca serve --local-dir` with a few hundred service accounts, waits until it is
ready and manages all of them, then drives Debian's headless Chromium through chromedriver's
WebDriver HTTP API (standard library only: no npm, no selenium) and checks that
  * the page loads with a row for a known service account and one row per certificate,
  * the SVG expiry chart has one mark per certificate,
  * the browser logged no console error,
  * at a 375 px wide phone viewport the document does not scroll sideways,
and saves screenshots (desktop and phone) into OUT_DIR.

Fails (never skips) when chromium or chromedriver is missing: scripts/setup installs them.
Every wait is a bounded poll on a condition; no fixed sleep decides an outcome.

Usage: status_page_browser_test.py ISTIO_CA_BINARY OUT_DIR
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

NAMESPACES = ["default", "payments", "shop", "search", "ledger", "mail"]
PER_NAMESPACE = 50  # 300 service accounts
KNOWN = "payments/checkout"
CHROMIUM = "/usr/bin/chromium"


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, cond, timeout=120.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(interval)
    fail("timed out waiting for " + what)


def http(method, url, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, ConnectionError, OSError):
        return 0, b""


class WebDriver:
    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port
        self.session = None

    def call(self, method, path, body=None):
        status, raw = http(method, self.base + path, body, timeout=60)
        value = json.loads(raw or b"{}").get("value") if raw else None
        if status != 200:
            fail("webdriver %s %s: HTTP %d %s" % (method, path, status, raw[:500]))
        return value

    def start(self):
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                # root in a container: no sandbox; small /dev/shm: use /tmp.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1600",
                         "--hide-scrollbars", "--no-first-run"],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def s(self, path):
        return "/session/%s%s" % (self.session, path)

    def get(self, url):
        self.call("POST", self.s("/url"), {"url": url})

    def find_all(self, css):
        return self.call("POST", self.s("/elements"), {"using": "css selector", "value": css})

    def script(self, js):
        return self.call("POST", self.s("/execute/sync"), {"script": js, "args": []})

    def cdp(self, cmd, params):
        return self.call("POST", self.s("/goog/cdp/execute"), {"cmd": cmd, "params": params})

    def console(self):
        return self.call("POST", self.s("/se/log"), {"type": "browser"})

    def screenshot(self, path):
        png = base64.b64decode(self.call("GET", self.s("/screenshot")))
        with open(path, "wb") as f:
            f.write(png)
        return len(png)

    def quit(self):
        if self.session:
            http("DELETE", self.base + "/session/" + self.session)
            self.session = None


def stop(proc):
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    if len(sys.argv) != 3:
        fail("usage: status_page_browser_test.py ISTIO_CA_BINARY OUT_DIR")
    binary, out_dir = sys.argv[1], sys.argv[2]
    chromedriver = shutil.which("chromedriver")
    if not os.access(CHROMIUM, os.X_OK):
        fail(CHROMIUM + " is missing (scripts/setup installs the chromium package)")
    if not chromedriver:
        fail("chromedriver is missing (scripts/setup installs the chromium-driver package)")
    os.makedirs(out_dir, exist_ok=True)
    t0 = time.monotonic()

    work = tempfile.mkdtemp(prefix="istioca-browser-")
    daemon = driver_proc = None
    wd = None
    try:
        names = []
        for ns in NAMESPACES:
            for i in range(PER_NAMESPACE):
                names.append("%s/%s" % (ns, "checkout" if (ns, i) == ("payments", 0)
                                        else "sa-%03d" % i))
        for n in names:
            path = os.path.join(work, "serviceaccounts", n)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "w").close()
        assert KNOWN in names

        mport = free_port()
        log = open(os.path.join(work, "daemon.log"), "w")
        daemon = subprocess.Popen([binary, "serve", "--local-dir", work, "--monitoring-port",
                                   str(mport), "--grpc-port", "0"],
                                  stdout=log, stderr=subprocess.STDOUT)
        base = "http://127.0.0.1:%d" % mport

        def all_managed():
            if daemon.poll() is not None:
                fail("istio-ca exited with %d:\n%s" % (daemon.returncode,
                                                        open(log.name).read()[-3000:]))
            status, body = http("GET", base + "/status.json", timeout=5)
            return status == 200 and len(json.loads(body)["certificates"]) == len(names)

        wait_for("the daemon to manage %d certificates" % len(names), all_managed, timeout=180)
        status, body = http("GET", base + "/readyz")
        if status != 200:
            fail("/readyz: %d %s" % (status, body))
        t_ready = time.monotonic()

        dport = free_port()
        driver_proc = subprocess.Popen([chromedriver, "--port=%d" % dport],
                                       stdout=open(os.path.join(work, "chromedriver.log"), "w"),
                                       stderr=subprocess.STDOUT)
        wd = WebDriver(dport)
        wait_for("chromedriver", lambda: http("GET", wd.base + "/status", timeout=2)[0] == 200,
                 timeout=30)
        wd.start()
        wd.get(base + "/")

        title = wd.script("return document.title")
        if title != "istio-ca status":
            fail("title is %r" % title)
        known_rows = wd.find_all('#certs tr[data-sa="%s"]' % KNOWN)
        if len(known_rows) != 1:
            fail("expected one row for %s, found %d" % (KNOWN, len(known_rows)))
        rows = len(wd.find_all("#certs tbody tr"))
        if rows != len(names):
            fail("expected %d certificate rows, found %d" % (len(names), rows))
        marks = len(wd.find_all("svg.chart .mark"))
        if marks < len(names):
            fail("expected at least %d chart marks, found %d" % (len(names), marks))
        # The marks are drawn: the chart has a real size and the first mark is inside it.
        box = wd.script("var r=document.querySelector('svg.chart').getBoundingClientRect();"
                        "return [r.width, r.height];")
        if box[0] < 300 or box[1] < 100:
            fail("chart is %r px" % box)
        # Soonest first: the rendered rows' expiry titles never decrease.
        order = wd.script("return Array.from(document.querySelectorAll('#certs tbody tr'))"
                          ".map(function(r){return r.cells[1].title;})")
        if order != sorted(order):
            fail("certificate rows are not soonest first")
        for section in ("budget", "trust", "timeline", "certificates", "issued", "refused"):
            if not wd.find_all("#" + section):
                fail("section #%s missing" % section)
        stage = wd.script("return document.getElementById('trust').innerText")
        if "Stage: stable" not in stage or "Root 1" not in stage or "SKID" not in stage:
            fail("trust section lacks stage/root/SKID: %r" % stage[:400])

        desktop_png = os.path.join(out_dir, "status-page.png")
        wd.screenshot(desktop_png)

        # Phone: a 375 px wide viewport must not scroll sideways.
        wd.cdp("Emulation.setDeviceMetricsOverride",
               {"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": True})
        wd.get(base + "/")
        widths = wd.script("return [document.documentElement.scrollWidth,"
                           " document.documentElement.clientWidth, window.innerWidth,"
                           " document.body.scrollWidth]")
        if widths[1] != 375 and widths[2] != 375:
            fail("the phone viewport is not 375 px wide: %r" % widths)
        if widths[0] > widths[1] or widths[3] > widths[1]:
            fail("horizontal overflow at 375 px: scrollWidth %d > clientWidth %d (body %d)"
                 % (widths[0], widths[1], widths[3]))
        phone_png = os.path.join(out_dir, "status-page-375.png")
        wd.screenshot(phone_png)

        errors = [e for e in wd.console() if e.get("level") in ("SEVERE", "ERROR")]
        if errors:
            fail("console errors: %r" % errors)

        print("PASS: %d certificates, %d rows, %d chart marks, no console errors, no overflow "
              "at 375 px (%r); screenshots %s %s; daemon ready in %.1fs, total %.1fs"
              % (len(names), rows, marks, widths, desktop_png, phone_png, t_ready - t0,
                 time.monotonic() - t0))
    finally:
        if wd:
            wd.quit()
        stop(driver_proc)
        stop(daemon)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

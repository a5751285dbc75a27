#!/usr/bin/env python3
"""The console's page targets on a running server (issue 22): server time per page (time to
the whole body over loopback, median and max of RUNS requests), bytes a page transfers (the
HTML plus its CSS and JS), and the time to a complete page in headless Chromium
(navigation's loadEventEnd, median and max of RUNS loads, cache disabled).

Usage: bench/console/pages.py URL [RUNS] [CHROMIUM]
  The server must be open (loopback development mode, no key) or AISLE_ADMIN_KEY given.
  Needs websocket-client (bench/setup-peers.sh websocket-client), never a project dependency.
"""
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

import websocket  # websocket-client, in the throwaway peer virtualenv

PAGES = ["overview", "data", "models", "experiments", "search", "shopper"]
TARGET_SERVER_MS, TARGET_BROWSER_MS, TARGET_BYTES = 300, 1000, 500_000


def session_cookie(url):
    """A session cookie for a server that wants a key; None in development mode."""
    key = os.environ.get("AISLE_ADMIN_KEY")
    if not key:
        return None
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port)
    c.request("POST", "/console/login", body=urllib.parse.urlencode({"key": key}),
              headers={"content-type": "application/x-www-form-urlencoded", "origin": url})
    r = c.getresponse()
    r.read()
    cookie = r.getheader("set-cookie") or ""
    return cookie.split(";")[0] or None


def get(conn, path, cookie):
    t = time.perf_counter()
    conn.request("GET", path, headers={"cookie": cookie} if cookie else {})
    r = conn.getresponse()
    body = r.read()
    return (time.perf_counter() - t) * 1000, r.status, body


def page_path(p, shopper):
    return f"/console/{p}" + (f"?user={shopper}" if p == "shopper" and shopper else "")


def server_times(url, runs, cookie, shopper):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    assets = 0
    for a in ("/console/assets/console.css", "/console/assets/console.js"):
        _, s, body = get(conn, a, cookie)
        assert s == 200, (a, s)
        assets += len(body)
    out = {}
    for p in PAGES:
        times, size = [], 0
        for _ in range(runs):
            ms, s, body = get(conn, page_path(p, shopper), cookie)
            assert s == 200, (p, s, body[:200])
            times.append(ms)
            size = len(body)
        out[p] = (statistics.median(times), max(times), size + assets)
    return out


class Chromium:
    def __init__(self, exe):
        self.dir = tempfile.mkdtemp(prefix="aisle-bench-chromium-")
        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
             f"--user-data-dir={self.dir}", "--window-size=1280,900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        ws = None
        for line in self.proc.stderr:
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                ws = m.group(1)
                break
        port = urllib.parse.urlsplit(ws).port
        c = http.client.HTTPConnection("127.0.0.1", port)
        c.request("GET", "/json/list")
        target = next(t for t in json.loads(c.getresponse().read()) if t["type"] == "page")
        self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=30)
        self.n = 0
        self.call("Page.enable")
        self.call("Network.enable")
        self.call("Network.setCacheDisabled", {"cacheDisabled": True})

    def call(self, method, params=None):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params or {}}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == self.n:
                return m.get("result", {})

    def load(self, url):
        """Navigates and waits for the load event; the page's own timing."""
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": "Page.navigate", "params": {"url": url}}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("method") == "Page.loadEventFired":
                break
        r = self.call("Runtime.evaluate", {"returnByValue": True, "expression":
            "(() => { const n = performance.getEntriesByType('navigation')[0];"
            " return [n.loadEventEnd, n.responseEnd - n.requestStart]; })()"})
        return r["result"]["value"]

    def close(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    url = sys.argv[1].rstrip("/")
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    exe = sys.argv[3] if len(sys.argv) > 3 else shutil.which("chromium") or "chromium"
    cookie = session_cookie(url)
    shopper = os.environ.get("SHOPPER", "")
    srv = server_times(url, runs, cookie, shopper)
    b = Chromium(exe)
    if cookie:
        name, value = cookie.split("=", 1)
        b.call("Network.setCookie", {"name": name, "value": value, "url": url})
    loads = {}
    for p in PAGES:
        b.load(url + page_path(p, shopper))  # a first load (fonts, the process warm)
        loads[p] = [b.load(url + page_path(p, shopper))[0] for _ in range(runs)]
    b.close()
    print(f"console pages on {url} ({runs} runs each; targets: server < {TARGET_SERVER_MS} ms, "
          f"complete in Chromium < {TARGET_BROWSER_MS} ms, < {TARGET_BYTES // 1000} kB)")
    print(f"{'page':<12}{'server p50 ms':>14}{'server max':>12}{'Chromium p50 ms':>17}"
          f"{'Chromium max':>14}{'bytes':>9}")
    worst = [0.0, 0.0, 0]
    for p in PAGES:
        s50, smax, size = srv[p]
        l = loads[p]
        print(f"{p:<12}{s50:>14.1f}{smax:>12.1f}{statistics.median(l):>17.1f}{max(l):>14.1f}{size:>9}")
        worst = [max(worst[0], s50), max(worst[1], statistics.median(l)), max(worst[2], size)]
    ok = worst[0] < TARGET_SERVER_MS and worst[1] < TARGET_BROWSER_MS and worst[2] < TARGET_BYTES
    print(f"slowest server median {worst[0]:.1f} ms, slowest Chromium median {worst[1]:.1f} ms, "
          f"largest page {worst[2]} bytes: {'within' if ok else 'OUTSIDE'} the targets")


if __name__ == "__main__":
    main()

"""A minimal WebDriver client over chromedriver's HTTP protocol (plain urllib, no Selenium), for
tests/scripts/serve_browser.py and bench/serve_overview.py: headless Chromium, navigate, run
JavaScript, take screenshots."""
import base64
import json
import sys
import time
import urllib.request


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def call(url, method="GET", body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())["value"]


class Browser:
    def __init__(self, driver):
        self.driver = driver
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--hide-scrollbars"]}}}}
        self.session = call(f"{driver}/session", "POST", caps)["sessionId"]
        self.base = f"{driver}/session/{self.session}"

    def go(self, url):
        call(f"{self.base}/url", "POST", {"url": url})

    def js(self, script):
        return call(f"{self.base}/execute/sync", "POST", {"script": script, "args": []})

    def wait(self, script, what, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            value = self.js(script)
            if value:
                return value
            time.sleep(0.1)
        fail(f"timed out waiting for {what}")

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(call(f"{self.base}/screenshot")))

    def close(self):
        call(self.base, "DELETE")

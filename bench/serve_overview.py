"""How fast `expt serve` shows the overview of a large sweep (docs/dashboard.md "Performance").

    /usr/bin/python3 bench/serve_overview.py EXPT SMALL_SWEEP OUT [N]

Builds a synthetic sweep of N (default 1000) trials in OUT from a finished small sweep (e.g.
`expt sweep tests/fixtures/serve_study.yaml --out /tmp/small`): every trial directory of OUT is a
copy of one of SMALL_SWEEP's (without checkpoints) under a new id, and sweep.h5 / status.json
list all N in the coordinator's layout. Then it starts `expt serve OUT`, times GET /api/overview
cold (every result.h5 read) and warm (cached by modification time), and, when chromedriver is
installed, the page in headless Chromium from navigation start to the rendered trial table; then
asks for every trial's curves and trial page twice and prints the server's resident memory after
each pass (bounded: the second pass must not grow it).
"""
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import h5py
import numpy as np


def build(small, out, n):
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "trials"))
    with h5py.File(os.path.join(small, "sweep.h5"), "r") as f:
        rows = f["trials"][:]
        points = list(f["point"].asstr()[:])
        axis_keys = list(f["axis_keys"].asstr()[:])
        axes = {k: (f["axes"][k]["value"][:], f["axes"][k]["present"][:]) for k in axis_keys}
        attrs = dict(f.attrs)
        config = f["config"][()]
        config_len = f["config"].attrs["length"]
    status = json.load(open(os.path.join(small, "status.json")))
    ids = [f"{i:016x}" for i in range(n)]
    src = [i % len(rows) for i in range(n)]
    for tid, s in zip(ids, src):
        sdir = os.path.join(small, "trials", rows[s]["trial_id"].decode())
        ddir = os.path.join(out, "trials", tid)
        shutil.copytree(sdir, ddir, ignore=shutil.ignore_patterns("checkpoints", ".lock"))
    new_rows = rows[src].copy()
    new_rows["trial_id"] = [t.encode() for t in ids]
    with h5py.File(os.path.join(out, "sweep.h5"), "w") as f:
        for k, v in attrs.items():
            f.attrs[k] = v
        d = f.create_dataset("config", data=config)
        d.attrs["length"] = config_len
        f.create_dataset("trials", data=new_rows, maxshape=(None,), chunks=(64,))
        f.create_dataset("point", data=[points[s] for s in src], dtype=h5py.string_dtype())
        f.create_dataset("axis_keys", data=axis_keys, dtype=h5py.string_dtype())
        for k, (value, present) in axes.items():
            g = f.create_group(f"axes/{k}")
            g.create_dataset("value", data=value[src])
            g.create_dataset("present", data=present[src])
    by_id = {t["id"]: t for t in status["trials"]}
    trials = []
    for tid, s in zip(ids, src):
        t = dict(by_id[rows[s]["trial_id"].decode()])
        t["id"], t["dir"] = tid, os.path.join(out, "trials", tid)
        trials.append(t)
    status["trials"] = trials
    status["counts"] = {k: sum(t["state"] == k for t in trials) for k in status["counts"]}
    with open(os.path.join(out, "status.json"), "w") as f:
        json.dump(status, f)


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int([x for x in f if x.startswith("VmRSS")][0].split()[1]) / 1024


def timed_get(url):
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        body = r.read()
    return time.perf_counter() - t0, body


def browser_ms(url):
    if not os.access("/usr/bin/chromedriver", os.X_OK):
        return None
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "scripts"))
    port = 9555
    driver = subprocess.Popen(["/usr/bin/chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        from serve_browser_driver import Browser  # noqa: E402 (tests/scripts)
        b = Browser(f"http://127.0.0.1:{port}")
        try:
            times = []
            for _ in range(3):
                b.go("about:blank")
                b.go(url)
                b.wait("return document.body.dataset.ready === '1'", "the overview", timeout=60)
                rows = b.js("return document.querySelectorAll('#trials-table tbody tr.trial-row').length")
                times.append((int(b.js("return document.body.dataset.readyMs")), rows))
            return times
        finally:
            b.close()
    finally:
        driver.terminate()
        driver.wait()


def main():
    expt, small, out = sys.argv[1:4]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    t0 = time.perf_counter()
    build(small, out, n)
    print(f"built {n} trials in {out} in {time.perf_counter() - t0:.1f} s")
    server = subprocess.Popen([expt, "serve", out, "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        url = line[line.index("http://"):].split()[0]
        cold, body = timed_get(url + "api/overview?dir=0")
        o = json.loads(body)
        warm = [timed_get(url + "api/overview?dir=0")[0] for _ in range(5)]
        print(f"GET /api/overview: {len(o['trials'])} trials, {len(body) / 1e3:.0f} kB; cold {cold * 1e3:.0f} ms, "
              f"warm {min(warm) * 1e3:.0f}-{max(warm) * 1e3:.0f} ms")
        page = browser_ms(url)
        if page is not None:
            print("page in headless Chromium, navigation start to the table of every trial: " +
                  ", ".join(f"{ms} ms ({rows} rows)" for ms, rows in page))
        print(f"server resident memory after the overview: {rss_mib(server.pid):.0f} MiB")
        # Every trial's curves and trial page, twice: the second pass must not grow the server (the
        # curves' cache is bounded, the rest is read per request).
        ids = [t["id"] for t in o["trials"]]
        for p in (1, 2):
            t0 = time.perf_counter()
            for tid in ids:
                timed_get(f"{url}api/metrics?dir=0&id={tid}")
                timed_get(f"{url}api/trial?dir=0&id={tid}")
            per = (time.perf_counter() - t0) / len(ids) * 1e3
            print(f"pass {p}: curves and trial page of all {len(ids)} trials, {per:.1f} ms per trial; "
                  f"server resident memory {rss_mib(server.pid):.0f} MiB")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()

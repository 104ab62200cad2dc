"""The dashboard in a real browser: headless Chromium driven through chromedriver's WebDriver HTTP
protocol (plain urllib, no Selenium), against a running `expt serve` (tests/scripts/serve_browser.sh).

    serve_browser.py DRIVER_URL DASHBOARD_URL SCREENSHOT_DIR

Checks the rendered DOM: one trial row per trial of the overview API, the counts by state, the
curves canvas with one series per cell that has a finished trial (the best config per cell) and one
per selected trial, the analysis tables, and a trial page; saves screenshots of each view.
"""
import json
import os
import sys
import time
import urllib.request

from serve_browser_driver import Browser, fail


def wait_equal(b, script, want, what, timeout=30):
    got = None
    end = time.time() + timeout
    while time.time() < end:
        got = b.js(script)
        if got == want:
            return
        time.sleep(0.1)
    fail(f"{what}: {got!r}, expected {want!r}")


def api(url, path):
    with urllib.request.urlopen(f"{url}{path}") as r:
        return json.loads(r.read())


def show_dir(b, url, d):
    """Switches the page to directory d and waits for its trial table."""
    ids = sorted(t["id"] for t in api(url, f"/api/overview?dir={d}")["trials"])
    b.js("document.querySelector('nav button[data-tab=overview]').click();"
         f"const s = document.getElementById('dir-select'); s.value = '{d}'; s.dispatchEvent(new Event('change'))")
    b.wait("return JSON.stringify([...document.querySelectorAll('#trials-table tbody tr.trial-row')]"
           f".map(r => r.dataset.id).sort()) === '{json.dumps(ids, separators=(',', ':'))}'", f"the table of dir {d}")


def check_roles(b, url, shots):
    """Dir 1 (WSD branches, confirmation seeds): the role column, a branch's trial page and its link to
    the trunk, the analysis head of `expt analyze` (summary, headings) and the confirmation lines."""
    o = api(url, "/api/overview?dir=1")
    show_dir(b, url, 1)
    stale = b.js("return document.getElementById('analysis-head').textContent + document.getElementById('trial-body').textContent")
    if api(url, "/api/dirs")[0]["path"] in stale:
        fail(f"after switching to dir 1 the other tabs still show dir 0: {stale[:300]!r}")
    shown = b.js("const col = [...document.querySelectorAll('#trials-table thead th')].findIndex(h => h.dataset.key === 'role');"
                 "return col < 0 ? null : Object.fromEntries([...document.querySelectorAll('#trials-table tbody tr.trial-row')]"
                 ".map(r => [r.dataset.id, r.cells[col].textContent]))")
    want = {t["id"]: t["role"] for t in o["trials"]}
    if shown != want or not any(r.startswith("branch of") for r in shown.values()):
        fail(f"role column {shown} vs the API's {want}")
    b.screenshot(os.path.join(shots, "dashboard_roles.png"))
    branch = next(t for t in o["trials"] if t["branch"] and t["branch"]["role"] == "branch")
    b.js(f"document.querySelector('#trials-table tr[data-id=\"{branch['id']}\"] td:nth-child(2)').click()")
    role = b.wait("const r = document.getElementById('trial-role'); return r ? r.textContent : null", "the role line")
    if not role.startswith("role: " + branch["role"]):
        fail(f"trial page role {role!r} vs {branch['role']!r}")
    trunk = branch["branch"]["trunk"]
    b.js(f"document.querySelector('#trial-role a[href=\"#trial={trunk}\"]').click()")
    heading = b.wait(f"const h = document.getElementById('trial-id'); return h && h.textContent === 'trial {trunk}' "
                     "? h.textContent : null", "the trunk's page")
    trunk_role = b.js("return document.getElementById('trial-role').textContent")
    if "trunk of" not in trunk_role or "fork points committed at step" not in trunk_role:
        fail(f"the trunk's page says {trunk_role!r}")
    b.js("document.querySelector('nav button[data-tab=analysis]').click()")
    a = api(url, "/api/analysis?dir=1")
    wait_equal(b, "const s = document.querySelector('#analysis-summary span'); return s && s.textContent",
               a["summary"], "the analysis summary")
    headings = b.js("return [...document.querySelectorAll('#analysis-tables h2')].map(h => h.textContent)")
    if headings != [t["title"] for t in a["titles"]] or len(headings) != len(a["tables"]):
        fail(f"headings {headings} vs {a['titles']}")
    cols = b.js("return [...document.querySelectorAll('table.analysis-table[data-table=cells] th')].map(h => h.textContent)")
    if cols != next(t["columns"] for t in a["titles"] if t["name"] == "cells"):
        fail(f"cells table columns {cols} vs {a['titles']}")
    lines = b.js("return [...document.querySelectorAll('#confirmation-list li')].map(l => l.textContent)")
    want_lines = [f"confirm {c['cell']}: {c['confirmation']['text']}" for c in o["cells"] if "confirmation" in c]
    if not lines or lines != want_lines:
        fail(f"confirmation lines {lines} vs {want_lines}")
    b.screenshot(os.path.join(shots, "dashboard_analysis.png"))
    return f"roles of {len(want)} trials, branch {branch['id']} -> trunk {heading}, {len(lines)} confirmation lines"


def check_states(b, url):
    """Dir 2: states the page has no word for are counted, offered in the state filter and counted
    as finished in the cells table, as COMPLETED is."""
    o = api(url, "/api/overview?dir=2")
    show_dir(b, url, 2)
    counts = b.js("return Object.fromEntries([...document.querySelectorAll('#counts span')]"
                  ".map(s => [s.dataset.state, Number(s.textContent.split(' ').pop())]))")
    if counts != o["counts"] or counts.get("PRUNED") != 1 or counts.get("LATER_STATE") != 1:
        fail(f"counts {counts} vs {o['counts']}")
    finished = b.js("return [...document.querySelectorAll('#cells-table tbody tr')].reduce((n, r) => n + Number(r.cells[3].textContent), 0)")
    if finished != sum(t["finished"] for t in o["trials"]) or finished != len(o["trials"]):
        fail(f"cells table: {finished} finished of {len(o['trials'])}")
    shown = b.js("const s = document.getElementById('state-filter'); s.value = 'PRUNED'; s.dispatchEvent(new Event('change'));"
                 "return [...document.querySelectorAll('#trials-table tbody tr.trial-row')].map(r => r.dataset.id)")
    if shown != [t["id"] for t in o["trials"] if t["state"] == "PRUNED"]:
        fail(f"state filter PRUNED shows {shown}")
    return f"states {counts}, {finished} finished"


def check_late_answer(b, url):
    """An overview answer of the previous directory that arrives after the switch to another one
    is dropped: the page's fetch is wrapped so that dir 1's overview answers 1.5 s late, a load of
    dir 1 starts, the page switches to dir 2 at once; after the late answer has landed the table,
    the selector and the curves still belong to dir 2 (before the fix the late answer replaced the
    overview, and the curves asked dir 2 for dir 1's trials until the test timed out)."""
    show_dir(b, url, 1)
    ids2 = sorted(t["id"] for t in api(url, "/api/overview?dir=2")["trials"])
    ids1 = sorted(t["id"] for t in api(url, "/api/overview?dir=1")["trials"])
    if ids1 == ids2:
        fail("dirs 1 and 2 hold the same trials: the late answer would not show")
    b.js("window.plainFetch = window.fetch;"
         "window.fetch = (u, o) => String(u).includes('/api/overview?dir=1') ?"
         " new Promise(r => setTimeout(r, 1500)).then(() => window.plainFetch(u, o)) : window.plainFetch(u, o);"
         "loadOverview();"
         "const s = document.getElementById('dir-select'); s.value = '2'; s.dispatchEvent(new Event('change'))")
    table = ("return JSON.stringify([...document.querySelectorAll('#trials-table tbody tr.trial-row')]"
             ".map(r => r.dataset.id).sort())")
    b.wait(f"{table} === '{json.dumps(ids2, separators=(',', ':'))}'", "the table of dir 2")
    time.sleep(2.5)  # the late answer of dir 1 lands meanwhile
    shown = json.loads(b.js(table))
    b.js("window.fetch = window.plainFetch")
    if shown != ids2 or b.js("return document.getElementById('dir-select').value") != "2":
        fail(f"after a late answer of dir 1 the page shows {shown} (dir 2 holds {ids2}, dir 1 {ids1})")
    b.js("document.getElementById('curves-chart').dataset.rendered = '';"
         "document.querySelector('nav button[data-tab=curves]').click()")
    b.wait("return document.getElementById('curves-chart').dataset.rendered === '1'", "the curves of dir 2")
    return "a late overview answer of the previous directory dropped"


def check_best(b, url):
    """Dir 3: the curves' best config of a cell whose confirmed point has the lower loss on the search
    seed but a higher mean over its two seeds than the other point's single seed: the page draws
    the point `expt analyze` chooses, not the lowest mean."""
    o = api(url, "/api/overview?dir=3")
    a = api(url, "/api/analysis?dir=3")
    cell = "adamw/s/x1"
    means = {}
    for t in o["trials"]:
        if t["cell"] == cell and t["state"] == "COMPLETED":
            means.setdefault(t["point"], []).append(t["final_eval_loss"])
    lowest_mean = min(means, key=lambda p: sum(means[p]) / len(means[p]))
    chosen = a["best_trials"][cell]["point"]
    row = next(r for r in a["tables"]["cells"] if r["optimizer"] == "adamw" and r["ratio"] == 1)
    if chosen != row["best_point"] or chosen == lowest_mean:
        fail(f"the crafted losses do not separate the rules: analyze {row['best_point']}, best_trials {chosen}, "
             f"lowest mean {lowest_mean} ({means})")
    show_dir(b, url, 3)
    b.js("document.getElementById('curve-mode').value = 'best';"
         "document.getElementById('curves-chart').dataset.rendered = '';"
         "document.querySelector('nav button[data-tab=curves]').click()")
    b.wait("const c = document.getElementById('curves-chart'); return c.dataset.rendered === '1' && !!Chart.getChart(c)",
           "the curves of dir 3")
    labels = b.js("return Chart.getChart(document.getElementById('curves-chart')).data.datasets"
                  ".filter(d => !d.band).map(d => d.label)")
    mine = [x for x in labels if x.startswith(cell + ": ")]
    if mine != [f"{cell}: {chosen} (2 seeds, best as expt analyze)"]:
        fail(f"curves of {cell}: {mine}; expt analyze's best {chosen!r}, the lowest mean {lowest_mean!r}")
    return f"best of {cell}: {chosen} (not the lowest mean {lowest_mean})"


def main():
    driver, url, shots = sys.argv[1], sys.argv[2].rstrip("/"), sys.argv[3]
    with urllib.request.urlopen(f"{url}/api/overview?dir=0") as r:
        overview = json.loads(r.read())
    trials = overview["trials"]
    finished_cells = {t["cell"] for t in trials if t["state"] == "COMPLETED"}

    b = Browser(driver)
    try:
        b.go(url + "/")
        b.wait("return document.body.dataset.ready === '1'", "the overview")
        rows = b.js("return [...document.querySelectorAll('#trials-table tbody tr.trial-row')].map(r => r.dataset.id)")
        if sorted(rows) != sorted(t["id"] for t in trials):
            fail(f"trial rows {rows} vs the API's {[t['id'] for t in trials]}")
        counts = b.js("return Object.fromEntries([...document.querySelectorAll('#counts span')]"
                      ".map(s => [s.dataset.state, Number(s.textContent.split(' ').pop())]))")
        if counts != overview["counts"]:
            fail(f"counts {counts} vs {overview['counts']}")
        # The filter narrows the table: key=value on the optimizer.
        opt = trials[0]["optimizer"]
        shown = b.js(f"const f = document.getElementById('filter'); f.value = 'optimizer={opt}';"
                     "f.dispatchEvent(new Event('input'));"
                     "return document.querySelectorAll('#trials-table tbody tr.trial-row').length")
        if shown != sum(t["optimizer"] == opt for t in trials):
            fail(f"filter optimizer={opt} shows {shown} rows")
        b.js("const f = document.getElementById('filter'); f.value = ''; f.dispatchEvent(new Event('input'))")
        b.screenshot(os.path.join(shots, "dashboard_overview.png"))

        # Curves: the best config of every cell with a finished trial, one line each.
        b.js("document.querySelector('nav button[data-tab=curves]').click()")
        n = b.wait("const c = document.getElementById('curves-chart');"
                   "return c.dataset.rendered === '1' && Chart.getChart(c) ? c.dataset.seriesCount : null", "the curves")
        lines = b.js("const ch = Chart.getChart(document.getElementById('curves-chart'));"
                     "return ch.data.datasets.filter(d => !d.band && d.data.length > 0).length")
        if int(n) != len(finished_cells) or lines != len(finished_cells):
            fail(f"curves: {n} series in the DOM, {lines} drawn, {len(finished_cells)} cells with a finished trial")
        b.screenshot(os.path.join(shots, "dashboard_curves.png"))

        # Three selected trials: three lines.
        b.js("document.querySelector('nav button[data-tab=overview]').click()")
        b.wait("return document.querySelectorAll('#trials-table tbody tr.trial-row').length > 0", "the table")
        b.js("[...document.querySelectorAll('#trials-table tbody tr.trial-row input')].slice(0, 3).forEach(c => c.click());"
             "document.getElementById('curves-chart').dataset.rendered = '';"
             "document.getElementById('plot-selected').click()")
        n = b.wait("const c = document.getElementById('curves-chart');"
                   "return c.dataset.rendered === '1' ? c.dataset.seriesCount : null", "the selected curves")
        if int(n) != 3:
            fail(f"3 selected trials drew {n} series")

        # Analysis: the tables of `expt analyze`.
        b.js("document.querySelector('nav button[data-tab=analysis]').click()")
        tables = b.wait("const t = [...document.querySelectorAll('table.analysis-table')].map(t => t.dataset.table);"
                        "return t.length ? t : null", "the analysis tables")
        if "cells" not in tables:
            fail(f"analysis tables {tables}")

        # A trial page: its id, config and attempts.
        tid = trials[0]["id"]
        b.js(f"document.querySelector('#trials-table tr[data-id=\"{tid}\"] td:nth-child(2)').click()")
        heading = b.wait("const h = document.getElementById('trial-id'); return h ? h.textContent : null", "the trial page")
        if heading != f"trial {tid}":
            fail(f"trial page heading {heading!r}")
        b.screenshot(os.path.join(shots, "dashboard_trial.png"))

        roles_checked = check_roles(b, url, shots)
        states = check_states(b, url)
        late = check_late_answer(b, url)
        best = check_best(b, url)
    finally:
        b.close()
    print(f"serve_browser: {len(rows)} trial rows, {len(finished_cells)} best-config series, 3 selected series, "
          f"analysis tables {tables}, trial page {tid}; {roles_checked}; {states}; {late}; {best}; screenshots in {shots}")


main()

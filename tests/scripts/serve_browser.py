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
import urllib.request

from serve_browser_driver import Browser, fail


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
    finally:
        b.close()
    print(f"serve_browser: {len(rows)} trial rows, {len(finished_cells)} best-config series, 3 selected series, "
          f"analysis tables {tables}, trial page {tid}; screenshots in {shots}")


main()

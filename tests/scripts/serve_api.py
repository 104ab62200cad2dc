"""Checks of `expt serve`'s JSON API against the files it reads (tests/scripts/serve_*.sh).

    serve_api.py finished URL SWEEP_DIR ANALYZE_JSON   dir 0 = SWEEP_DIR, a finished sweep
    serve_api.py damaged URL DAMAGED_DIR N BAD_RESULT_ID BAD_SEGMENT_ID   dir N, damaged files
    serve_api.py broken_index URL DIR N                dir N: sweep.h5 is garbage
    serve_api.py trial URL TRIAL_DIR N                 dir N = one trial directory
    serve_api.py live URL SWEEP_DIR SWEEP_PID          a sweep being written: poll until it ends
    serve_api.py roles URL SWEEP_DIR PLAN_OUT [STATUS_OUT ANALYZE_JSON ANALYZE_TXT]
                                                       WSD trunks and branches as `expt plan` and
                                                       attempts.jsonl say, confirmation seeds as
                                                       status.json and `expt status` say, the analysis
                                                       head as `expt analyze` prints it

Every value the API returns is compared with what h5py and json read from the same files.
"""
import json
import math
import os
import re
import sys
import time
import urllib.error
import urllib.request

import h5py


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def get(url, expect=200):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            status, body, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        status, body, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
    if status != expect:
        fail(f"GET {url}: status {status}, expected {expect}: {body[:300]!r}")
    return json.loads(body) if ctype.startswith("application/json") else body


def close(a, b, what):
    if a is None or b is None or not math.isfinite(b):
        if not (a is None and (b is None or not math.isfinite(b))):
            fail(f"{what}: {a} vs {b}")
        return
    if abs(a - b) > 1e-6 * max(1.0, abs(b)):
        fail(f"{what}: {a} vs {b}")


def check_metrics(url, d, trial_dir, tid):
    """Every train and eval row of result.h5, column by column."""
    m = get(f"{url}api/metrics?dir={d}&id={tid}&points=100000")
    with h5py.File(os.path.join(trial_dir, "result.h5"), "r") as f:
        train, ev = f["metrics/train"][:], f["metrics/eval"][:]
    if m["source"] != "result.h5" or m["train_rows"] != len(train) or len(m["train"]["step"]) != len(train):
        fail(f"metrics of {tid}: {m['source']} {m['train_rows']} rows, result.h5 has {len(train)}")
    for col in ("step", "tokens", "loss", "lr", "grad_norm"):
        for a, b in zip(m["train"][col], train[col].tolist()):
            close(a, float(b), f"{tid} train {col}")
    for col in ev.dtype.names:
        if len(m["eval"][col]) != len(ev):
            fail(f"{tid} eval {col}: {len(m['eval'][col])} rows, result.h5 has {len(ev)}")
        for a, b in zip(m["eval"][col], ev[col].tolist()):
            close(a, float(b), f"{tid} eval {col}")
    thin = get(f"{url}api/metrics?dir={d}&id={tid}&points=5")
    if len(thin["train"]["step"]) != 5 or thin["train"]["step"][-1] != int(train["step"][-1]):
        fail(f"thinned metrics of {tid}: {thin['train']['step']}")


def finished(url, sweep, analyze_json):
    dirs = get(url + "api/dirs")
    if dirs[0]["path"] != os.path.realpath(sweep) or dirs[0]["kind"] != "sweep":
        fail(f"api/dirs: {dirs}")
    o = get(url + "api/overview?dir=0")
    status = json.load(open(os.path.join(sweep, "status.json")))
    if o["counts"] != {k: v for k, v in status["counts"].items()}:
        fail(f"counts {o['counts']} vs status.json {status['counts']}")
    if o["notes"]:
        fail(f"notes on an intact sweep: {o['notes']}")
    if o["liveness"]["state"] != "finished" or o["liveness"]["command"]:
        fail(f"a finished sweep has nothing to resume, as expt status says: {o['liveness']}")
    with h5py.File(os.path.join(sweep, "sweep.h5"), "r") as f:
        rows = f["trials"][:]
        points = f["point"].asstr()[:]
    if [t["id"] for t in o["trials"]] != [r["trial_id"].decode() for r in rows]:
        fail("trial order differs from sweep.h5")
    by_id = {t["id"]: t for t in o["trials"]}
    for r, point in zip(rows, points):
        tid = r["trial_id"].decode()
        t = by_id[tid]
        tdir = os.path.join(sweep, "trials", tid)
        with h5py.File(os.path.join(tdir, "result.h5"), "r") as f:
            s = dict(f["summary"].attrs)
        if t["state"] != r["status"].decode() or t["cell"] != r["cell"].decode() or t["point"] != point:
            fail(f"{tid}: row {t} vs sweep.h5 {r}")
        if t["seed"] != int(r["seed"]) or t["steps"] != int(r["steps"]) or t["attempts"] != int(r["n_attempts"]):
            fail(f"{tid}: seed/steps/attempts {t} vs {r}")
        close(t["final_eval_loss"], float(s["final_eval_loss"]), f"{tid} final_eval_loss")
        close(t["best_eval_loss"], float(s["best_eval_loss"]), f"{tid} best_eval_loss")
        close(t["cpu_s"], float(s["wall_s"]), f"{tid} cpu_s")
        if t["step"] != int(s["steps_done"]):
            fail(f"{tid}: step {t['step']} vs steps_done {s['steps_done']}")
    cells = {r["cell"].decode() for r in rows}
    if {c["cell"] for c in o["cells"]} != cells:
        fail(f"cells {o['cells']} vs {cells}")

    # Trial page: the files' own contents.
    tid = rows[0]["trial_id"].decode()
    tdir = os.path.join(sweep, "trials", tid)
    t = get(f"{url}api/trial?dir=0&id={tid}")
    if t["config"] != open(os.path.join(tdir, "trial.yaml")).read():
        fail("trial page config differs from trial.yaml")
    attempts = [json.loads(x) for x in open(os.path.join(tdir, "attempts.jsonl")) if x.strip()]
    if t["attempts"] != attempts:
        fail("trial page attempts differ from attempts.jsonl")
    with h5py.File(os.path.join(tdir, "result.h5"), "r") as f:
        kinds = [k.decode().rstrip("\0") for k in f["events"]["kind"]]
    if [e["kind"] for e in t["events"]] != kinds:
        fail(f"events {t['events']} vs result.h5 {kinds}")
    if t["summary"]["status"] != "COMPLETED" or t["summary"]["steps_done"] != 40:
        fail(f"summary {t['summary']}")
    check_metrics(url, 0, tdir, tid)
    log = get(f"{url}files/0/trials/{tid}/log.txt")
    if log != open(os.path.join(tdir, "log.txt"), "rb").read():
        fail("files/ log.txt differs from the file")
    get(f"{url}api/trial?dir=0&id=0123456789abcdef", expect=404)
    get(f"{url}api/metrics?dir=0&id=nothex..", expect=404)
    get(f"{url}api/overview?dir=9", expect=400)
    get(f"{url}api/overview?dir=-1", expect=400)

    # Analysis: the same tables as `expt analyze --format json`.
    a = get(url + "api/analysis?dir=0")
    cli = json.load(open(analyze_json))
    for key in ("study", "strategy", "trials_total", "trials_finished", "partial", "tables"):
        if a[key] != cli[key]:
            fail(f"analysis {key}: {json.dumps(a[key])[:300]} vs CLI {json.dumps(cli[key])[:300]}")
    print(f"serve_api: finished sweep ok: {len(rows)} trials, {len(cells)} cells, tables {sorted(a['tables'])}")


def damaged(url, sweep, d, bad_result, bad_segment):
    o = get(f"{url}api/overview?dir={d}")
    notes = " | ".join(o["notes"])
    if "status.json left out" not in notes or f"trials/{bad_result}/result.h5 left out" not in notes:
        fail(f"notes do not name the damaged files: {notes}")
    with h5py.File(os.path.join(sweep, "sweep.h5"), "r") as f:
        n = len(f["trials"])
    if len(o["trials"]) != n:
        fail(f"{len(o['trials'])} rows, sweep.h5 has {n}")
    bad = next(t for t in o["trials"] if t["id"] == bad_result)
    if bad["best_eval_loss"] is not None:
        fail(f"a damaged result.h5 gave a best loss: {bad}")
    m = get(f"{url}api/metrics?dir={d}&id={bad_result}")  # falls back to the segments
    if m["source"] != "segments" or not any("result.h5 left out" in x for x in m["notes"]):
        fail(f"metrics of a trial with a damaged result: {m['source']} {m['notes']}")
    m = get(f"{url}api/metrics?dir={d}&id={bad_segment}")
    joined = " | ".join(m["notes"])
    if "seg-1-0.h5 left out" not in joined or "not read: the newest segment" not in joined or m["train_rows"] != 0:
        fail(f"metrics with a damaged segment: {m['train_rows']} rows, notes {joined}")
    t = get(f"{url}api/trial?dir={d}&id={bad_result}")
    if not any("result.h5 left out" in x for x in t["notes"]) or t["summary"] is not None:
        fail(f"trial page of a damaged result: {t['notes']} {t['summary']}")
    get(f"{url}api/analysis?dir={d}")  # sweep.h5 is intact: analysed (the damaged trial has no wall time)
    print(f"serve_api: damaged files ok: {notes}")


def broken_index(url, sweep, d):
    """sweep.h5 is garbage: the rows come from status.json, the analysis is refused, the server goes on."""
    o = get(f"{url}api/overview?dir={d}")
    status = json.load(open(os.path.join(sweep, "status.json")))
    if [t["id"] for t in o["trials"]] != [t["id"] for t in status["trials"]] or o["counts"] != status["counts"]:
        fail("rows of a sweep with a damaged sweep.h5 differ from status.json")
    if not any(x.startswith("sweep.h5 left out") for x in o["notes"]):
        fail(f"notes {o['notes']}")
    err = get(f"{url}api/analysis?dir={d}", expect=503)
    if "sweep.h5" not in err["error"]:
        fail(f"analysis error {err}")
    get(f"{url}api/overview?dir=0")
    print("serve_api: damaged sweep.h5 ok")


def trial(url, tdir, d):
    o = get(f"{url}api/overview?dir={d}")
    if o["kind"] != "trial" or len(o["trials"]) != 1:
        fail(f"trial directory overview {o}")
    t = o["trials"][0]
    with h5py.File(os.path.join(tdir, "result.h5"), "r") as f:
        s = dict(f["summary"].attrs)
    close(t["final_eval_loss"], float(s["final_eval_loss"]), "trial final loss")
    check_metrics(url, d, tdir, t["id"])
    get(f"{url}files/{d}/log.txt")
    print(f"serve_api: trial directory ok ({t['id']})")


def live(url, sweep, pid):
    """Poll while the sweep runs; every answer must be whole, and the sweep must not notice."""
    seen_running = seen_segments = 0
    polls = 0
    while True:
        alive = os.path.exists(f"/proc/{pid}")
        o = get(url + "api/overview?dir=0")
        polls += 1
        for t in o["trials"]:
            if t["state"] == "running":
                seen_running += 1
                m = get(f"{url}api/metrics?dir=0&id={t['id']}")
                if m["source"] == "segments" and m["left_out"] is not None:
                    # The newest segment seg-<attempt>-<first_step>.h5 is never read: every row
                    # shown comes from a closed one, below its first step.
                    first_step = int(m["left_out"][:-3].split("-")[2])
                    steps = m["train"]["step"]
                    if steps != sorted(set(steps)) or any(s >= first_step for s in steps):
                        fail(f"live metrics of {t['id']}: steps {steps}, newest segment {m['left_out']}")
                    if steps:
                        seen_segments += 1
                get(f"{url}api/trial?dir=0&id={t['id']}")
        if not alive:
            break
        time.sleep(0.05)
    if not seen_running or not seen_segments:
        fail(f"never saw a running trial with live metrics ({polls} polls)")
    o = get(url + "api/overview?dir=0")
    if o["counts"]["COMPLETED"] != len(o["trials"]) or any(t["attempts"] != 1 for t in o["trials"]):
        fail(f"after the sweep: {o['counts']}, attempts {[t['attempts'] for t in o['trials']]}")
    print(f"serve_api: live sweep ok: {polls} polls, running seen {seen_running} times, "
          f"live curves {seen_segments} times, every trial COMPLETED in one attempt")


def plan_roles(plan_out):
    """Each trial's role as `expt plan` prints it: "trunk of n branch(es)" or "branch of <id> from step c"."""
    text = open(plan_out).read()
    ids, roles = set(), {}
    for m in re.finditer(r"^  ([0-9a-f]{16})  .*$", text, re.M):
        ids.add(m.group(1))
        r = re.search(r"\[(trunk of \d+ branch\(es\)|branch of [0-9a-f]{16} from step \d+)\]", m.group(0))
        if r:
            roles[m.group(1)] = r.group(1)
    if not roles:
        fail(f"expt plan names no trunk or branch: {text}")
    return ids, roles


def attempts_of(sweep, tid):
    path = os.path.join(sweep, "trials", tid, "attempts.jsonl")
    if not os.path.exists(path):
        return []
    return [json.loads(x) for x in open(path) if x.strip().endswith("}")]


def check_roles(url, sweep, plan_out):
    """Every trial's role: the plan's while it has not started, its attempts.jsonl's after. Returns
    (the overview, the number of branches seen before they forked)."""
    ids, planned = plan_roles(plan_out)
    trial_ids = os.listdir(os.path.join(sweep, "trials")) if os.path.isdir(os.path.join(sweep, "trials")) else []
    before = {tid: attempts_of(sweep, tid) for tid in trial_ids}
    o = get(url + "api/overview?dir=0")
    status = {t["id"]: t for t in json.load(open(os.path.join(sweep, "status.json")))["trials"]}
    unforked = 0
    for t in o["trials"]:
        tid, b = t["id"], t["branch"]
        conf = status[tid]["confirmation"] if tid in status else False
        if t["confirmation"] != conf:
            fail(f"{tid}: confirmation {t['confirmation']}, status.json {conf}")
        log = attempts_of(sweep, tid)
        forks = [a for a in log if a.get("event") in ("fork", "fork_skipped")]
        if log != before.get(tid, []):
            pass  # it started while the API answered (a running sweep): either answer is right
        elif forks:  # what happened
            f = forks[-1]
            if f["event"] != "fork" or not b or b["role"] != "branch" or b["trunk"] != f["trunk"] or \
                    b["from_step"] != f["from_step"] or not b["forked"]:
                fail(f"{tid}: attempts.jsonl says {f}, the API {b}")
        elif b and b["role"] == "branch":
            if b["forked"] or any(a.get("event") == "start" for a in attempts_of(sweep, tid)):
                fail(f"{tid}: a branch without a fork line: {b}")
            unforked += 1
        if tid in ids:  # a search trial: the role `expt plan` gives it
            if (b["text"] if b else None) != planned.get(tid):
                fail(f"{tid}: role {b} vs expt plan's {planned.get(tid)!r}")
        elif b and b["role"] == "branch":  # a confirmation seed's trunk: the same point at a larger ratio
            trunk = next(x for x in o["trials"] if x["id"] == b["trunk"])
            if (trunk["point"], trunk["seed"], trunk["optimizer"]) != (t["point"], t["seed"], t["optimizer"]) or \
                    trunk["steps"] <= t["steps"]:
                fail(f"{tid}: trunk {trunk} of {t}")
        want = "; ".join(x for x in ["confirmation seed" if conf else "", b["text"] if b else ""] if x)
        if t["role"] != want:
            fail(f"{tid}: role {t['role']!r}, expected {want!r}")
        if b and b["role"] == "trunk":
            n = sum(1 for x in o["trials"] if x["branch"] and x["branch"].get("trunk") == tid)
            if b["branches"] != n:
                fail(f"{tid}: trunk of {b['branches']}, {n} trials name it")
    return o, unforked


def roles_live(url, sweep, plan_out, pid):
    """While the sweep runs: pending branches show the plan's role and fork step."""
    seen_unforked = polls = 0
    while os.path.exists(f"/proc/{pid}"):
        _, unforked = check_roles(url, sweep, plan_out)
        seen_unforked = max(seen_unforked, unforked)
        polls += 1
        time.sleep(0.2)
    if not seen_unforked:
        fail(f"never saw a branch before its fork ({polls} polls)")
    print(f"serve_api: live roles ok: {polls} polls, up to {seen_unforked} planned branches before their fork")


def roles(url, sweep, plan_out, status_out, analyze_json, analyze_txt):
    o, unforked = check_roles(url, sweep, plan_out)
    if unforked:
        fail(f"{unforked} branches of a finished sweep did not fork")
    kinds = [(t["confirmation"], t["branch"]["role"] if t["branch"] else None) for t in o["trials"]]
    for k in [(False, "trunk"), (False, "branch"), (True, "trunk"), (True, "branch"), (True, None)]:
        if k not in kinds and k != (True, None):
            fail(f"the study has no trial of kind {k}: {kinds}")
    for t in o["trials"]:  # the trial page says the same
        p = get(f"{url}api/trial?dir=0&id={t['id']}")
        if p["role"] != t["role"] or p["branch"] != t["branch"]:
            fail(f"trial page of {t['id']}: {p['role']!r} {p['branch']} vs {t['role']!r} {t['branch']}")
        forks = sorted(int(x[5:]) for x in os.listdir(os.path.join(sweep, "trials", t["id"], "forks"))
                       if os.path.exists(os.path.join(sweep, "trials", t["id"], "forks", x, "COMMIT"))) \
            if os.path.isdir(os.path.join(sweep, "trials", t["id"], "forks")) else []
        if p["fork_points"] != forks:
            fail(f"fork points of {t['id']}: {p['fork_points']} vs {forks}")
    # search.confirm: the lines `expt status` prints.
    cli = sorted(x for x in open(status_out).read().splitlines() if x.startswith("confirm "))
    api = sorted(f"confirm {c['cell']}: {c['confirmation']['text']}" for c in o["cells"] if "confirmation" in c)
    if not cli or cli != api:
        fail(f"confirmation: expt status {cli} vs the API {api}")
    # The analysis: the summary paragraph and the tables' headings of `expt analyze`.
    a = get(url + "api/analysis?dir=0")
    j = json.load(open(analyze_json))
    txt = open(analyze_txt).read()
    if a["summary"] != j["summary"] or "Summary: " + a["summary"] not in txt:
        fail(f"summary {a['summary']!r} vs the CLI {j['summary']!r}")
    positions = [txt.find("\n" + t["title"] + "\n") for t in a["titles"]]
    if a["titles"] != j["titles"] or -1 in positions or positions != sorted(positions):
        fail(f"titles {a['titles']} vs the CLI {j['titles']}")
    # The curves' best config per cell: the trials of expt analyze's best point.
    for row in j["tables"]["cells"]:
        cell = f"{row['optimizer']}/{row['model']}/x{row['ratio']:g}"
        want = sorted(t["id"] for t in o["trials"] if t["cell"] == cell and t["point"] == row["best_point"])
        got = a["best_trials"][cell]
        if got["point"] != row["best_point"] or sorted(got["trials"]) != want:
            fail(f"best_trials of {cell}: {got} vs expt analyze's {row['best_point']} ({want})")
    if len(a["best_trials"]) != len(j["tables"]["cells"]):
        fail(f"best_trials {a['best_trials']} vs {len(j['tables']['cells'])} cells")
    print(f"serve_api: roles ok: {len(o['trials'])} trials, {kinds}; {api}; summary {a['summary'][:80]!r}...")


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "finished":
        finished(*args)
    elif mode == "damaged":
        damaged(args[0], args[1], int(args[2]), args[3], args[4])
    elif mode == "broken_index":
        broken_index(args[0], args[1], int(args[2]))
    elif mode == "trial":
        trial(args[0], args[1], int(args[2]))
    elif mode == "live":
        live(args[0], args[1], int(args[2]))
    elif mode == "roles_live":
        roles_live(args[0], args[1], args[2], int(args[3]))
    elif mode == "roles":
        roles(*args)
    else:
        fail("unknown mode " + mode)

"""Checks that a result.h5 reads in Python as docs/results-format.md (schema_version 1) promises.

Usage: /usr/bin/python3 read_result.py RESULT_H5

Opens the file with h5py, reads /metrics/train and /metrics/eval into numpy structured arrays and
checks their field names and kinds, that steps are strictly increasing (no duplicates), the
/summary attributes, and that /config parses with PyYAML with every float read as a float.
Prints a one-line summary and exits 0, or prints every problem found and exits 1.
"""
import json
import re
import sys

import h5py
import numpy as np
import yaml

SCHEMA_VERSION = 1
STATUSES = {"COMPLETED", "DIVERGED", "FAILED", "RUNNING"}
# (name, numpy kind, item size) in stored order.
TRAIN_FIELDS = [("step", "i", 8), ("tokens", "i", 8), ("wall_s", "f", 8), ("loss", "f", 4), ("lr", "f", 4),
                ("grad_norm", "f", 4), ("update_norm", "f", 4), ("param_norm", "f", 4), ("skipped", "u", 1),
                ("nonfinite", "u", 1)]
EVAL_LEADING_FIELDS = [("step", "i", 8), ("tokens", "i", 8), ("wall_s", "f", 8)]
EVENT_FIELDS = [("step", "i", 8), ("wall_s", "f", 8), ("kind", "S", 16), ("detail", "S", 128)]
SUMMARY_ATTRS = {"status": "str", "final_eval_loss": "float", "best_eval_loss": "float", "diverged_step": "int",
                 "tokens_seen": "int", "steps_done": "int", "wall_s": "float", "n_attempts": "int",
                 "n_skipped_steps": "int", "message": "str"}
ROOT_STRING_ATTRS = ["trial_id", "config_hash", "git_sha", "build_info", "created_utc", "status"]

# A plain YAML scalar that YAML 1.2 (yaml-cpp) reads as a float. PyYAML follows YAML 1.1, which
# needs a dot and a signed exponent, so it reads e.g. "1e-3" or "1.0e3" as a string; the resolved
# config must be written so that both agree.
FLOAT_12 = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
INT_12 = re.compile(r"^[-+]?[0-9]+$")
SPECIAL_12 = re.compile(r"^([-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN))$")
YAML_FLOAT_TAG = "tag:yaml.org,2002:float"

errors = []


def fail(msg):
    errors.append(msg)


def text(value):
    """Fixed-length strings come back from h5py as bytes; decode them."""
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8")
    if isinstance(value, str):
        return value
    raise TypeError(f"not a string: {value!r}")


def check_fields(name, dtype, expected):
    """dtype: a numpy structured dtype; expected: leading (name, kind, size) fields."""
    if dtype.names is None:
        fail(f"{name} is not a compound dataset")
        return
    for i, (field, kind, size) in enumerate(expected):
        if i >= len(dtype.names) or dtype.names[i] != field:
            fail(f"{name}: field {i} is {dtype.names[i] if i < len(dtype.names) else None!r}, expected {field!r}")
            continue
        ft = dtype.fields[field][0]
        if ft.kind != kind or ft.itemsize != size:
            fail(f"{name}.{field}: dtype {ft.str}, expected kind {kind!r} size {size}")


def check_increasing(name, steps):
    if len(steps) > 1 and not np.all(np.diff(steps) > 0):
        i = int(np.argmin(np.diff(steps) > 0))
        fail(f"{name}: steps not strictly increasing at row {i + 1} (step {steps[i + 1]} after {steps[i]})")


def check_yaml_floats(node, path="config"):
    if isinstance(node, yaml.ScalarNode):
        if node.style is None:
            v = node.value
            is_float_12 = (FLOAT_12.match(v) and not INT_12.match(v)) or SPECIAL_12.match(v)
            if is_float_12 and node.tag != YAML_FLOAT_TAG:
                fail(f"/config {path}: {v!r} is a float in YAML 1.2 but PyYAML reads it as {node.tag}")
    elif isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            check_yaml_floats(child, f"{path}[{i}]")
    elif isinstance(node, yaml.MappingNode):
        for key, child in node.value:
            check_yaml_floats(child, f"{path}.{key.value}")


def check_summary(f, train):
    if "summary" not in f:
        fail("no /summary group")
        return {}
    attrs = f["summary"].attrs
    values = {}
    for key, kind in SUMMARY_ATTRS.items():
        if key not in attrs:
            fail(f"/summary has no attribute {key}")
            continue
        v = attrs[key]
        if kind == "str":
            try:
                v = text(v)
            except TypeError as e:
                fail(f"/summary.{key}: {e}")
                continue
        elif kind == "int" and not isinstance(v, np.integer):
            fail(f"/summary.{key}: {v!r} is not an integer")
        elif kind == "float" and not isinstance(v, np.floating):
            fail(f"/summary.{key}: {v!r} is not a float")
        values[key] = v
    status = values.get("status")
    if status is not None and status not in STATUSES:
        fail(f"/summary.status {status!r} is not one of {sorted(STATUSES)}")
    if status == "DIVERGED":
        if not (values.get("final_eval_loss") == np.inf):
            fail("DIVERGED trial: final_eval_loss is not +inf")
        if values.get("diverged_step", -1) < 0:
            fail("DIVERGED trial: diverged_step is not set")
    elif status is not None and values.get("diverged_step", -1) != -1:
        fail(f"{status} trial: diverged_step is {values.get('diverged_step')}, expected -1")
    if train is not None and "n_skipped_steps" in values:
        skipped = int(np.count_nonzero(train["skipped"]))
        if values["n_skipped_steps"] != skipped:
            fail(f"/summary.n_skipped_steps {values['n_skipped_steps']} != {skipped} rows with skipped set")
    return values


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    path = sys.argv[1]
    with h5py.File(path, "r") as f:
        root = f.attrs
        if root.get("schema_version") != SCHEMA_VERSION:
            fail(f"schema_version is {root.get('schema_version')!r}, expected {SCHEMA_VERSION}")
        for key in ROOT_STRING_ATTRS:
            if key not in root:
                fail(f"root has no attribute {key}")
        trial_id = text(root["trial_id"]) if "trial_id" in root else "?"
        try:
            json.loads(text(root["build_info"]))
        except (KeyError, TypeError, ValueError) as e:
            fail(f"root build_info is not JSON: {e}")

        config = None
        if "config" not in f:
            fail("no /config dataset")
        else:
            config = text(f["config"][()])
            try:
                yaml.safe_load(config)
                check_yaml_floats(yaml.compose(config, Loader=yaml.SafeLoader))
            except yaml.YAMLError as e:
                fail(f"/config does not parse as YAML: {e}")
        for group in ("hparams", "scale"):
            if group not in f:
                fail(f"no /{group} group")

        train = None
        if "metrics/train" not in f:
            fail("no /metrics/train")
        else:
            train = f["metrics/train"][:]
            check_fields("/metrics/train", train.dtype, TRAIN_FIELDS)
            if len(train.dtype.names) != len(TRAIN_FIELDS):
                fail(f"/metrics/train has fields {train.dtype.names}")
            check_increasing("/metrics/train", train["step"])

        evals = None
        n_prefix = 0
        if "metrics/eval" not in f:
            fail("no /metrics/eval")
        else:
            evals = f["metrics/eval"][:]
            check_fields("/metrics/eval", evals.dtype, EVAL_LEADING_FIELDS)
            for name in evals.dtype.names[len(EVAL_LEADING_FIELDS):]:
                ft = evals.dtype.fields[name][0]
                if ft.kind != "f" or ft.itemsize != 4:
                    fail(f"/metrics/eval.{name}: dtype {ft.str}, expected float32")
            check_increasing("/metrics/eval", evals["step"])
            if "metrics/eval_prefix_acc" in f:
                group = f["metrics/eval_prefix_acc"]
                for length in group.attrs["prefix_lengths"]:
                    ds = group[f"L{length}"]
                    n_prefix += 1
                    if ds.dtype != np.float32 or ds.shape != (len(evals), length):
                        fail(f"{ds.name}: {ds.dtype} {ds.shape}, expected float32 {(len(evals), int(length))}")

        n_events = 0
        if "events" not in f:
            fail("no /events")
        else:
            events = f["events"][:]
            n_events = len(events)
            check_fields("/events", events.dtype, EVENT_FIELDS)

        summary = check_summary(f, train)
        if "status" in root and "status" in summary and text(root["status"]) != summary["status"]:
            fail(f"root status {text(root['status'])!r} differs from /summary.status {summary['status']!r}")

    if errors:
        for e in errors:
            print(f"FAIL {path}: {e}")
        return 1
    steps = train["step"]
    print(f"OK {path}: trial {trial_id} {summary.get('status')}, "
          f"{len(train)} train rows (steps {steps[0] if len(steps) else '-'}..{steps[-1] if len(steps) else '-'}), "
          f"{len(evals)} eval rows x {len(evals.dtype.names) - 3} fields, {n_prefix} prefix sets, "
          f"{n_events} events, final_eval_loss {summary.get('final_eval_loss')}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # a missing object or unreadable file is a failure too, reported in one line
        print(f"FAIL {sys.argv[1] if len(sys.argv) > 1 else ''}: {type(e).__name__}: {e}")
        sys.exit(1)

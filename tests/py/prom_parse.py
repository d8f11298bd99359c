"""Parse a Prometheus text exposition (format 0.0.4) for tests/tests/metrics.rs
with the parser of the `prometheus_client` package (a library independent
of ringway's encoder), plus the checks that parser leaves out.

Reads the exposition on stdin. On success prints one JSON object,

    {"families": {"<name as in its TYPE line>": {"type": ..., "help": ...,
      "samples": [["<sample name>", {"label": "value"}, <value>], ...]}}}

with a value that is not finite given as the string "+Inf", "-Inf" or
"NaN". On a failed check prints `PROM-CHECK-FAILED <why>` and exits 1. If
the package is not installed it prints `MISSING-PROMETHEUS-CLIENT ...`
and exits 3.

Checks beyond the parser's (it is lenient: a sample outside its family
becomes an untyped family of its own, a family may be declared twice):
every family has exactly one HELP and one TYPE, the TYPE right after the
HELP, a known type and non-empty help text; every sample follows its own
family's TYPE (no untyped family parses out); no family is declared twice;
metric and label names are valid (label names not `__`-reserved); a
counter's name ends in `_total`; a histogram's buckets per label set
ascend in `le`, are cumulative and end in `+Inf` equal to `_count`, with
`_sum` present.
"""

import json
import math
import re
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError as e:
    print("MISSING-PROMETHEUS-CLIENT", e, flush=True)
    sys.exit(3)

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
TYPES = {"counter", "gauge", "histogram"}


class Failed(Exception):
    pass


def check(cond, why):
    if not cond:
        raise Failed(why)


def raw_declarations(text):
    """The families in order of their TYPE lines: {name: type}; checks the
    HELP/TYPE pairing line by line."""
    check(text.endswith("\n"), "the text does not end with a line feed")
    helped, typed = set(), {}
    last_help = None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        check(line != "", f"line {n} is empty")
        if line.startswith("# HELP "):
            parts = line.split(" ", 3)
            check(len(parts) == 4 and parts[3].strip(), f"line {n}: HELP without text: {line!r}")
            name = parts[2]
            check(METRIC_NAME.match(name), f"line {n}: bad family name {name!r}")
            check(name not in helped, f"line {n}: a second HELP for {name}")
            helped.add(name)
            last_help = name
        elif line.startswith("# TYPE "):
            parts = line.split(" ")
            check(len(parts) == 4, f"line {n}: bad TYPE line {line!r}")
            name, kind = parts[2], parts[3]
            check(name == last_help, f"line {n}: TYPE {name} not right after its HELP")
            check(name not in typed, f"line {n}: a second TYPE for {name}")
            check(kind in TYPES, f"line {n}: type {kind!r} of {name}")
            if kind == "counter":
                check(name.endswith("_total"), f"line {n}: counter {name} without _total")
            typed[name] = kind
            last_help = None
        else:
            check(not line.startswith("#"), f"line {n}: a stray comment {line!r}")
            check(last_help is None, f"line {n}: a sample between HELP and TYPE")
    check(helped == set(typed), f"HELP without TYPE: {sorted(helped - set(typed))}")
    return typed


def out_value(v):
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return v


def main():
    text = sys.stdin.read()
    typed = raw_declarations(text)
    try:
        parsed = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser raises ValueError and others
        raise Failed(f"prometheus_client cannot parse it: {e!r}")
    families = {}
    for fam in parsed:
        check(fam.type in TYPES, f"{fam.name}: type {fam.type} (a sample outside its family?)")
        # The parser names a counter without its _total.
        name = fam.name + "_total" if fam.type == "counter" else fam.name
        check(name in typed, f"{name}: parsed but not declared")
        check(typed[name] == fam.type, f"{name}: parsed as {fam.type}, declared {typed[name]}")
        check(name not in families, f"{name}: declared twice")
        check(fam.documentation.strip(), f"{name}: no help text")
        allowed = {name} if fam.type != "histogram" else {name + s for s in ("_bucket", "_sum", "_count")}
        samples = []
        for s in fam.samples:
            check(s.name in allowed, f"{s.name} under family {name}")
            check(METRIC_NAME.match(s.name), f"bad metric name {s.name!r}")
            for k in s.labels:
                check(LABEL_NAME.match(k) and not k.startswith("__"), f"{s.name}: bad label name {k!r}")
            samples.append([s.name, s.labels, out_value(s.value)])
        if fam.type == "histogram":
            check_histogram(name, fam.samples)
        families[name] = {"type": fam.type, "help": fam.documentation, "samples": samples}
    check(set(families) == set(typed), f"declared but not parsed: {sorted(set(typed) - set(families))}")
    print(json.dumps({"families": families}))


def check_histogram(name, samples):
    series = {}
    for s in samples:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        h = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if s.name.endswith("_bucket"):
            check("le" in s.labels, f"{name}: a bucket without le")
            h["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_sum"):
            check(h["sum"] is None, f"{name}{key}: two _sum")
            h["sum"] = s.value
        else:
            check(h["count"] is None, f"{name}{key}: two _count")
            h["count"] = s.value
    for key, h in series.items():
        b = h["buckets"]
        check(b and math.isinf(b[-1][0]), f"{name}{key}: no +Inf bucket last")
        check(all(x[0] < y[0] for x, y in zip(b, b[1:])), f"{name}{key}: le not ascending")
        check(all(x[1] <= y[1] for x, y in zip(b, b[1:])), f"{name}{key}: buckets not cumulative")
        check(h["count"] is not None and h["sum"] is not None, f"{name}{key}: _count or _sum missing")
        check(b[-1][1] == h["count"], f"{name}{key}: +Inf {b[-1][1]} != _count {h['count']}")


if __name__ == "__main__":
    try:
        main()
    except Failed as e:
        print("PROM-CHECK-FAILED", e, flush=True)
        sys.exit(1)

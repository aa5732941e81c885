"""Trace files (JSON + ITF), explain, replay, kselftest, --max-counterexamples (issue 5)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, SPECS, cli, expectations

from klpmodel import interp, kselftest
from klpmodel.kernel import Model, Op
from klpmodel.simulate import SCRIPT_WORDS
from klpmodel.spec import load_spec
from klpmodel.verify import verify

BAD = sorted(SPECS.glob("*-bad.toml"))


def _write(tmp_path: Path, spec: Path, *extra: str) -> Path:
    out = tmp_path / "traces"
    p = cli("verify", str(spec.relative_to(ROOT) if spec.is_relative_to(ROOT) else spec), "--out", str(out), *extra)
    assert p.returncode == 1, p.stderr
    return out


# ------------------------------------------------------------------ the files

def test_out_writes_json_and_itf_per_violated_property(tmp_path):
    out = _write(tmp_path, SPECS / "no-use-after-free-bad.toml")
    props = {"revert-restores", "no-leak", "no-use-after-free", "no-double-free"}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{p}.trace.json" for p in props] + [f"{p}.itf.json" for p in props])
    doc = json.loads((out / "no-use-after-free.trace.json").read_text())
    assert set(doc) >= {"format", "version", "generator", "spec", "property", "seed", "violated_when", "depth",
                        "index", "engine", "broken_by", "initial", "steps", "statement"}
    assert doc["format"] == "klpmodel-trace" and doc["version"] == 2
    assert doc["spec"]["sha256"] == load_spec(SPECS / "no-use-after-free-bad.toml").digest
    assert [s["operation"] for s in doc["steps"]] == ["load lp_eager", "complete", "disable lp_eager", "reverse",
                                                      "complete"]
    assert doc["depth"] == 5 and doc["statement"]["line"] == 21
    for step in doc["steps"]:
        assert set(step) == {"operation", "choices", "summary", "state"}
        assert set(step["summary"]) == {"patches", "system", "modules", "data"}
    assert doc["steps"][2]["summary"]["system"] == {"feature": "original"}
    assert doc["steps"][2]["summary"]["data"] == {"lp_eager.feature": "block feature#1 (freed, holds original)"}


def _itf_value_ok(v) -> bool:
    """ITF (Apalache ADR-015): bool, string, list, record, or one of #bigint/#tup/#set/#map/#unserializable;
    a bare JSON number is only allowed for small integers, and klpmodel never writes one."""
    if isinstance(v, (bool, str)):
        return True
    if isinstance(v, list):
        return all(_itf_value_ok(x) for x in v)
    if isinstance(v, dict):
        if "#bigint" in v:
            return set(v) == {"#bigint"} and isinstance(v["#bigint"], str) and v["#bigint"].lstrip("-").isdigit()
        return not any(k.startswith("#") for k in v) and all(_itf_value_ok(x) for x in v.values())
    return False


def test_itf_follows_the_informal_trace_format(tmp_path):
    out = _write(tmp_path, SPECS / "no-double-free-bad.toml")
    itf = json.loads((out / "no-use-after-free.itf.json").read_text())
    assert set(itf) == {"#meta", "vars", "states"}
    meta = itf["#meta"]
    assert meta["format"] == "ITF" and meta["format-description"].endswith("015adr-trace.html")
    assert meta["source"].endswith("no-double-free-bad.toml")
    doc = json.loads((out / "no-use-after-free.trace.json").read_text())
    assert len(itf["states"]) == len(doc["steps"]) + 1               # the initial state, then one per step
    for n, st in enumerate(itf["states"]):
        assert st["#meta"] == {"index": n}
        assert set(st) - {"#meta"} == set(itf["vars"])
        assert all(_itf_value_ok(st[var]) for var in itf["vars"])
    assert [s["mbt::actionTaken"] for s in itf["states"]] == ["init"] + [s["operation"] for s in doc["steps"]]
    last = itf["states"][-1]
    assert last["model"] == {k: (v if isinstance(v, bool) else {"#bigint": str(v)})
                             for k, v in doc["steps"][-1]["state"].items()}


def test_itf_records_the_failed_statements(tmp_path):
    out = _write(tmp_path, SPECS / "error-cleanup-bad.toml")
    itf = json.loads((out / "error-cleanup.itf.json").read_text())
    picks = itf["states"][1]["mbt::nondetPicks"]["failing"]
    doc = json.loads((out / "error-cleanup.trace.json").read_text())
    (choice,) = doc["steps"][0]["choices"]
    assert choice["callback"] == "pre_patch"
    assert picks == [f"{choice['patch']}/{choice['object']} pre_patch[{choice['index']}] line {choice['line']}: "
                     f"'{choice['statement']}' fails"]


def test_out_json_report_names_the_files(tmp_path):
    p = cli("verify", "specs/no-leak-bad.toml", "--format", "json", "--out", str(tmp_path / "o"))
    (v,) = json.loads(p.stdout)["violations"]
    assert v["files"] == {"trace": str(tmp_path / "o" / "no-leak.trace.json"),
                          "itf": str(tmp_path / "o" / "no-leak.itf.json")}
    t = cli("verify", "specs/no-leak-bad.toml", "--out", str(tmp_path / "o"))        # rerun: replaces its own files
    assert t.returncode == 1 and f"trace file: {tmp_path / 'o' / 'no-leak.trace.json'}" in t.stdout


def test_out_never_overwrites_a_users_file(tmp_path):
    d = tmp_path / "o"
    d.mkdir()
    mine = d / "no-leak.trace.json"
    mine.write_text("my notes\n")
    p = cli("verify", "specs/no-leak-bad.toml", "--out", str(d))
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert "is not a klpmodel trace file" in p.stderr and "nothing was written" in p.stderr
    assert mine.read_text() == "my notes\n" and not (d / "no-leak.itf.json").exists()
    f = tmp_path / "file"
    f.write_text("x")
    p = cli("verify", "specs/no-leak-bad.toml", "--out", str(f))
    assert p.returncode == 2 and "is not a directory" in p.stderr and f.read_text() == "x"


# ------------------------------------------------------------------ explain

@pytest.mark.parametrize("spec", BAD, ids=lambda p: p.stem)
def test_explain_names_the_statement_and_the_seed_rule(tmp_path, spec):
    """Done-when of issue 5: on every violating spec, explain names the bug's statement and the
    seed rule it breaks."""
    out = _write(tmp_path, spec)
    expected = [e for e in expectations(spec) if e[0] == "violation"]
    assert expected
    for _, prop, depth in expected:
        p = cli("explain", str(out / f"{prop}.trace.json"))
        assert p.returncode == 0, p.stderr
        text = p.stdout
        assert f"violated: {prop} after step {depth}" in text
        tail = text[text.index("violated:"):]
        assert f"{spec.relative_to(ROOT)}:" in tail                     # a statement, as FILE:LINE
        assert "the seed rule it breaks:" in tail
        steps = [line for line in text.splitlines() if line.startswith("step ")]
        assert len(steps) == int(depth)
        assert "  kernel log:" in text and "  changed:" in text


def test_explain_walks_through_log_callbacks_prev_state_and_culprit(tmp_path):
    out = _write(tmp_path, SPECS / "version-order-bad.toml")
    text = cli("explain", str(out / "version-order.trace.json")).stdout
    assert "    livepatch: 'lp_v2': initializing unpatching transition" in text    # the kernel's log line
    assert "    lp_v2: pre_unpatch(vmlinux)" in text
    assert "[klp_get_prev_state(loglevel) = lp_v1]" in text
    assert "changed: lp_v2: enabled -> unpatching; loglevel: v2 -> v1" in text
    assert "where it shows: specs/version-order-bad.toml:32: 'restore loglevel' in lp_v2's pre_unpatch" in text
    uaf = cli("explain", str(_write(tmp_path / "u", SPECS / "no-use-after-free-bad.toml") / "no-use-after-free.trace.json"))
    assert ("caused by: specs/no-use-after-free-bad.toml:22: 'free feature' in lp_eager's pre_unpatch for vmlinux "
            "(step 3) freed the block") in uaf.stdout
    assert "the seed's expected usage of post_unpatch():\n    - Distinguish transition reverse" in uaf.stdout


def test_explain_refuses_an_edited_spec_and_points_to_replay(tmp_path):
    spec = tmp_path / "s.toml"
    shutil.copy(SPECS / "no-leak-bad.toml", spec)
    out = _write(tmp_path, spec)
    spec.write_text(spec.read_text() + "\n# edited\n")
    p = cli("explain", str(out / "no-leak.trace.json"))
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert "changed since this trace was written" in p.stderr and "klpmodel replay" in p.stderr


@pytest.mark.parametrize("content, message", [
    ("not json", "not JSON"),
    ('{"format": "other"}', "not a klpmodel trace file"),
    ('{"format": "klpmodel-trace", "version": 99}', "trace format version 99 is not supported"),
    ('{"format": "klpmodel-trace", "version": 1, "property": "no-leak"}', "malformed trace file"),
    ('{"#meta": {"format": "ITF"}, "vars": [], "states": []}', "this is the ITF form"),
    ('{"format": "klpmodel-trace", "version": 1, "property": "no-leak", "spec": {"path": "x", "sha256": ""}, '
     '"steps": [{"operation": "fly away", "choices": []}]}', "unknown operation 'fly away'"),
])
def test_bad_trace_files_are_one_line_errors(tmp_path, content, message):
    f = tmp_path / "t.trace.json"
    f.write_text(content)
    for cmd in ("explain", "replay", "kselftest"):
        p = cli(cmd, str(f))
        assert p.returncode == 2 and p.stderr.count("\n") == 1, (cmd, p.stderr)
        assert p.stderr.startswith(f"klpmodel: error: {f}") and message in p.stderr
        assert "Traceback" not in p.stderr


def test_missing_spec_says_use_spec(tmp_path):
    out = _write(tmp_path, SPECS / "no-leak-bad.toml")
    doc = json.loads((out / "no-leak.trace.json").read_text())
    doc["spec"].update(path="gone/away.toml", relative="../gone/away.toml", absolute=str(tmp_path / "gone.toml"))
    (out / "no-leak.trace.json").write_text(json.dumps(doc))
    p = cli("replay", str(out / "no-leak.trace.json"))
    assert p.returncode == 2 and "give it with --spec FILE" in p.stderr


# ------------------------------------------------------------------ replay: the three outcomes

def test_replay_still_violated_fixed_and_no_longer_possible(tmp_path):
    spec = tmp_path / "s.toml"
    shutil.copy(SPECS / "disable-restores-bad.toml", spec)
    out = _write(tmp_path, spec)
    trace = str(out / "disable-restores.trace.json")
    p = cli("replay", trace)
    assert p.returncode == 1 and "result: still violated: disable-restores breaks at step 4" in p.stdout
    assert "(unchanged since the trace was written)" in p.stdout

    fixed = tmp_path / "fixed.toml"                      # the fix: restore in pre_unpatch
    fixed.write_text(spec.read_text().replace('post_unpatch = ["free feature"]',
                                              'pre_unpatch  = ["restore feature"]\npost_unpatch = ["free feature"]'))
    p = cli("replay", trace, "--spec", str(fixed))
    assert p.returncode == 0, p.stdout
    assert "result: fixed for this trace: all 4 operations still run and disable-restores holds" in p.stdout
    assert "(edited since the trace was written)" in p.stdout
    assert cli("verify", str(fixed)).returncode == 0           # and the fix is real

    gone = tmp_path / "gone.toml"                        # the patch was renamed: the trace cannot run
    gone.write_text(spec.read_text().replace('"lp_forgetful"', '"lp_other"'))
    p = cli("replay", trace, "--spec", str(gone), "--format", "json")
    assert p.returncode == 3
    r = json.loads(p.stdout)
    assert r["outcome"] == "not-possible" and r["step"] == 1 and "no patch 'lp_forgetful'" in r["reason"]


def test_replay_not_possible_when_the_failing_statement_is_gone(tmp_path):
    spec = tmp_path / "s.toml"
    shutil.copy(SPECS / "error-cleanup-bad.toml", spec)
    out = _write(tmp_path, spec)
    text = spec.read_text()
    assert "maybe-fail" in text or "alloc" in text
    doc = json.loads((out / "error-cleanup.trace.json").read_text())
    (choice,) = doc["steps"][0]["choices"]
    lines = text.splitlines()
    lines[choice["line"] - 1] = lines[choice["line"] - 1].replace(choice["statement"], "return")
    spec.write_text("\n".join(lines) + "\n")
    p = cli("replay", str(out / "error-cleanup.trace.json"))       # edited in place: only with --spec
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "changed since this trace was written" in p.stderr
    assert f"--spec {spec}" in p.stderr and "return" not in p.stderr
    p = cli("replay", str(out / "error-cleanup.trace.json"), "--spec", str(spec))
    assert p.returncode == 3, p.stdout
    assert f"the statement that failed there, '{choice['statement']}'" in p.stdout


def test_replay_finds_an_earlier_break(tmp_path):
    """A trace replayed against a spec where the property breaks sooner says so."""
    spec = tmp_path / "s.toml"
    shutil.copy(SPECS / "version-order-bad.toml", spec)
    out = _write(tmp_path, spec)
    r = json.loads(cli("replay", str(out / "version-order.trace.json"), "--format", "json").stdout)
    assert r["outcome"] == "violated" and r["step"] == 5


# ------------------------------------------------------------------ kselftest

def test_kselftest_script_structure_and_bash_n(tmp_path):
    out = _write(tmp_path, SPECS / "no-use-after-free-bad.toml")
    script = tmp_path / "test-klpmodel.sh"
    p = cli("kselftest", str(out / "no-use-after-free.trace.json"), "-o", str(script))
    assert p.returncode == 0, p.stderr
    text = script.read_text()
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash" and lines[1] == "# SPDX-License-Identifier: GPL-2.0"
    assert ". $(dirname $0)/functions.sh" in lines and "setup_config" in lines
    assert "MOD_LIVEPATCH=lp_eager" in lines
    assert lines.index("setup_config") < next(n for n, x in enumerate(lines) if x.startswith("start_test "))
    body = lines[next(n for n, x in enumerate(lines) if x.startswith("start_test ")) + 1:]
    cmds = [x for x in body if x and not x.startswith("check_result") and x.split()[0] in
            ("load_lp", "load_lp_nowait", "load_failing_mod", "disable_lp", "unload_lp", "echo", "loop_until")]
    assert cmds[0] == "load_lp $MOD_LIVEPATCH"                       # load + complete = load_lp
    assert "echo 0 > /sys/kernel/livepatch/$MOD_LIVEPATCH/enabled" in cmds   # a disable left open
    assert lines[-1] == "exit 0" and any(x.startswith('check_result "') for x in lines)
    assert "the unpatching transition of lp_eager must stay open" in text
    r = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    p = cli("kselftest", str(out / "no-use-after-free.trace.json"))            # without -o: printed
    assert p.stdout == text


def test_kselftest_failing_load_uses_load_failing_mod_and_the_fail_parameter(tmp_path):
    out = _write(tmp_path, SPECS / "error-cleanup-bad.toml")
    text = cli("kselftest", str(out / "error-cleanup.trace.json")).stdout
    (choice,) = json.loads((out / "error-cleanup.trace.json").read_text())["steps"][0]["choices"]
    assert f"load_failing_mod $MOD_LIVEPATCH klp_fail=vmlinux:pre_patch:{choice['index']}" in text
    assert (f"lp_feature must fail at '{choice['statement']}' (vmlinux pre_patch[{choice['index']}], "
            f"spec line {choice['line']})") in text
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0


def test_kselftest_refuses_to_write_over_an_input(tmp_path):
    out = _write(tmp_path, SPECS / "no-leak-bad.toml")
    trace = out / "no-leak.trace.json"
    before = trace.read_text()
    p = cli("kselftest", str(trace), "-o", str(trace))
    assert p.returncode == 2 and "is an input of this command" in p.stderr and trace.read_text() == before


def _scenarios():
    for f in sorted((SPECS / "selftests").glob("*/*.toml")):
        import tomllib
        doc = tomllib.loads(f.read_text())
        if any(w in doc["run"] for w in ("fail=", "param", "probe", "=")) or doc.get("era") == "modprobe" \
                or "not compatible" in doc["expected"] \
                or any(line.split()[0] in SCRIPT_WORDS for line in doc["run"].splitlines() if line.strip()):
            continue                    # needs parameters or injected failures, a refused load, or script words
        yield pytest.param(f, doc, id=f"{f.parent.name}/{f.stem}")


@pytest.mark.parametrize("path, doc", list(_scenarios()))
def test_kselftest_expected_log_is_the_selftests_check_result(path, doc):
    """For the kernel's own selftest scenarios, the script's expected block is the script's
    check_result block (filtered as check_result filters dmesg)."""
    m = Model(load_spec((path.parent / doc["spec"]).resolve()))
    ops = [Op(*(line.split() + [None])[:2]) for line in doc["run"].split("\n") if line.strip()]
    state, steps = interp.initial(m), []
    from klpmodel.verify import Step
    for op in ops:
        assert interp.refusal(m, state, op) is None
        o = interp.apply(m, state, op, {})
        steps.append(Step(op, (), tuple(o.events), state, o.state, tuple(o.violations)))
        state = o.state
    names = kselftest._variables(m)
    lines, expected, _ = kselftest.commands(m, tuple(steps), names)
    want = [x for x in doc["expected"].strip("\n").split("\n") if kselftest.kept_by_check_result(x)]
    assert expected == want
    assert all(not x.startswith("loop_until") for x in lines)      # every transition completes by itself


# ------------------------------------------------------------------ several counterexamples

def _all_shortest(m: Model, prop: str, depth: int) -> set[tuple[str, ...]]:
    """Brute force: every operation sequence of `depth` steps (any choices) that breaks prop at its last step."""
    found = set()

    def walk(state, seq):
        for op in interp.possible(m, state):
            for o in interp.outcomes(m, state, op, record=False):
                if len(seq) + 1 == depth:
                    if any(p == prop for p, _ in o.violations):
                        found.add(tuple(seq + [str(op)]))
                else:
                    walk(o.state, seq + [str(op)])
    walk(interp.initial(m), [])
    return found


@pytest.mark.parametrize("name, prop", [("no-double-free-bad", "no-use-after-free"),
                                        ("no-use-after-free-bad", "no-leak"),
                                        ("revert-restores-bad", "revert-restores")])
def test_max_counterexamples_returns_every_distinct_shortest_trace(name, prop):
    spec = load_spec(SPECS / f"{name}.toml")
    m = Model(spec)
    first = verify(spec, properties=[prop])
    (v,) = first.violations
    want = _all_shortest(m, prop, v.depth)
    r = verify(spec, properties=[prop], max_counterexamples=len(want) + 3)
    got = [tuple(str(s.op) for s in t.trace) for t in r.traces(prop)]
    assert len(got) == len(set(got)) and set(got) == want         # all of them, none twice
    assert all(len(t.trace) == v.depth for t in r.traces(prop))
    assert [t.index for t in r.traces(prop)] == list(range(1, len(want) + 1))


def test_max_counterexamples_cli_text_json_and_files(tmp_path):
    p = cli("verify", "specs/no-double-free-bad.toml", "-p", "no-use-after-free", "-n", "5", "--format", "json",
            "--out", str(tmp_path))
    (v,) = json.loads(p.stdout)["violations"]
    assert len(v["more"]) == 1 and v["more"][0]["depth"] == v["depth"]
    assert [s["operation"] for s in v["trace"]] != [s["operation"] for s in v["more"][0]["trace"]]
    assert (tmp_path / "no-use-after-free-2.trace.json").exists() and (tmp_path / "no-use-after-free-2.itf.json").exists()
    t = cli("verify", "specs/no-double-free-bad.toml", "-p", "no-use-after-free", "-n", "5")
    assert "VIOLATED no-use-after-free: shortest trace 1 of 2, 4 operations" in t.stdout
    assert "VIOLATED no-use-after-free: shortest trace 2 of 2, 4 operations" in t.stdout
    bad = cli("verify", "specs/no-leak-bad.toml", "-n", "0")
    assert bad.returncode == 2 and "--max-counterexamples must be at least 1" in bad.stderr


def test_recoverable_trace_explain_and_replay(tmp_path):
    spec = tmp_path / "s.toml"
    shutil.copy(SPECS / "disable-restores-bad.toml", spec)
    out = _write(tmp_path, spec, "-p", "recoverable")
    trace = str(out / "recoverable.trace.json")
    e = cli("explain", trace)
    assert e.returncode == 0 and "violated: recoverable after step 2" in e.stdout
    assert "there is no way back to an unpatched kernel: feature never becomes original again" in e.stdout
    p = cli("replay", trace)
    assert p.returncode == 1 and "no way back to an unpatched kernel" in p.stdout
    fixed = tmp_path / "fixed.toml"
    fixed.write_text(spec.read_text().replace('post_unpatch = ["free feature"]',
                                              'pre_unpatch  = ["restore feature"]\npost_unpatch = ["free feature"]'))
    p = cli("replay", trace, "--spec", str(fixed), "--format", "json")
    r = json.loads(p.stdout)
    assert p.returncode == 0 and r["outcome"] == "fixed" and r["way_back"] == ["disable lp_forgetful", "complete"]


def test_a_trace_records_its_kernel_profile_and_runs_only_under_it(tmp_path):
    """verify --kernel 5.5 records the profile in the trace; explain and replay use it, and
    refuse another one (--kernel, or a spec whose kernel key changed)."""
    spec = tmp_path / "s.toml"
    spec.write_text((SPECS / "no-leak-bad.toml").read_text())
    out = tmp_path / "o"
    assert cli("verify", str(spec), "--kernel", "5.5", "--out", str(out), "-q").returncode == 1
    doc = json.loads((out / "no-leak.trace.json").read_text())
    assert (doc["spec"]["kernel"], doc["spec"]["kernel_in_spec"]) == ("5.5", "mainline")
    trace = str(out / "no-leak.trace.json")
    assert "kernel 5.5" in cli("explain", trace).stdout
    assert cli("replay", trace, "-q").returncode == 1
    other = cli("replay", trace, "--kernel", "mainline")
    assert other.returncode == 2
    assert "this trace was found under kernel profile '5.5', not 'mainline'" in other.stderr
    spec.write_text('kernel = "5.5"\n' + spec.read_text())
    edited = cli("replay", trace, "--spec", str(spec))          # an edited spec runs only when given
    assert edited.returncode == 2 and "the spec now says kernel = '5.5'" in edited.stderr

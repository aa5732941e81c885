"""The command line contract: exit codes 0/1/2/3, the JSON keys, the options."""
from __future__ import annotations

import json

from conftest import cli


def test_holds_exit_0_and_text_report():
    p = cli("verify", "specs/selftest-state.toml", "--depth", "5")       # (exhausted after 6, folded)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[1].startswith("verdict: holds: no sequence of up to 5 operations breaks version-order")
    assert "complete:" not in p.stdout


def test_violation_exit_1_with_numbered_trace_and_statement_line():
    p = cli("verify", "specs/version-order-bad.toml", "--property", "version-order")
    assert p.returncode == 1
    out = p.stdout
    assert "VIOLATED version-order: shortest trace has 5 operations" in out
    assert "seed: System state modifications with the same or higher version are allowed" in out
    for n, op in enumerate(["load lp_v1", "complete", "load lp_v2", "complete", "disable lp_v2"], 1):
        assert f"  {n}. {op}\n" in out
    assert "[klp_get_prev_state(loglevel) = lp_v1]" in out              # what prev returned
    assert "changed: lp_v2: enabled -> unpatching; loglevel: v2 -> v1" in out   # only what changed
    assert "=> version-order broken: specs/version-order-bad.toml:32: 'restore loglevel' in lp_v2's pre_unpatch" in out


def test_json_contract_keys():
    p = cli("verify", "specs/no-leak-bad.toml", "--format", "json")
    assert p.returncode == 1
    r = json.loads(p.stdout)
    assert r["format"] == 1 and r["verdict"] == "violation" and r["depth"] == 8
    (v,) = r["violations"]
    assert v["property"] == "no-leak" and v["depth"] == 4
    assert [s["operation"] for s in v["trace"]] == ["load lp_v1", "complete", "load lp_v2", "complete"]
    step = v["trace"][-1]
    assert set(step) >= {"operation", "choices", "callbacks", "events", "changes", "state"}
    assert step["callbacks"][0]["callback"] == "post_patch"
    assert set(r) >= {"format", "verdict", "depth", "violations", "holds", "properties", "spec", "engine",
                      "refused_loads"}
    assert r["refused_loads"] == ["lp_v1 declares loglevel version 1 < 2 of installed lp_v2"]


def test_json_holds():
    p = cli("verify", "specs/disable-restores-good.toml", "--format", "json", "--depth", "5")
    assert p.returncode == 0
    r = json.loads(p.stdout)
    assert (r["verdict"], r["depth"], r["violations"]) == ("holds", 5, [])


def test_property_selection_is_repeatable():
    p = cli("verify", "specs/no-use-after-free-bad.toml", "-p", "no-leak", "-p", "revert-restores", "--format", "json")
    r = json.loads(p.stdout)
    assert r["properties"] == ["revert-restores", "no-leak"]
    assert sorted(v["property"] for v in r["violations"]) == ["no-leak", "revert-restores"]


def test_choices_taken_are_reported():
    r = json.loads(cli("verify", "specs/error-cleanup-bad.toml", "-p", "error-cleanup", "--format", "json").stdout)
    (step,) = r["violations"][0]["trace"]
    assert step["choices"] == [{"patch": "lp_feature", "object": "vmlinux", "callback": "pre_patch", "index": 1, "line": 15,
                                "statement": "maybe-fail -ENODEV", "fails": True}]


def test_timeout_exits_3_with_what_was_found():
    # --timeout counts from the start of klpmodel, loading the spec included: leave loading
    # time even on a loaded machine; depth 30 with Z3 takes far longer than that
    p = cli("verify", "specs/selftest-state.toml", "--engine", "z3", "--depth", "30", "--timeout", "2", "--format", "json")
    assert p.returncode == 3, p.stdout + p.stderr
    r = json.loads(p.stdout)
    assert r["verdict"] == "unknown" and r["unknown"]["reason"] == "timeout"


def test_usage_errors_exit_2():
    for args, msg in [(["-p", "no-such"], "unknown property 'no-such'; known properties: version-order"),
                      (["--depth", "0"], "--depth must be at least 1, not 0"),
                      (["--timeout", "-1"], "--timeout must be a positive number of seconds")]:
        p = cli("verify", "specs/selftest-state.toml", *args)
        assert p.returncode == 2 and msg in p.stderr and "Traceback" not in p.stderr
    for args, line in [(["verify", "specs/selftest-state.toml", "--format", "xml"],
                        "klpmodel: error: Invalid value for '--format' / '-f': 'xml' is not one of "
                        "'text', 'json', 'sarif'; see 'klpmodel verify --help'"),
                       (["verify"], "klpmodel: error: Missing argument 'SPEC'; see 'klpmodel verify --help'"),
                       (["frobnicate"], "klpmodel: error: No such command 'frobnicate'; see 'klpmodel --help'")]:
        p = cli(*args)
        assert p.returncode == 2
        assert p.stderr.splitlines() == [line]


def test_output_is_deterministic():
    for engine in ("z3", "explicit"):
        a = cli("verify", "specs/no-use-after-free-bad.toml", "--format", "json", "--engine", engine)
        b = cli("verify", "specs/no-use-after-free-bad.toml", "--format", "json", "--engine", engine)
        assert a.stdout == b.stdout and a.returncode == b.returncode == 1


def test_version():
    p = cli("--version")
    assert p.returncode == 0 and p.stdout.startswith("klpmodel ")


def test_verdict_comes_first_and_completeness_is_reported(write_spec):
    p = cli("verify", str(write_spec('[[patch]]\nname = "p"\n')), "--format", "json")
    r = json.loads(p.stdout)
    assert (r["verdict"], r["complete"]) == ("holds", True)
    text = cli("verify", "specs/no-leak-bad.toml").stdout.splitlines()
    assert text[1] == "verdict: violation: 1 of 8 properties broken, shortest traces: no-leak (4 operations)"


def test_profiles_and_the_kernel_option():
    p = cli("profiles")
    assert p.returncode == 0
    assert [line.split()[0] for line in p.stdout.splitlines()] == ["mainline", "5.5", "state-callbacks", "replace-set"]
    r = json.loads(cli("verify", "specs/selftest-state.toml", "--kernel", "5.5", "--format", "json").stdout)
    assert r["spec"]["kernel"] == "5.5" and r["verdict"] == "holds"
    assert "kernel 5.5," in cli("verify", "specs/selftest-state.toml", "--kernel", "5.5").stdout
    bad = cli("verify", "specs/selftest-state.toml", "--kernel", "5.4")
    assert bad.returncode == 2 and bad.stderr.startswith("klpmodel: error: unknown kernel profile '5.4' for --kernel")
    # a key the profile cannot express: refused with the file's line, not translated
    bad = cli("verify", "specs/selftest-state.toml", "--kernel", "replace-set")
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.startswith(
        "klpmodel: error: specs/selftest-state.toml:17: patch 'test_klp_state': kernel profile 'replace-set' has no replace")
    assert cli("check", "specs/selftests-replace-set/test-state.toml").returncode == 0
    bad = cli("verify", "specs/selftests-replace-set/test-state.toml", "--kernel", "mainline")
    assert bad.returncode == 2 and "test-state.toml:17: patch 'test_klp_state': replace_set is a key of" in bad.stderr
    bad = cli("verify", "specs/selftest-state.toml", "--kernel", "state-callbacks")   # 19/19: no per-object callbacks
    assert bad.returncode == 2 and "kernel profile 'state-callbacks' (v1 of the per-state callbacks series) has no " \
        "per-object callbacks" in bad.stderr

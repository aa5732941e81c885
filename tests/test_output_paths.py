"""Issue 11, item 3: output files are never written through a link, never over an input, a
trace's spec is read only when its sha256 matches, and --out is checked before the search."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat

import pytest
from conftest import SPECS, cli

SPEC = SPECS / "no-leak-bad.toml"


def _traces(tmp_path):
    out = tmp_path / "traces"
    assert cli("verify", str(SPEC), "--out", str(out)).returncode == 1
    return out


def test_out_refuses_a_symlink_planted_in_the_directory_and_keeps_the_verdict(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "no-leak.trace.json").symlink_to(victim)
    p = cli("verify", str(SPEC), "--out", str(out), "-q")
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert "is a symbolic link; klpmodel does not write through links" in p.stderr
    assert p.stdout.startswith("verdict: violation")                  # the verdict is printed all the same
    assert victim.read_text() == "precious\n"
    assert sorted(x.name for x in out.iterdir()) == ["no-leak.trace.json"]      # and nothing else was written


def test_out_refuses_a_link_to_a_klpmodel_trace_too(tmp_path):
    """Even a link to a file klpmodel wrote (which it would replace) is not written through."""
    elsewhere = _traces(tmp_path)
    before = (elsewhere / "no-leak.trace.json").read_text()
    out = tmp_path / "out"
    out.mkdir()
    (out / "no-leak.itf.json").symlink_to(elsewhere / "no-leak.trace.json")
    p = cli("verify", str(SPEC), "--out", str(out))
    assert p.returncode == 2 and "is a symbolic link" in p.stderr
    assert (elsewhere / "no-leak.trace.json").read_text() == before


def test_out_refuses_a_fifo_without_blocking(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "no-leak.trace.json")
    p = cli("verify", str(SPEC), "--out", str(out), timeout=120)
    assert p.returncode == 2 and "is a FIFO" in p.stderr


def test_out_is_checked_before_the_search(tmp_path):
    plain = tmp_path / "file"
    plain.write_text("x")
    for out in (plain, plain / "sub"):
        p = cli("verify", str(SPEC), "--out", str(out))
        assert p.returncode == 2 and p.stdout == "" and p.stderr.count("\n") == 1, p.stderr
        assert str(out) in p.stderr and "directory" in p.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_out_in_a_read_only_directory_is_refused_before_the_search(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        p = cli("verify", str(SPEC), "--out", str(ro / "traces"))
        assert p.returncode == 2 and p.stdout == "" and "cannot write: Permission denied" in p.stderr
    finally:
        ro.chmod(0o700)


def test_rewritten_trace_files_replace_the_name_not_the_file(tmp_path):
    """A trace file hard-linked elsewhere keeps its content when verify writes it again: files
    are written under a temporary name and renamed into place."""
    out = _traces(tmp_path)
    link = tmp_path / "hard"
    os.link(out / "no-leak.trace.json", link)
    doc = json.loads(link.read_text())
    doc["generator"] = "kept"
    link.write_text(json.dumps(doc))
    assert cli("verify", str(SPEC), "--out", str(out)).returncode == 1
    assert json.loads(link.read_text())["generator"] == "kept"
    assert json.loads((out / "no-leak.trace.json").read_text())["generator"] != "kept"
    mode = stat.S_IMODE(os.stat(out / "no-leak.trace.json").st_mode)
    assert mode == 0o666 & ~_umask()


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


@pytest.mark.parametrize("command", ["review", "kselftest"])
def test_dash_o_refuses_a_hard_link_to_an_input(tmp_path, command):
    spec = tmp_path / "s.toml"
    shutil.copy(SPEC, spec)
    before = spec.read_bytes()
    link = tmp_path / "report.md"
    os.link(spec, link)
    if command == "review":
        p = cli("review", str(spec), "-o", str(link), "--depth", "3")
    else:
        out = tmp_path / "traces"
        assert cli("verify", str(spec), "--out", str(out)).returncode == 1
        p = cli("kselftest", str(out / "no-leak.trace.json"), "-o", str(link))
    assert p.returncode == 2 and "is an input of this command" in p.stderr and p.stderr.count("\n") == 1
    assert spec.read_bytes() == before


@pytest.mark.parametrize("command", ["review", "kselftest"])
def test_dash_o_refuses_a_symlink(tmp_path, command):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "out.txt"
    link.symlink_to(victim)
    if command == "review":
        p = cli("review", str(SPEC), "-o", str(link), "--depth", "3")
    else:
        p = cli("kselftest", str(_traces(tmp_path) / "no-leak.trace.json"), "-o", str(link))
    assert p.returncode == 2 and "is a symbolic link" in p.stderr
    assert victim.read_text() == "precious\n"


def test_kselftest_dash_o_writes_a_new_file(tmp_path):
    target = tmp_path / "test-klpmodel.sh"
    p = cli("kselftest", str(_traces(tmp_path) / "no-leak.trace.json"), "-o", str(target))
    assert p.returncode == 0 and target.read_text().startswith("#!/bin/bash")
    assert not [x for x in tmp_path.iterdir() if x.name.startswith(".test-klpmodel.sh.")]   # no temporary left


@pytest.mark.parametrize("command", ["replay", "explain", "kselftest"])
def test_a_trace_naming_another_file_as_its_spec_never_shows_it(tmp_path, command):
    """A trace may name any file as its spec: it is read only when its sha256 is the one the
    trace records, so its content is never parsed, let alone echoed in a message."""
    secret = tmp_path / "secret.toml"
    secret.write_text("password = 'hunter2'\n[[patch\n")
    out = _traces(tmp_path)
    trace = out / "no-leak.trace.json"
    doc = json.loads(trace.read_text())
    doc["spec"].update(path=str(secret), absolute=str(secret), relative=os.path.relpath(secret, trace.parent))
    trace.write_text(json.dumps(doc))
    p = cli(command, str(trace))
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert "changed since this trace was written" in p.stderr and "--spec" in p.stderr
    assert "hunter2" not in p.stdout + p.stderr and "patch" not in p.stderr.split("written", 1)[1]
    doc["spec"]["sha256"] = hashlib.sha256(secret.read_bytes()).hexdigest()    # the right digest: then it is parsed
    trace.write_text(json.dumps(doc))
    p = cli(command, str(trace))
    assert p.returncode == 2 and "TOML syntax error" in p.stderr


def test_a_trace_naming_a_fifo_as_its_spec_does_not_block(tmp_path):
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    out = _traces(tmp_path)
    trace = out / "no-leak.trace.json"
    doc = json.loads(trace.read_text())
    doc["spec"].update(path=str(fifo), absolute=str(fifo), relative=os.path.relpath(fifo, trace.parent))
    trace.write_text(json.dumps(doc))
    p = cli("replay", str(trace), timeout=120)
    assert p.returncode == 2 and "not found" in p.stderr


def test_replay_of_an_edited_spec_needs_spec(tmp_path):
    spec = tmp_path / "s.toml"
    shutil.copy(SPEC, spec)
    out = tmp_path / "traces"
    assert cli("verify", str(spec), "--out", str(out)).returncode == 1
    spec.write_text(spec.read_text() + "\n# edited\n")
    p = cli("replay", str(out / "no-leak.trace.json"))
    assert p.returncode == 2 and f"klpmodel replay {out / 'no-leak.trace.json'} --spec {spec}" in p.stderr
    p = cli("replay", str(out / "no-leak.trace.json"), "--spec", str(spec))
    assert p.returncode == 1 and "(edited since the trace was written)" in p.stdout

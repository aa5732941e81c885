"""`klpmodel simulate` and `klpmodel conformance`: the kernel log of one run, from the same
kernel.step that verify encodes; the selftest scenarios line for line."""
from __future__ import annotations

import tomllib

from conftest import ROOT, cli

SELFTESTS = ROOT / "specs" / "selftests"


def _scenario(name: str) -> dict:
    return tomllib.loads((SELFTESTS / "test-state" / f"{name}.toml").read_text())


def test_simulate_prints_the_selftest_log():
    sc = _scenario("system-state-modification")
    run = "; ".join(line for line in sc["run"].splitlines() if line.strip())
    p = cli("simulate", "specs/selftests/test-state.toml", "--run", run)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip("\n").splitlines() == sc["expected"].strip("\n").splitlines()


def test_refused_load_prints_kernel_and_insmod_lines_and_changes_nothing():
    p = cli("simulate", "specs/selftests/test-state.toml", "--state", "--run",
            "load test_klp_state2; complete; load test_klp_state")
    lines = p.stdout.splitlines()
    i = lines.index("% insmod test_modules/test_klp_state.ko")
    assert lines[i + 1:i + 3] == [
        "livepatch: Livepatch patch (test_klp_state) is not compatible with the already installed livepatches.",
        "insmod: ERROR: could not insert module test_modules/test_klp_state.ko: Invalid parameters"]
    assert lines[i + 3].startswith("#   test_klp_state ") and "unloaded" in lines[i + 3]


def test_busy_load_and_failed_pre_patch(write_spec):
    spec = write_spec("""
[[patch]]
name = "a"
[[patch]]
name = "b"
[patch.objects.vmlinux]
pre_patch = ["banner", "maybe-fail -ENODEV"]
""")
    p = cli("simulate", str(spec), "--run", "load a; load b; complete; load b fail=vmlinux")
    assert p.stdout.splitlines() == [
        "% insmod test_modules/a.ko",
        "livepatch: enabling patch 'a'",
        "livepatch: 'a': initializing patching transition",
        "livepatch: 'a': starting patching transition",
        "% insmod test_modules/b.ko",
        "insmod: ERROR: could not insert module test_modules/b.ko: Device or resource busy",
        "livepatch: 'a': completing patching transition",
        "livepatch: 'a': patching complete",
        "% insmod test_modules/b.ko",
        "livepatch: enabling patch 'b'",
        "livepatch: 'b': initializing patching transition",
        "b: pre_patch_callback: vmlinux",
        "livepatch: pre-patch callback failed for object 'vmlinux'",
        "livepatch: failed to enable patch 'b'",
        "livepatch: 'b': canceling patching transition, going to unpatch",
        "livepatch: 'b': completing unpatching transition",
        "livepatch: 'b': unpatching complete",
        "insmod: ERROR: could not insert module test_modules/b.ko: No such device",
    ]


def test_module_coming_and_going_lines(write_spec):
    spec = write_spec("""
[modules.m]
init = ['log "m_init"']
exit = ['log "m_exit"']
[[patch]]
name = "p"
[patch.objects.m]
pre_patch = ["banner"]
post_patch = ["banner"]
pre_unpatch = ["banner"]
post_unpatch = ["banner"]
""")
    p = cli("simulate", str(spec), "--run", "load p; complete; modload m; modunload m")
    assert p.stdout.splitlines()[6:] == [
        "% insmod test_modules/m.ko",
        "livepatch: applying patch 'p' to loading module 'm'",
        "p: pre_patch_callback: m -> [MODULE_STATE_COMING] Full formed, running module_init",
        "p: post_patch_callback: m -> [MODULE_STATE_COMING] Full formed, running module_init",
        "m: m_init",
        "% rmmod m",
        "m: m_exit",
        "p: pre_unpatch_callback: m -> [MODULE_STATE_GOING] Going away",
        "livepatch: reverting patch 'p' on unloading module 'm'",
        "p: post_unpatch_callback: m -> [MODULE_STATE_GOING] Going away",
    ]


def test_run_file_errors_name_the_line(tmp_path):
    f = tmp_path / "run.txt"
    f.write_text("load test_klp_state   # comment\ncomplete\nunload test_klp_state\n")
    p = cli("simulate", "specs/selftests/test-state.toml", "--run-file", str(f))
    assert p.returncode == 2
    assert p.stderr.strip() == (f"klpmodel: error: {f}:3: unknown operation 'unload' in 'unload test_klp_state'; "
                                "known operations: load, complete, reverse, disable, rmmod, modload, modunload, force, param, probe")
    p = cli("simulate", "specs/selftests/test-state.toml", "--run", "load nope")
    assert p.returncode == 2
    assert "unknown patch 'nope'" in p.stderr
    p = cli("simulate", "specs/selftests/test-state.toml")
    assert p.returncode == 2 and "exactly one of --run" in p.stderr


def test_conformance_passes_and_reports_a_broken_scenario(tmp_path):
    p = cli("conformance")
    assert p.returncode == 0, p.stdout
    assert p.stdout.splitlines()[-1] == f"{len(list(SELFTESTS.glob('*/*.toml')))} passed, 0 failed"
    # a scenario whose expected log is wrong fails with a unified diff
    (tmp_path / "mods.toml").write_text((SELFTESTS / "test-state.toml").read_text())
    (tmp_path / "s").mkdir()
    sc = (SELFTESTS / "test-state" / "system-state-modification.toml").read_text()
    (tmp_path / "s" / "broken.toml").write_text(sc.replace('spec = "../test-state.toml"', 'spec = "../mods.toml"')
                                                .replace("fixing console_loglevel", "fixing the loglevel"))
    p = cli("conformance", str(tmp_path))
    assert p.returncode == 1
    out = p.stdout.splitlines()
    assert out[0] == "FAIL s/system state modification"
    assert "    -test_klp_state: fix_console_loglevel: fixing the loglevel" in out
    assert "    +test_klp_state: fix_console_loglevel: fixing console_loglevel" in out
    assert out[-1] == "0 passed, 1 failed"


def test_modprobe_era_wording_is_the_mechanical_twin_of_insmod():
    """selftests.md §0.2: the eras differ only in the script's load and loader-error lines."""
    import re

    from klpmodel.kernel import Model
    from klpmodel.simulate import parse_run, simulate
    from klpmodel.spec import load_spec

    for path in sorted((SELFTESTS / "test-callbacks").glob("*.toml")):
        sc = tomllib.loads(path.read_text())
        model = Model(load_spec(SELFTESTS / "test-callbacks.toml"))
        old, _ = simulate(model, parse_run(sc["run"], model, str(path)), era="modprobe")
        text = "\n".join(old)
        assert "insmod" not in text
        text = re.sub(r"^% modprobe (\S+)(.*)$", r"% insmod test_modules/\1.ko\2", text, flags=re.M)
        text = re.sub(r"^modprobe: ERROR: could not insert '(\S+)': (.*)$",
                      r"insmod: ERROR: could not insert module test_modules/\1.ko: \2", text, flags=re.M)
        assert text.splitlines() == sc["expected"].strip("\n").splitlines(), path.name


def test_run_parameter_mistakes_are_one_line():
    spec = "specs/selftests/test-callbacks.toml"
    for run, msg in [
        ("param test_klp_callbacks_demo nope=1", "test_klp_callbacks_demo has no parameter 'nope'"),
        ("param test_klp_callbacks_demo", "write 'param MODULE NAME=VALUE'"),
        ("load test_klp_callbacks_demo bogus=3", "'bogus=3' in 'load test_klp_callbacks_demo bogus=3'"),
        ("modload test_klp_callbacks_busy block_transition=maybe", "'maybe' is not a value"),
        ("probe", "write 'probe FUNCTION'"),
        ("complete extra=1", "'complete' takes no module parameters ('extra=1')"),
    ]:
        p = cli("simulate", spec, "--run", run)
        assert p.returncode == 2 and len(p.stderr.splitlines()) == 1 and msg in p.stderr, (run, p.stderr)


def test_parameters_and_the_busy_module():
    p = cli("simulate", "specs/selftests/test-callbacks.toml", "--run",
            "modload test_klp_callbacks_busy block_transition=Y; load test_klp_callbacks_demo; complete; "
            "param test_klp_callbacks_busy block_transition=N; complete")
    lines = p.stdout.splitlines()
    i = lines.index("livepatch: 'test_klp_callbacks_demo': starting patching transition")
    # the first complete is refused (a kworker sleeps in busymod_work_func): nothing happens
    assert lines[i + 1] == "% echo 0 > /sys/module/test_klp_callbacks_busy/parameters/block_transition"
    assert lines[i + 2] == "livepatch: 'test_klp_callbacks_demo': completing patching transition"

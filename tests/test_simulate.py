"""`klpmodel simulate` and `klpmodel conformance`: the kernel log of one run, from the same
kernel.step that verify encodes; the selftest scenarios line for line."""
from __future__ import annotations

import tomllib

import pytest
from conftest import ROOT, cli

from klpmodel.errors import UserError

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
                                "known operations: load, complete, reverse, disable, rmmod, modload, modunload, force, call, param, "
                                "probe, runs, ok, pending, sysfs, sysfs-rights, sysfs-gone, sysctl, read-param")
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


# ------------------------------------------------------------------ the newer selftests' script words

def _run(text: str, spec: str = "test-livepatch.toml", era: str = "insmod"):
    from klpmodel.kernel import Model
    from klpmodel.simulate import parse_run, run
    from klpmodel.spec import load_spec

    m = Model(load_spec(SELFTESTS / spec))
    return run(m, parse_run(text, m, "--run"), era=era)


def test_sysfs_values_come_from_the_model_state():
    """semantics §5, §6.5: enabled is the requested direction, transition the transition
    patch, replace the value read at init, stack_order the 1-based list position,
    OBJ/patched 1 while the object is loaded; a check that holds writes nothing."""
    out = _run("""
        load test_klp_livepatch                           # load_lp_nowait: in transition
        sysfs test_klp_livepatch/enabled 1
        sysfs test_klp_livepatch/transition 1
        sysfs test_klp_livepatch/vmlinux/patched 1
        sysfs test_klp_livepatch/replace 0
        complete
        sysfs test_klp_livepatch/transition 0
        load test_klp_callbacks_demo
        complete
        sysfs test_klp_callbacks_demo/stack_order 2
        sysfs test_klp_callbacks_demo/test_klp_callbacks_mod/patched 0
        modload test_klp_callbacks_mod
        sysfs test_klp_callbacks_demo/test_klp_callbacks_mod/patched 1
        disable test_klp_livepatch                        # unpatching: the object stays patched
        sysfs test_klp_livepatch/enabled 0
        sysfs test_klp_livepatch/transition 1
        sysfs test_klp_livepatch/vmlinux/patched 1
        reverse                                           # a reversed disable: enabled again
        sysfs test_klp_livepatch/enabled 1
        complete
        disable test_klp_livepatch
        complete
        sysfs test_klp_callbacks_demo/stack_order 1       # the older patch left the list
        load test_klp_atomic_replace replace=1
        param test_klp_atomic_replace replace=0           # read once, at init
        sysfs test_klp_atomic_replace/replace 1
        sysfs test_klp_atomic_replace/stack_order 2
        disable test_klp_atomic_replace                   # during its own patching: a reversal
        sysfs test_klp_atomic_replace/enabled 0
        sysfs test_klp_atomic_replace/transition 1
    """)
    assert out.died is None, out.died
    assert not any(line.startswith("ERROR") for line in out.log)


def test_a_sysfs_check_that_differs_stops_the_run_as_the_script_dies():
    out = _run("load test_klp_livepatch; complete; sysfs test_klp_livepatch/stack_order 2; disable test_klp_livepatch")
    assert out.log[-1] == "ERROR: Unexpected value in /sys/kernel/livepatch/test_klp_livepatch/stack_order: 2 vs. 1"
    assert out.died == ("run line 1 (sysfs test_klp_livepatch/stack_order 2): "
                        "/sys/kernel/livepatch/test_klp_livepatch/stack_order reads 1, the script expects 2")
    # a patch off klp_patches has no directory: cat prints nothing
    out = _run("load test_klp_livepatch; complete; disable test_klp_livepatch; complete; sysfs test_klp_livepatch/enabled 0")
    assert out.log[-1] == "ERROR: Unexpected value in /sys/kernel/livepatch/test_klp_livepatch/enabled: 0 vs."
    assert "does not exist (test_klp_livepatch is not on klp_patches)" in out.died
    # a replaced patch too
    out = _run("load test_klp_livepatch; complete; load test_klp_atomic_replace replace=1; complete; "
               "sysfs test_klp_livepatch/enabled 0")
    assert out.died is not None and "does not exist" in out.died


def test_sysfs_rights_are_the_documented_modes():
    out = _run("""
        load test_klp_callbacks_demo
        sysfs-rights test_klp_callbacks_demo drwxr-xr-x
        sysfs-rights test_klp_callbacks_demo/enabled -rw-r--r--
        sysfs-rights test_klp_callbacks_demo/force --w-------
        sysfs-rights test_klp_callbacks_demo/transition -r--r--r--
        sysfs-rights test_klp_callbacks_demo/replace -r--r--r--
        sysfs-rights test_klp_callbacks_demo/stack_order -r--r--r--
        sysfs-rights test_klp_callbacks_demo/test_klp_callbacks_mod drwxr-xr-x
        sysfs-rights test_klp_callbacks_demo/test_klp_callbacks_mod/patched -r--r--r--
        sysfs-rights test_klp_callbacks_demo/enabled -r--r--r--
    """)
    assert out.log[-1] == ("ERROR: Unexpected access rights of /sys/kernel/livepatch/test_klp_callbacks_demo/enabled: "
                           "-r--r--r-- vs. -rw-r--r--")
    assert out.died.startswith("run line 11 ")          # (the text starts with a newline)


def test_a_failing_sysfs_check_fails_the_scenario_with_a_clear_line(tmp_path):
    (tmp_path / "mods.toml").write_text((SELFTESTS / "test-livepatch.toml").read_text())
    (tmp_path / "s").mkdir()
    sc = (SELFTESTS / "test-sysfs" / "sysfs-test.toml").read_text()
    assert "sysfs test_klp_livepatch/stack_order 1\n" in sc
    (tmp_path / "s" / "broken.toml").write_text(sc.replace('spec = "../test-livepatch.toml"', 'spec = "../mods.toml"')
                                                .replace("sysfs test_klp_livepatch/stack_order 1\n",
                                                         "sysfs test_klp_livepatch/stack_order 2\n"))
    p = cli("conformance", str(tmp_path))
    assert p.returncode == 1
    out = p.stdout.splitlines()
    assert out[0] == "FAIL s/sysfs test"
    assert out[1] == ("    the script dies at run line 9 (sysfs test_klp_livepatch/stack_order 2): "
                      "/sys/kernel/livepatch/test_klp_livepatch/stack_order reads 1, the script expects 2")
    assert "    +ERROR: Unexpected value in /sys/kernel/livepatch/test_klp_livepatch/stack_order: 2 vs. 1" in out
    assert "    -livepatch: 'test_klp_livepatch': initializing unpatching transition" in out
    assert out[-1] == "0 passed, 1 failed"


def test_sysctl_ftrace_enabled_is_refused_while_a_livepatch_holds_ftrace_handlers():
    """ftrace_enable_sysctl: -EBUSY for 0 while FTRACE_OPS_FL_PERMANENT ops (a patched
    function's) are registered; set_ftrace_enabled --fail logs sysctl's error, without
    --fail the script skips."""
    assert _run("sysctl ftrace_enabled=0; sysctl --fail ftrace_enabled=0").log == [
        "livepatch: kernel.ftrace_enabled = 0", "livepatch: kernel.ftrace_enabled = 0"]
    out = _run("load test_klp_livepatch; complete; sysctl --fail ftrace_enabled=0; sysctl ftrace_enabled=1; "
               "sysctl ftrace_enabled=0; disable test_klp_livepatch")
    assert out.log[-3:] == ['livepatch: sysctl: setting key "kernel.ftrace_enabled": Device or resource busy',
                            "livepatch: kernel.ftrace_enabled = 1",
                            "SKIP: failed to set kernel.ftrace_enabled = 0"]
    assert "the script skips" in out.died
    # the demo's objects patch no function: no handler is registered, the write is accepted
    assert _run("load test_klp_callbacks_demo; complete; sysctl --fail ftrace_enabled=0").log[-1] == \
        "livepatch: kernel.ftrace_enabled = 0"
    # a target module's functions count only while the module is loaded
    assert _run("load test_klp_mod_patch; complete; sysctl ftrace_enabled=0", "test-livepatch-mod.toml").died is None
    assert _run("modload test_klp_mod_target; load test_klp_mod_patch; complete; sysctl ftrace_enabled=0",
                "test-livepatch-mod.toml").died is not None


def test_runs_ok_and_pending_read_which_version_of_a_function_runs():
    out = _run("""
        runs cmdline_proc_show original
        ok cmdline_proc_show test_klp_livepatch
        load test_klp_syscall klp_pids=$pid_list
        pending test_klp_syscall sys_getpid               # in transition: not every task switched
        complete
        pending test_klp_syscall sys_getpid
        load test_klp_livepatch
        complete
        runs cmdline_proc_show test_klp_livepatch
        ok cmdline_proc_show test_klp_livepatch
        runs cmdline_proc_show original
        disable test_klp_livepatch
    """)
    assert out.log[:2] == ["% insmod test_modules/test_klp_syscall.ko klp_pids=$pid_list",
                           "livepatch: enabling patch 'test_klp_syscall'"]
    assert "test_klp_syscall: Remaining not livepatched processes: $pending_pids" in out.log
    assert "test_klp_syscall: Remaining not livepatched processes: 0" in out.log
    assert out.log[-2:] == ["livepatch: ok", "ERROR: livepatch kselftest(s) failed"]
    assert out.died.endswith("cmdline_proc_show runs test_klp_livepatch's version; the script expects the original")
    # a module's function exists only while the module is loaded
    out = _run("load test_klp_mod_patch; complete; runs test_klp_mod_target_show test_klp_mod_patch",
               "test-livepatch-mod.toml")
    assert out.died.endswith("test_klp_mod_target_show runs not in memory (its module is not loaded); "
                             "the script expects test_klp_mod_patch's version")


def test_script_word_mistakes_are_one_line():
    spec = "specs/selftests/test-livepatch.toml"
    for run, msg in [
        ("sysfs test_klp_livepatch/force 1", "force is write-only (mode 0200)"),
        ("sysfs test_klp_livepatch/nope 1", "test_klp_livepatch has no attribute 'nope' the model reads"),
        ("sysfs test_klp_livepatch/test_klp_callbacks_mod/patched 1", "OBJECT one of vmlinux"),
        ("sysfs nope/enabled 1", "unknown patch 'nope'"),
        ("sysfs test_klp_livepatch/enabled", "write 'sysfs PATCH/ATTRIBUTE VALUE'"),
        ("sysfs-rights test_klp_livepatch/enabled rw-", "'rw-' is not a mode"),
        ("runs nope original", "no object of the spec lists 'nope' in its funcs"),
        ("ok cmdline_proc_show original", "unknown patch 'original'"),
        ("pending test_klp_syscall", "write 'pending PATCH FUNCTION'"),
        ("sysctl ftrace_enabled=2", "write 'sysctl [--fail] ftrace_enabled=0|1'"),
        ("load test_klp_syscall klp_pids=1,2", "test_klp_syscall has no parameter 'klp_pids'"),
    ]:
        p = cli("simulate", spec, "--run", run)
        assert p.returncode == 2 and len(p.stderr.splitlines()) == 1 and msg in p.stderr, (run, p.stderr)


def test_modprobe_era_has_no_replace_or_stack_order_and_renders_the_rest_alike():
    """The modprobe era ends at 6.7: replace (6.11) and stack_order (6.14) do not exist there."""
    with pytest.raises(UserError, match=r"the stack_order attribute exists since Linux 6\.14"):
        _run("load test_klp_livepatch; complete; sysfs test_klp_livepatch/stack_order 1", era="modprobe")
    sc = tomllib.loads((SELFTESTS / "test-sysfs" / "sysfs-test-object-patched.toml").read_text())
    out = _run(sc["run"], era="modprobe")
    assert out.died is None
    text = "\n".join(out.log).replace("% modprobe test_klp_callbacks_mod", "% insmod test_modules/test_klp_callbacks_mod.ko") \
        .replace("% modprobe test_klp_callbacks_demo", "% insmod test_modules/test_klp_callbacks_demo.ko")
    assert text.splitlines() == sc["expected"].strip("\n").splitlines()


def test_the_5_5_profile_has_no_later_sysfs_attributes():
    """patched (6.1), replace (6.11), stack_order (6.14) do not exist in 5.5-5.17: the
    scenarios that read them fail under --kernel 5.5 and every other one passes."""
    p = cli("conformance", "--kernel", "5.5")
    failed = sorted(line.split(" ", 1)[1] for line in p.stdout.splitlines() if line.startswith("FAIL "))
    assert p.returncode == 1 and failed and all(f.startswith("test-sysfs/") for f in failed)
    assert "kernel profile 5.5 has no such attribute" in p.stdout


def test_the_replace_set_selftests_pass_under_their_profile_only():
    """The selftests the replace_set series v2 updates (proposals.md §B.5.4) pass under kernel
    replace-set, and each fails under mainline (a different log, a missing replace_set
    attribute, or a spec mainline cannot express)."""
    from klpmodel.conformance import run_scenario

    folder = ROOT / "specs" / "selftests-replace-set"
    scenarios = sorted(folder.glob("*/*.toml"))
    assert len(scenarios) == 10
    for kernel in (None, "replace-set"):
        p = cli("conformance", str(folder), *(("--kernel", kernel) if kernel else ()))
        assert p.returncode == 0 and p.stdout.splitlines()[-1] == "10 passed, 0 failed", p.stdout
    for path in scenarios:
        try:
            ok, _, _ = run_scenario(path, "mainline")
        except UserError as e:
            assert "replace_set is a key of kernel = \"replace-set\"" in str(e)
            continue
        assert not ok, path.name


def test_the_state_callbacks_selftests_pass_under_their_profile():
    """The selftests of the per-state callbacks series v1 (proposals.md §A.6) that are
    scenarios pass under kernel state-callbacks; mainline cannot express their specs."""
    from klpmodel.conformance import run_scenario

    folder = ROOT / "specs" / "selftests-state-callbacks"
    scenarios = sorted(folder.glob("*/*.toml"))
    p = cli("conformance", str(folder), "--kernel", "state-callbacks")
    assert p.returncode == 0 and p.stdout.splitlines()[-1] == f"{len(scenarios)} passed, 0 failed", p.stdout
    for path in scenarios:                  # test-order.sh's livepatch has no state: mainline runs it alike
        if path.parent.name == "test-order":
            assert run_scenario(path, "mainline")[0]
            continue
        with pytest.raises(UserError, match="is a key of kernel = \"state-callbacks\""):
            run_scenario(path, "mainline")


def test_fail_names_a_state_callbacks_site(write_spec):
    """`fail=P/stateID:CALLBACK[N]` (kernel state-callbacks): the object of a state's site is "state ID"."""
    spec = write_spec('kernel = "state-callbacks"\n[states.s]\nid = 7\npre_patch = [\'log "pp"\', "maybe-fail -ENODEV"]\n'
                      'post_unpatch = [\'log "pu"\']\n[[patch]]\nname = "a"\nstates = { s = 1 }\n')
    p = cli("simulate", str(spec), "--run", "load a fail=a/state7:pre_patch[1]")
    assert p.returncode == 0 and "a: pp" in p.stdout and "a: pu" not in p.stdout, p.stdout
    assert "insmod: ERROR: could not insert module test_modules/a.ko: No such device" in p.stdout


def test_sysfs_gone_waits_for_the_patch_to_leave(write_spec):
    """`sysfs-gone PATCH/ATTRIBUTE` (loop_until 'test ! -f ...'): passes once the file is gone
    (the patch left klp_patches), else the script dies; a malformed one is FILE:LINE, exit 2."""
    spec = write_spec('[[patch]]\nname = "p"\n')
    ok = cli("simulate", str(spec), "--run", "load p; complete; disable p; complete; sysfs-gone p/transition")
    assert ok.returncode == 0 and "ERROR" not in ok.stdout, ok.stdout
    died = cli("simulate", str(spec), "--run", "load p; complete; disable p; sysfs-gone p/transition")
    assert "ERROR: /sys/kernel/livepatch/p/transition still exists" in died.stdout
    assert "the script stops here: run line 1 (sysfs-gone p/transition): /sys/kernel/livepatch/p/transition " \
           "still exists (it reads 1), the script waits for it to go" in died.stdout
    run = write_spec("sysfs-gone p/transition 0\n", "run.txt")
    bad = cli("simulate", str(spec), "--run-file", str(run))
    assert bad.returncode == 2 and f"{run}:1:" in bad.stderr and "write 'sysfs-gone PATCH/ATTRIBUTE'" in bad.stderr

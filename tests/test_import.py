"""`klpmodel import`: specs written from livepatch modules' C source (issue 16).

The kernel's own modules (read from ../shared/kernel/c-sources.md when it is beside the
checkout; those tests skip without it) must import to what the hand-written
specs say; each recognised idiom has a small module of its own; what is not recognised
must come back as a TODO placeholder plus a precise warning, never dropped."""
from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest
from conftest import SHARED, SPECS, cli

from klpmodel.cimport import import_files
from klpmodel.conformance import load_scenario
from klpmodel.kernel import Model
from klpmodel.simulate import parse_run, simulate
from klpmodel.spec import _Loader, load_spec
from klpmodel.verify import verify


def _kernel_sources() -> Path | None:
    """The verbatim C files of ../shared/kernel/c-sources.md (one per `### N.N `name.c`` heading,
    its first ```c block), written to a temporary folder; None when ../shared is not there.
    The project does not keep copies of ../shared's files."""
    import tempfile

    md = SHARED / "kernel" / "c-sources.md"
    if not md.is_file():
        return None
    out = Path(tempfile.mkdtemp(prefix="klp-c-"))
    name = None
    lines = md.read_text().splitlines(keepends=True)
    i = 0
    while i < len(lines):
        m = re.match(r"^###\s+\S+\s+`([\w.-]+\.c)`", lines[i])
        if m:
            name = m.group(1)
        elif name and lines[i].startswith("```c"):
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            (out / name).write_text("".join(lines[i + 1:j]))
            name, i = None, j
        i += 1
    return out


C = _kernel_sources() or Path("/nonexistent/c-sources")
STATE_MODULES = [C / "test_klp_state.c", C / "test_klp_state2.c", C / "test_klp_state3.c"]
needs_kernel_c = pytest.mark.skipif(not C.is_dir(), reason="../shared/kernel/c-sources.md is not beside the checkout")


def imported(*paths: Path):
    """(the loaded Spec, the TOML text, the warnings) of importing these files."""
    text, notes, _ = import_files(list(paths))
    return _Loader("<imported>", text).load(tomllib.loads(text)), text, notes


def shape(spec):
    """What a spec says, without where it says it."""
    return ([(s.name, s.id) for s in spec.states],
            [(m.name, m.params, [(s.text) for s in m.init], [s.text for s in m.exit]) for m in spec.modules],
            [(p.name, p.replace, p.replace_param, p.params, p.states,
              [(o.name, o.funcs, [(cb, [(s.action, s.arg, s.errno, s.cond) for s in st]) for cb, st in o.callbacks])
               for o in p.objects]) for p in spec.patches])


def module(tmp_path: Path, body: str, name: str = "lp.c", states: str = "", objs: str | None = None,
           extra: str = "") -> Path:
    """A livepatch module: `body` holds the callbacks pre_patch_cb ... post_unpatch_cb it defines."""
    cbs = "".join(f"\t\t\t.{cb} = {cb}_cb,\n" for cb in ("pre_patch", "post_patch", "pre_unpatch", "post_unpatch")
                  if f"{cb}_cb(" in body)
    objs = objs if objs is not None else f"\t{{\n\t\t.name = NULL,\n\t\t.callbacks = {{\n{cbs}\t\t}},\n\t}}, {{ }}\n"
    st = f"static struct klp_state states[] = {{\n{states}\t{{ }}\n}};\n" if states else ""
    text = (f'#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt\n#include <linux/livepatch.h>\n'
            f"static struct klp_patch patch;\n{extra}{body}\n"
            f"static struct klp_object objs[] = {{\n{objs}}};\n{st}"
            f"static struct klp_patch patch = {{\n\t.mod = THIS_MODULE,\n\t.objs = objs,\n"
            f"{chr(9) + '.states = states,' + chr(10) if states else ''}}};\n"
            f"static int lp_init(void)\n{{\n\treturn klp_enable_patch(&patch);\n}}\nmodule_init(lp_init);\n")
    p = tmp_path / name
    p.write_text(text)
    return p


def at(path: Path, text: str, nth: int = 1) -> str:
    """FILE:LINE of the nth line of path that contains text."""
    lines = [i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    return f"{path}:{lines[nth - 1]}"


def callbacks(spec, patch: int = 0, obj: int = 0) -> dict[str, list[str]]:
    return {cb: [s.text for s in st] for cb, st in spec.patches[patch].objects[obj].callbacks}


STATE = "\t{ .id = 1, .version = 2 },\n"
S = "klp_get_state(&patch, 1)"
P = "klp_get_prev_state(1)"


# --------------------------------------------------------------------------- the kernel's modules


@needs_kernel_c
def test_test_klp_state_modules_import_to_the_hand_written_spec():
    spec, text, notes = imported(*STATE_MODULES)
    assert notes == []
    assert shape(spec) == shape(load_spec(SPECS / "selftests" / "test-state.toml"))
    # the same as specs/selftest-state.toml, which leaves out the callback_info banners
    hand = load_spec(SPECS / "selftest-state.toml")
    for p, q in zip(spec.patches, hand.patches, strict=True):
        for o, r in zip(p.objects, q.objects, strict=True):
            assert [(cb, [s.text for s in st if s.action != "banner"]) for cb, st in o.callbacks] == \
                [(cb, [s.text for s in st]) for cb, st in r.callbacks]
    # every statement names the C line it came from; test_klp_state3's come from the file it includes
    assert "/test_klp_state2.c:" in text.split('name = "test_klp_state3"')[1]
    for line in text.splitlines():
        if line.startswith("    "):
            assert re.search(r"# \S+\.c:\d+: ", line), line


@needs_kernel_c
def test_test_klp_state_modules_verify_like_the_hand_written_spec():
    spec, _, _ = imported(*STATE_MODULES)
    ours, theirs = verify(spec), verify(load_spec(SPECS / "selftest-state.toml"))
    assert (ours.verdict, ours.states, ours.diameter, ours.properties) == \
        (theirs.verdict, theirs.states, theirs.diameter, theirs.properties) == \
        ("holds", theirs.states, theirs.diameter, theirs.properties)


@pytest.mark.parametrize("scenario", sorted((SPECS / "selftests" / "test-state").glob("*.toml")), ids=lambda p: p.stem)
@needs_kernel_c
def test_test_klp_state_modules_give_the_selftests_logs(scenario):
    spec, _, _ = imported(*STATE_MODULES)
    model = Model(spec)
    sc = load_scenario(scenario)
    log, _ = simulate(model, parse_run(sc["run"], model, str(scenario)), era=sc.get("era", "insmod"))
    assert log == sc["expected"].strip("\n").splitlines()


@needs_kernel_c
def test_callbacks_demo_modules_import_without_warnings():
    spec, _, notes = imported(C / "test_klp_callbacks_demo.c", C / "test_klp_callbacks_demo2.c")
    assert notes == []
    hand = load_spec(SPECS / "selftests" / "test-callbacks.toml")
    assert shape(spec)[2] == shape(hand)[2]                         # the patches: params, replace_param, funcs, callbacks
    assert [m.name for m in spec.modules] == [m.name for m in hand.modules]
    sample, _, notes = imported(C / "livepatch-callbacks-demo.c")
    assert notes == []
    assert [o.name for o in sample.patches[0].objects] == ["vmlinux", "livepatch_callbacks_mod", "livepatch_callbacks_busymod"]
    assert callbacks(sample, 0, 1) == {"pre_patch": ["banner", "fail pre_patch_ret"], "post_patch": ["banner"],
                                       "pre_unpatch": ["banner"], "post_unpatch": ["banner"]}


@needs_kernel_c
def test_target_modules_give_their_init_and_exit_lines():
    spec, _, notes = imported(C / "test_klp_callbacks_demo.c", C / "test_klp_callbacks_mod.c", C / "test_klp_callbacks_busy.c")
    hand = {m.name: m for m in load_spec(SPECS / "selftests" / "test-callbacks.toml").modules}
    mods = {m.name: m for m in spec.modules}
    assert [s.text for s in mods["test_klp_callbacks_mod"].init] == [s.text for s in hand["test_klp_callbacks_mod"].init]
    assert [s.text for s in mods["test_klp_callbacks_mod"].exit] == [s.text for s in hand["test_klp_callbacks_mod"].exit]
    assert mods["test_klp_callbacks_busy"].params == (("block_transition", 0),)
    # the work queue and completion calls of the busy module are not in the spec language
    busy = str(C / "test_klp_callbacks_busy.c")
    assert notes == [f"{busy}:{n}: not understood: {c}; write the statement by hand" for n, c in (
        (41, "schedule_work(&work)"), (47, "wait_for_completion(&busymod_work_started)"), (54, "flush_work(&work)"),
        (62, "WRITE_ONCE(block_transition, false)"), (63, "flush_work(&work)"))]
    busy_init = [s.text for s in mods["test_klp_callbacks_busy"].init]
    assert busy_init[0] == 'log "test_klp_callbacks_busy_init"'
    assert busy_init[3] == f'log "TODO {busy}:54: flush_work(&work)" unless param block_transition'


@needs_kernel_c
def test_samples_funcs_and_target_module_objects():
    spec, _, notes = imported(C / "livepatch-sample.c", C / "livepatch-shadow-fix1.c")
    sample, fix1 = spec.patches
    assert (sample.name, [(o.name, o.funcs) for o in sample.objects]) == ("livepatch_sample", [("vmlinux", ("cmdline_proc_show",))])
    assert [(o.name, o.funcs) for o in fix1.objects] == [("livepatch_shadow_mod", ("dummy_alloc", "dummy_free"))]
    assert [m.name for m in spec.modules] == ["livepatch_shadow_mod"]
    # the exit function's klp_shadow_free_all() is the spec's exit
    assert notes == []
    assert [s.text for s in fix1.exit] == ["shadow-free-all sv_leak"]


@needs_kernel_c
def test_the_verbatim_c_files_are_the_kernels():
    """The files read from c-sources.md have the sizes it records."""
    sizes = {"test_klp_state.c": 3907, "test_klp_state2.c": 4797, "test_klp_state3.c": 166,
             "test_klp_callbacks_demo.c": 3050, "test_klp_callbacks_demo2.c": 2409, "test_klp_callbacks_busy.c": 1808,
             "test_klp_callbacks_mod.c": 581, "test_klp_shadow_vars.c": 7794, "livepatch-callbacks-demo.c": 6266,
             "livepatch-shadow-fix1.c": 4006, "livepatch-shadow-fix2.c": 3017, "livepatch-shadow-mod.c": 5420,
             "livepatch-sample.c": 1428}
    for name, size in sizes.items():
        assert len((C / name).read_text()) == size, name


# --------------------------------------------------------------------------- one test per idiom


def test_four_callbacks_per_object_and_objects_from_names(tmp_path):
    body = "".join(f"static {'int' if cb == 'pre_patch' else 'void'} {cb}_cb(struct klp_object *obj)\n"
                   f"{{\n\tpr_info(\"{cb}\\n\");\n{chr(9) + 'return 0;' + chr(10) if cb == 'pre_patch' else ''}}}\n"
                   for cb in ("pre_patch", "post_patch", "pre_unpatch", "post_unpatch"))
    objs = ("\t{ .callbacks = { .pre_patch = pre_patch_cb, .post_unpatch = post_unpatch_cb } },\n"
            "\t{ .name = \"target\", .callbacks.post_patch = post_patch_cb, .callbacks.pre_unpatch = pre_unpatch_cb },\n"
            "\t{ }\n")
    spec, _, notes = imported(module(tmp_path, body, objs=objs))
    assert notes == []
    assert [m.name for m in spec.modules] == ["target"]
    assert callbacks(spec, 0, 0) == {"pre_patch": ['log "pre_patch"'], "post_unpatch": ['log "post_unpatch"']}
    assert callbacks(spec, 0, 1) == {"post_patch": ['log "post_patch"'], "pre_unpatch": ['log "pre_unpatch"']}


def test_klp_state_arrays_ids_versions_and_names(tmp_path):
    extra = "#define CONSOLE_LOGLEVEL_STATE 1\n#define VERSION (1 + 1)\nenum { KLP_STATE_FEATURE = 5, OTHER_ID };\n"
    states = ("\t{ .id = CONSOLE_LOGLEVEL_STATE, .version = VERSION },\n\t{ .id = KLP_STATE_FEATURE },\n"
              "\t{ .id = OTHER_ID, .version = 3 },\n\t{ .id = 0x10 },\n")
    spec, _, notes = imported(module(tmp_path, "", states=states, extra=extra))
    assert notes == []
    assert [(s.name, s.id) for s in spec.states] == [("console_loglevel", 1), ("feature", 5), ("other", 6), ("state_16", 16)]
    assert spec.patches[0].states == (("console_loglevel", 2), ("feature", 0), ("other", 3), ("state_16", 0))


def test_one_state_shared_by_the_series_by_id(tmp_path):
    a = module(tmp_path, "", name="lp_a.c", states=STATE, extra="#define LEVEL_STATE 1\n")
    b = module(tmp_path, "", name="lp_b.c", states="\t{ .id = 1, .version = 3 },\n")
    spec, _, _ = imported(a, b)
    assert [(s.name, s.id) for s in spec.states] == [("state_1", 1)]
    assert [p.states for p in spec.patches] == [(("state_1", 2),), (("state_1", 3),)]


def test_replace_in_the_initialiser_or_from_a_parameter(tmp_path):
    p = module(tmp_path, "", name="lp_a.c")
    p.write_text(p.read_text().replace(".objs = objs,", ".objs = objs,\n\t.replace = true,"))
    q = module(tmp_path, "", name="lp_b.c", extra="static bool cumulative = true;\nmodule_param(cumulative, bool, 0644);\n")
    q.write_text(q.read_text().replace("\treturn klp_enable_patch", "\tpatch.replace = cumulative;\n\treturn klp_enable_patch"))
    spec, _, notes = imported(p, q)
    assert notes == []
    a, b = spec.patches
    assert (a.replace, a.replace_param) == (True, None)
    assert (b.replace, b.replace_param, b.params) == (False, "cumulative", (("cumulative", 1),))


def test_alloc_and_free_of_state_data(tmp_path):
    body = (f"static int pre_patch_cb(struct klp_object *obj)\n{{\n\tstruct klp_state *s = {S};\n"
            "\tif (!s)\n\t\treturn -EINVAL;\n"
            "\ts->data = kzalloc(sizeof(int), GFP_KERNEL);\n\tif (!s->data)\n\t\treturn -ENOMEM;\n\treturn 0;\n}\n"
            f"static void post_unpatch_cb(struct klp_object *obj)\n{{\n\tstruct klp_state *s;\n\n\ts = {S};\n"
            "\tkfree(s->data);\n\tif (s->data)\n\t\tkfree(s->data);\n}\n")
    spec, _, notes = imported(module(tmp_path, body, states=STATE))
    assert notes == []
    assert callbacks(spec) == {"pre_patch": ["alloc state_1"], "post_unpatch": ["free state_1", "free state_1"]}


def test_an_unchecked_or_differently_checked_allocation_is_reported(tmp_path):
    body = (f"static int pre_patch_cb(struct klp_object *obj)\n{{\n\tstruct klp_state *s = {S};\n"
            "\ts->data = kmalloc(4, GFP_KERNEL);\n\tpr_info(\"allocated\\n\");\n"
            "\ts->data = kzalloc(4, GFP_KERNEL);\n\tif (!s->data)\n\t\treturn -EINVAL;\n\treturn 0;\n}\n")
    p = module(tmp_path, body, states=STATE)
    spec, _, notes = imported(p)
    assert notes == [f"{at(p, 'kmalloc')}: the allocation is not checked for NULL; the spec's 'alloc state_1' makes "
                     "pre_patch fail with -ENOMEM when it fails: check the C",
                     f"{at(p, 'if (!s->data)')}: not understood: if (!s->data) return -EINVAL; write the statement by hand"]
    assert callbacks(spec)["pre_patch"] == ["alloc state_1", 'log "allocated"', "alloc state_1",
                                            f'log "TODO {at(p, "if (!s->data)")}: if (!s->data) return -EINVAL"']


def test_take_over_copy_and_free_prev_through_klp_get_prev_state(tmp_path):
    body = (f"static void post_patch_cb(struct klp_object *obj)\n{{\n\tstruct klp_state *s = {S}, *prev = {P};\n\n"
            "\tif (prev) {\n\t\ts->data = prev->data;\n\t\treturn;\n\t}\n}\n"
            f"static void pre_unpatch_cb(struct klp_object *obj)\n{{\n\tstruct klp_state *s = {S}, *prev = {P};\n\n"
            "\tif (!prev)\n\t\treturn;\n\t*(int *)s->data = *(int *)prev->data;\n"
            "\tmemcpy(s->data, prev->data, sizeof(int));\n\tkfree(prev->data);\n}\n")
    spec, _, notes = imported(module(tmp_path, body, states=STATE))
    assert notes == []
    assert callbacks(spec) == {"post_patch": ["take state_1 if prev state_1"],
                               "pre_unpatch": ["return unless prev state_1", "copy state_1", "copy state_1", "free-prev state_1"]}


def test_save_modify_restore_of_a_global(tmp_path):
    body = (f"static void post_patch_cb(struct klp_object *obj)\n{{\n\tstruct klp_state *s = {S};\n"
            "\tint *saved = s->data;\n\n\tlevel = 15;\n\t*saved = level;\n\tlevel++;\n"
            "\tmemcpy(s->data, &level, sizeof(level));\n}\n"
            f"static void pre_unpatch_cb(struct klp_object *obj)\n{{\n\tstruct klp_state *s = {S};\n\n"
            "\tlevel = *(int *)s->data;\n\tmemcpy(&level, s->data, sizeof(level));\n\tother = 3;\n}\n")
    p = module(tmp_path, body, states=STATE)
    spec, _, notes = imported(p)
    # `level` is the state's value because the patch saves it into the state's data (even after the write
    # that modifies it); `other` is saved nowhere, so writing it is not understood
    assert callbacks(spec) == {"post_patch": ["modify state_1", "save state_1", "modify state_1", "save state_1"],
                               "pre_unpatch": ["restore state_1", "restore state_1", f'log "TODO {at(p, "other = 3")}: other = 3"']}
    assert notes == [f"{at(p, 'other = 3')}: not understood: other = 3; write the statement by hand"]


def test_failure_returns_in_pre_patch(tmp_path):
    extra = "static int ret_param = -19;\nmodule_param(ret_param, int, 0644);\n"
    body = (f"static int pre_patch_cb(struct klp_object *obj)\n{{\n\tstruct klp_state *prev = {P};\n\n"
            "\tif (prev && prev->version < 2)\n\t\treturn -EINVAL;\n\tif (!prev)\n\t\treturn -ENODEV;\n"
            "\tif (prev->version == 7)\n\t\treturn -12;\n\treturn ret_param;\n}\n")
    spec, _, notes = imported(module(tmp_path, body, states=STATE, extra=extra))
    assert notes == []
    assert spec.patches[0].params == (("ret_param", -19),)
    assert callbacks(spec)["pre_patch"] == ["fail -EINVAL if prev state_1 < 2", "fail -ENODEV unless prev state_1",
                                            "fail -ENOMEM if prev state_1 == 7", "fail ret_param"]


def test_version_comparisons_read_as_the_c_wrote_them(tmp_path):
    body = (f"static void post_patch_cb(struct klp_object *obj)\n{{\n\tstruct klp_state *p = {P};\n\n"
            "\tif (!p || p->version < 2)\n\t\tpr_info(\"old\\n\");\n"
            "\tif (p != NULL && 3 <= p->version)\n\t\tpr_info(\"new\\n\");\n"
            "\tif (p == NULL)\n\t\tpr_info(\"none\\n\");\n}\n")
    spec, _, notes = imported(module(tmp_path, body, states=STATE))
    assert notes == []
    assert callbacks(spec)["post_patch"] == ['log "old" unless prev state_1 >= 2', 'log "new" if prev state_1 >= 3',
                                             'log "none" unless prev state_1']


def test_pr_info_lines_become_log_statements(tmp_path):
    extra = '#define WHO "lp"\n#define N 3\n'
    body = ("static void post_patch_cb(struct klp_object *obj)\n{\n"
            '\tpr_info("%s: %s has %d %c%%\\n", __func__, WHO, N, \'x\');\n\tpr_notice("plain " "joined");\n'
            '\tpr_info("%s\\n", obj->name);\n\tpr_err("%d\\n", runtime);\n}\n')
    p = module(tmp_path, body, extra=extra)
    spec, _, notes = imported(p)
    # obj->name is NULL for vmlinux, and runtime is known only at run time
    assert callbacks(spec)["post_patch"] == ['log "post_patch_cb: lp has 3 x%"', 'log "plain joined"',
                                             f'log "TODO {at(p, "obj->name")}: pr_info(\'%s\\n\', obj->name)"',
                                             f'log "TODO {at(p, "runtime")}: pr_err(\'%d\\n\', runtime)"']
    assert [n.split(": ", 1)[0] for n in notes] == [at(p, "obj->name"), at(p, "runtime")]


def test_helpers_are_inlined_with_their_returns(tmp_path):
    body = (f"static int alloc_it(void)\n{{\n\tstruct klp_state *s = {S};\n\n\tif ({P}) {{\n"
            "\t\tpr_info(\"kept\\n\");\n\t\treturn 0;\n\t}\n"
            "\ts->data = kzalloc(4, GFP_KERNEL);\n\tif (!s->data)\n\t\treturn -ENOMEM;\n\treturn 0;\n}\n"
            f"static void note(void)\n{{\n\tif ({P})\n\t\treturn;\n\tpr_info(\"first\\n\");\n}}\n"
            "static int pre_patch_cb(struct klp_object *obj)\n{\n\tnote();\n\treturn alloc_it();\n}\n"
            "static void post_unpatch_cb(struct klp_object *obj)\n{\n\tnote();\n}\n")
    spec, _, notes = imported(module(tmp_path, body, states=STATE))
    assert notes == []
    # note() is not the last statement of pre_patch: its return only skips the rest of note()
    assert callbacks(spec) == {"pre_patch": ['log "first" unless prev state_1', 'log "kept" if prev state_1',
                                             "return if prev state_1", "alloc state_1"],
                               "post_unpatch": ["return if prev state_1", 'log "first"']}


def test_macros_are_resolved_within_the_file(tmp_path):
    extra = ("#define MY_STATE 4\n#define GET_STATE() klp_get_state(&patch, MY_STATE)\n"
             "#define PREV klp_get_prev_state(MY_STATE)\n#define FREE_IT(st) kfree((st)->data)\n"
             "#define CALLBACKS { .post_unpatch = post_unpatch_cb }\n")
    body = ("static void post_unpatch_cb(struct klp_object *obj)\n{\n\tstruct klp_state *s = GET_STATE();\n\n"
            "\tif (PREV)\n\t\treturn;\n\tFREE_IT(s);\n}\n")
    objs = "\t{ .name = NULL, .callbacks = CALLBACKS }, { }\n"
    spec, _, notes = imported(module(tmp_path, body, states="\t{ .id = MY_STATE, .version = 1 },\n", objs=objs, extra=extra))
    assert notes == []
    assert callbacks(spec) == {"post_unpatch": ["return if prev my", "free my"]}


def test_module_parameter_conditions_and_dead_branches(tmp_path):
    extra = "static bool verbose;\nmodule_param(verbose, bool, 0644);\n#define DEBUG 0\n"
    body = (f"static void post_patch_cb(struct klp_object *obj)\n{{\n\tstruct klp_state *s = {S};\n\n"
            "\tif (verbose)\n\t\tpr_info(\"loud\\n\");\n\telse\n\t\tpr_info(\"quiet\\n\");\n"
            "\tif (DEBUG)\n\t\tunknown_call();\n\tif (!s)\n\t\treturn;\n\tif (obj->mod)\n\t\tpr_info(\"module\\n\");\n}\n")
    spec, _, notes = imported(module(tmp_path, body, states=STATE, extra=extra))
    assert notes == []
    assert spec.patches[0].params == (("verbose", 0),)
    assert callbacks(spec) == {"post_patch": ['log "loud" if param verbose', 'log "quiet" unless param verbose']}


def test_shadow_calls_in_a_callback(tmp_path):
    calls = ["klp_shadow_alloc(obj, SV_USERS, sizeof(struct users), GFP_KERNEL, NULL, NULL)",
             "klp_shadow_get(obj, SV_USERS)", "klp_shadow_get_or_alloc(obj, 7, 8, GFP_KERNEL, NULL, NULL)",
             "klp_shadow_free(obj, SV_USERS, NULL)", "klp_shadow_free_all(7, NULL)"]
    body = "static void post_patch_cb(struct klp_object *obj)\n{\n" + "".join(f"\t{c};\n" for c in calls) + "}\n"
    p = module(tmp_path, body, extra="#define SV_USERS 0x5555\n")
    spec, text, notes = imported(p)
    assert callbacks(spec)["post_patch"] == ["shadow-alloc sv_users", "shadow-get sv_users", "shadow-get-or-alloc shadow_7",
                                             "shadow-free sv_users", "shadow-free-all shadow_7"]
    assert [(sv.name, sv.id) for sv in spec.shadows] == [("shadow_7", 7), ("sv_users", 0x5555)]
    # the layout: the struct of sizeof(struct X); `8` says none: a placeholder and a warning
    assert spec.patches[0].shadows == (("sv_users", "users"), ("shadow_7", "shadow_7_data"))
    assert notes == [f"{at(p, calls[2])}: the layout of shadow variable shadow_7 (the type of its data) is not resolvable "
                     "from sizeof() or the pointer it is stored in; imported as shadow_7_data: write the struct's name "
                     "(two patches sharing the variable agree on it)"]
    assert re.search(r"\nid = 21845 +# " + re.escape(f"{at(p, '#define SV_USERS')}: #define SV_USERS 0x5555\n"), text)


FUNCS = ("static struct klp_func funcs[] = {\n" + "".join(
    f"\t{{ .old_name = \"{f}\", .new_func = lp_{f} }},\n" for f in ("obj_create", "obj_use", "obj_destroy")) + "\t{ }\n};\n")
OBJS = "\t{ .name = \"target\", .funcs = funcs, }, { }\n"


def test_patched_functions_shadow_calls_become_their_code(tmp_path):
    body = """#define SV_X 3
struct obj { int a; };
struct x_data { int n; };
static int x_ctor(void *obj, void *shadow_data, void *ctor_data)
{
\tif (!ctor_data)
\t\treturn -EINVAL;
\treturn 0;
}
static int y_ctor(void *obj, void *shadow_data, void *ctor_data)
{
\treturn some_check(obj) ? -ENOMEM : 0;
}
static struct obj *lp_obj_create(void)
{
\tstruct obj *o = kzalloc(sizeof(*o), GFP_KERNEL);
\tint flag = 1;
\tif (!o)
\t\treturn NULL;
\tklp_shadow_alloc(o, SV_X, sizeof(struct x_data), GFP_KERNEL, x_ctor, &flag);
\treturn o;
}
static void lp_obj_use(struct obj *o)
{
\tstruct x_data *x = klp_shadow_get_or_alloc(o, SV_X, sizeof(*x), GFP_KERNEL, y_ctor, NULL);
\tif (o->a > 2)
\t\tklp_shadow_free(o, SV_X, NULL);
}
static void lp_obj_destroy(struct obj *o)
{
\tstruct x_data *x;
\tx = klp_shadow_get(o, SV_X);
\tif (!x)
\t\tpr_info("none\\n");
\telse
\t\tklp_shadow_free(o, SV_X, NULL);
}
""" + FUNCS
    p = module(tmp_path, body, objs=OBJS)
    spec, text, notes = imported(p)
    lp = spec.patches[0]
    assert lp.objects[0].funcs == ("obj_create", "obj_use", "obj_destroy")
    assert lp.shadows == (("sv_x", "x_data"),)
    free = "klp_shadow_free(o, SV_X, NULL)"
    assert [(f, [s.text for s in st]) for f, st in lp.code] == [
        ("obj_create", ["shadow-alloc sv_x on new"]),               # x_ctor fails only without ctor_data: &flag
        ("obj_use", ["shadow-get-or-alloc sv_x with ctor-fail", f'log "TODO {at(p, free)}: {free}"']),
        ("obj_destroy", ["shadow-get sv_x", "shadow-free sv_x if shadow sv_x"])]
    assert notes == [f"{at(p, free)}: not understood: {free}; write the statement by hand"]
    assert f"{free}  (under a condition the spec cannot say: (o->a > 2))" in text
    assert text.count("[patch.code]") == 1 and 'obj_create = [' in text
    # a function that calls no shadow API has no code
    plain = module(tmp_path, FUNCS.replace("lp_obj_", "plain_") + "", name="plain.c", objs=OBJS,
                   extra="static void plain_create(void) { }\nstatic void plain_use(void) { }\n"
                         "static void plain_destroy(void) { }\n")
    assert imported(plain)[0].patches[0].code == ()


def test_shadow_calls_a_patched_function_makes_through_helpers_or_odd_conditions(tmp_path):
    body = """struct obj { const char *name; };
static void drop(struct obj *o)
{
\tklp_shadow_free(o, 1, NULL);
}
static void lp_obj_create(struct obj *o)
{
\tif (!strcmp(o->name, "x\\"]\\n[patch]"))
\t\tklp_shadow_get_or_alloc(o, 1, sizeof(int), GFP_KERNEL, NULL, NULL);
}
static void lp_obj_use(struct obj *o) { }
static void lp_obj_destroy(struct obj *o)
{
\tdrop(o);
}
""" + FUNCS
    p = module(tmp_path, body, objs=OBJS)
    spec, text, notes = imported(p)
    goa, drop = "klp_shadow_get_or_alloc(o, 1, sizeof(int), GFP_KERNEL, NULL, NULL)", "drop(o)"
    assert [(f, [s.text for s in st]) for f, st in spec.patches[0].code] == [
        ("obj_create", [f'log "TODO {at(p, goa)}: {goa}"']), ("obj_destroy", [f'log "TODO {at(p, drop)}: {drop}"'])]
    assert notes == [f"{at(p, goa)}: not understood: {goa}; write the statement by hand",
                     f"{at(p, drop)}: not understood: {drop}; it calls the shadow API in a function of the file, which "
                     "is not read for a patched function's code: write the statements by hand"]
    assert spec.patches[0].shadows == (("shadow_1", "int"),)
    assert not any(ln.startswith("[patch]") for ln in text.splitlines())          # C text stays in one comment


def test_the_livepatch_modules_init_and_exit(tmp_path):
    p = tmp_path / "lp.c"
    p.write_text("""#include <linux/livepatch.h>
#define SV_SHARED 0x5e5e
struct shared { int refcount; };
static void *anchor;
static struct klp_object objs[] = { { }, { } };
static struct klp_patch patch = { .mod = THIS_MODULE, .objs = objs };
static int lp_init(void)
{
\tstruct shared *s = klp_shadow_get_or_alloc(anchor, SV_SHARED, sizeof(*s), GFP_KERNEL, NULL, NULL);
\tif (!s)
\t\treturn -ENOMEM;
\treturn klp_enable_patch(&patch);
}
static void lp_exit(void)
{
\tklp_shadow_free(anchor, SV_SHARED, NULL);
\tschedule_work(&w);
}
module_init(lp_init);
module_exit(lp_exit);
""")
    spec, _, notes = imported(p)
    lp = spec.patches[0]
    # the NULL check: the allocation can fail only when it creates the variable
    assert [s.text for s in lp.init] == ["maybe-fail -ENOMEM unless shadow sv_shared", "shadow-get-or-alloc sv_shared"]
    assert [s.text for s in lp.exit] == ["shadow-free sv_shared", f'log "TODO {at(p, "schedule_work")}: schedule_work(&w)"']
    assert lp.shadows == (("sv_shared", "shared"),)
    assert notes == [f"{at(p, 'schedule_work')}: not understood: schedule_work(&w); write the statement by hand"]


REFCOUNT = """#include <linux/livepatch.h>
#define SV_SHARED 0x5e5e
static void *anchor;
static struct klp_object objs[] = { { }, { } };
static struct klp_patch patch = { .mod = THIS_MODULE, .objs = objs };
static int lp_init(void)
{
\tint *count = klp_shadow_get_or_alloc(anchor, SV_SHARED, sizeof(*count), GFP_KERNEL, NULL, NULL);
\tif (!count)
\t\treturn -ENOMEM;
\t(*count)++;
\treturn klp_enable_patch(&patch);
}
static void lp_exit(void)
{
\tint *count;
EXIT}
module_init(lp_init);
module_exit(lp_exit);
"""


@pytest.mark.parametrize("exit_c, exit_spec", [
    ("\tcount = klp_shadow_get(anchor, SV_SHARED);\n\t--*count;\n\tif (!*count)\n"
     "\t\tklp_shadow_free(anchor, SV_SHARED, NULL);\n", ["put sv_shared"]),
    ("\tcount = klp_shadow_get(anchor, SV_SHARED);\n\tif (count) {\n\t\tif (!--*count)\n"
     "\t\t\tklp_shadow_free(anchor, SV_SHARED, NULL);\n\t}\n", ["put sv_shared if shadow sv_shared"]),
    ("\tcount = klp_shadow_get(anchor, SV_SHARED);\n\tif (!count)\n\t\treturn;\n\t*count -= 1;\n"
     "\tif (*count == 0)\n\t\tklp_shadow_free(anchor, SV_SHARED, NULL);\n", ["put sv_shared if shadow sv_shared"]),
    # no free at 0: not the idiom, each C statement on its own
    ("\tcount = klp_shadow_get(anchor, SV_SHARED);\n\t--*count;\n", ["shadow-get sv_shared", "TODO --*count"]),
], ids=["put", "if-c", "return-guard", "not-the-idiom"])
def test_the_refcount_idiom_in_init_and_exit(tmp_path, exit_c, exit_spec):
    p = tmp_path / "lp.c"
    p.write_text(REFCOUNT.replace("EXIT", exit_c))
    spec, _, notes = imported(p)
    lp = spec.patches[0]
    assert [s.text for s in lp.init] == ["maybe-fail -ENOMEM unless shadow sv_shared", "get sv_shared"]
    assert [s.text for s in lp.exit] == [f'log "TODO {at(p, "--*count")}: --*count"' if t == "TODO --*count" else t
                                         for t in exit_spec]
    assert notes == ([f"{at(p, '--*count')}: not understood: --*count; write the statement by hand"]
                     if "TODO --*count" in exit_spec else [])
    assert verify(spec, depth=4).verdict in ("holds", "violation")


def test_shadow_ids_not_constant_and_names_taken_by_states(tmp_path):
    body = ("static void post_patch_cb(struct klp_object *obj)\n{\n"
            "\tklp_shadow_free_all(id_of(obj), NULL);\n\tklp_shadow_free_all(LOGLEVEL, NULL);\n}\n")
    p = module(tmp_path, body, states="\t{ .id = LOGLEVEL },\n", extra="#define LOGLEVEL 1\n")
    spec, _, notes = imported(p)
    c = "klp_shadow_free_all(id_of(obj), NULL)"
    assert callbacks(spec)["post_patch"] == [f'log "TODO {at(p, c)}: {c}"', "shadow-free-all loglevel_1"]
    assert [s.name for s in spec.states] == ["loglevel"] and [s.name for s in spec.shadows] == ["loglevel_1"]
    assert notes[0] == f"{at(p, c)}: not understood: {c}; write the statement by hand"


def test_two_layouts_for_one_shadow_variable_are_warned(tmp_path):
    calls = [f"klp_shadow_get_or_alloc(obj, 1, sizeof(struct {t}), GFP_KERNEL, NULL, NULL)" for t in "ab"]
    body = "static void post_patch_cb(struct klp_object *obj)\n{\n" + "".join(f"\t{c};\n" for c in calls) + "}\n"
    p = module(tmp_path, body)
    spec, _, notes = imported(p)
    assert spec.patches[0].shadows == (("shadow_1", "a"),)
    assert notes == [f"{at(p, calls[1])}: the data of shadow variable shadow_1 is b here and a at {at(p, calls[0])}; "
                     "the spec keeps a: check which the C means"]


@needs_kernel_c
def test_the_shadow_samples_import_and_verify(tmp_path):
    fix1, fix2 = C / "livepatch-shadow-fix1.c", C / "livepatch-shadow-fix2.c"
    spec, text, notes = imported(fix1, fix2)
    assert notes == []
    assert [(s.name, s.id) for s in spec.shadows] == [("sv_leak", 1), ("sv_counter", 2)]
    p1, p2 = spec.patches
    assert (p1.shadows, p2.shadows) == ((("sv_leak", "int_ptr"),), (("sv_counter", "int"), ("sv_leak", "int_ptr")))
    assert [(f, [s.text for s in st]) for f, st in p1.code] == [
        ("dummy_alloc", ["shadow-alloc sv_leak on new"]),
        ("dummy_free", ["shadow-get sv_leak", "shadow-free sv_leak if shadow sv_leak"])]
    assert [(f, [s.text for s in st]) for f, st in p2.code] == [
        ("dummy_check", ["shadow-get-or-alloc sv_counter"]),
        ("dummy_free", ["shadow-get sv_leak", "shadow-free sv_leak if shadow sv_leak", "shadow-get sv_counter",
                        "shadow-free sv_counter if shadow sv_counter"])]
    assert ([s.text for s in p1.exit], [s.text for s in p2.exit]) == (["shadow-free-all sv_leak"], ["shadow-free-all sv_counter"])
    assert [o.funcs for o in p1.objects + p2.objects] == [("dummy_alloc", "dummy_free"), ("dummy_check", "dummy_free")]
    assert f'"shadow-alloc sv_leak on new",              # {fix1}:87: klp_shadow_alloc(d, SV_LEAK, ' in text
    out = tmp_path / "shadow.toml"
    assert cli("import", str(fix1), str(fix2), "-o", str(out)).returncode == 0
    assert cli("verify", str(out), "--depth", "5").returncode in (0, 1)


# --------------------------------------------------------------------------- what is not understood


def test_a_module_it_cannot_fully_understand_gets_a_spec_and_precise_warnings(tmp_path):
    body = (f"static void post_patch_cb(struct klp_object *obj)\n{{\n\tstruct klp_state *s = {S};\n"
            "\tint i;\n\n\tfor (i = 0; i < 3; i++)\n\t\tpoke(i);\n"
            f"\tif ({P} && param_x)\n\t\tpr_info(\"both\\n\");\n"
            "\tswitch (s->id) {\n\tcase 1:\n\t\tbreak;\n\t}\n"
            "\tgoto out;\nout:\n\tpr_info(\"done\\n\");\n}\n")
    p = module(tmp_path, body, states=STATE)
    spec, text, notes = imported(p)
    assert notes == [f"{at(p, 'for (')}: not understood: for (i = 0; i < 3; i++) poke(i); write the statement by hand",
                     f"{at(p, 'param_x')}: not understood: if (klp_get_prev_state(1) && param_x) pr_info(\"both\\n\"); "
                     "write the statement by hand",
                     f"{at(p, 'switch')}: not understood: switch (s->id) {{ case 1: break; }}; write the statement by hand",
                     f"{at(p, 'goto')}: not understood: goto out; write the statement by hand",
                     f"{at(p, 'out:')}: not understood: out: pr_info(\"done\\n\"); write the statement by hand"]
    assert len(callbacks(spec)["post_patch"]) == 5
    assert all(s.startswith(f'log "TODO {p}:') for s in callbacks(spec)["post_patch"])
    assert "verify" in text.splitlines()[3]


def test_two_conditions_cannot_be_one(tmp_path):
    extra = "static int knob;\nmodule_param(knob, int, 0644);\n"
    body = (f"static void post_patch_cb(struct klp_object *obj)\n{{\n\tstruct klp_state *s = {S};\n\n"
            f"\tif ({P}) {{\n\t\tif (knob)\n\t\t\tkfree(s->data);\n\t}}\n}}\n")
    p = module(tmp_path, body, states=STATE, extra=extra)
    spec, _, notes = imported(p)
    assert notes == [f"{at(p, 'kfree')}: not understood: kfree(s->data); write the statement by hand"]
    assert callbacks(spec)["post_patch"] == [f'log "TODO {at(p, "kfree")}: kfree(s->data)"']


def test_c_text_cannot_break_or_inject_toml(tmp_path):
    tricky = 'a \\"quoted\\" back\\\\slash \'\'\' \\"\\"\\" ]\\n[patch]\\nname = \\"evil\\"'
    body = (f'static void post_patch_cb(struct klp_object *obj)\n{{\n\tpr_info("{tricky}\\n");\n'
            '\tpr_info("tab\\there \\"ok\\" \\\\ end");\n\tpr_info("bell\\a");\n}\n')
    p = module(tmp_path, body)
    spec, _, notes = imported(p)
    assert len(spec.patches) == 1 and spec.patches[0].name == "lp"
    logs = callbacks(spec)["post_patch"]
    # the newline in the middle cannot be one log line: a placeholder; the others are exact
    assert logs[0].startswith(f'log "TODO {at(p, "quoted")}: pr_info(')
    assert [s.arg for s in spec.patches[0].objects[0].cb("post_patch")][1:] == ['tab\there "ok" \\ end', "bell\a"]
    assert len(notes) == 1
    model = Model(spec)
    log, _ = simulate(model, parse_run("load lp; complete", model, "-"))
    assert 'lp: tab\there "ok" \\ end' in log


def test_names_that_are_not_spec_names(tmp_path):
    objs = '\t{ .name = "bad-name.ko" }, { }\n'
    p = module(tmp_path, "", name="my.patch.c", objs=objs)
    q = module(tmp_path, "", name="livepatch-ok.c")
    spec, _, notes = imported(p, q)
    assert [x.name for x in spec.patches] == ["my_patch", "livepatch_ok"]       # '-' is KBUILD_MODNAME's '_'
    assert [m.name for m in spec.modules] == ["bad_name_ko"]
    assert notes == [f"{p}: module name 'my.patch' (from the file name) is not a valid spec name (letters, digits, '_'); "
                     "imported as my_patch: rename it in the spec to the module's name",
                     f"{at(p, 'bad-name')}: object name 'bad-name.ko' is not a valid spec name (letters, digits, '_'); "
                     "imported as bad_name_ko: rename it to the target module's name"]


def test_includes_and_conditional_compilation(tmp_path):
    (tmp_path / "common.c").write_text('#define LEVEL_STATE 1\nstatic void helper(void) { pr_info("shared\\n"); }\n')
    body = ('#include "common.c"\n#include "missing.h"\n#ifdef CONFIG_FOO\n#define X 1\n#endif\n'
            "static void post_patch_cb(struct klp_object *obj)\n{\n\thelper();\n}\n")
    p = module(tmp_path, body)
    spec, _, notes = imported(p)
    assert callbacks(spec) == {"post_patch": ['log "shared"']}
    assert notes == [f'{at(p, "missing.h")}: not understood: #include "missing.h"; the file is not beside the source, '
                     "so its definitions are not imported: give it there",
                     f"{at(p, '#ifdef')}: not understood: #ifdef CONFIG_FOO; conditional compilation is not evaluated: every "
                     "branch is read, check the spec"]


@needs_kernel_c
def test_the_round_trip_of_docs_import(tmp_path):
    """docs/import.md: a v2 that forgets to take over; verify finds it at the statement whose comment
    names the C line; with the C fixed, import again and it holds."""
    v2 = (C / "test_klp_state2.c").read_text()
    take_over = v2[v2.index("\tprev_loglevel_state = klp_get_prev_state(CONSOLE_LOGLEVEL_STATE);\n\tif (prev_loglevel_state) {\n"
                            "\t\tpr_info(\"%s: taking over"):]
    take_over = take_over[:take_over.index("\t}\n\n") + 4]
    bad = tmp_path / "lp_v2.c"
    bad.write_text(v2.replace(take_over, ""))
    spec, text, _ = imported(C / "test_klp_state.c", bad)
    result = verify(spec)
    (v,) = [v for v in result.violations if v.property == "no-null-deref"]
    assert v.depth == 4
    line = text.splitlines()[v.where.stmt.line - 1]
    assert line.startswith('    "save console_loglevel",') and f"# {at(bad, '*(int *)loglevel_state->data = console_loglevel')}: " in line
    bad.write_text(v2)
    spec, _, _ = imported(C / "test_klp_state.c", bad)
    assert verify(spec).verdict == "holds"


# --------------------------------------------------------------------------- the command


@needs_kernel_c
def test_cli_exit_codes_stdout_and_output_file(tmp_path):
    ok = cli("import", *map(str, STATE_MODULES))
    assert ok.returncode == 0 and ok.stderr == ""
    assert ok.stdout == import_files(STATE_MODULES)[0]
    fix2 = tmp_path / "livepatch-shadow-fix2.c"             # its exit does one thing more
    fix2.write_text((C / "livepatch-shadow-fix2.c").read_text().replace(
        "\tklp_shadow_free_all(SV_COUNTER, NULL);\n", "\tklp_shadow_free_all(SV_COUNTER, NULL);\n\tflush_work(&w);\n"))
    assert cli("import", str(C / "livepatch-shadow-fix2.c")).returncode == 0
    warned = cli("import", str(fix2))
    assert warned.returncode == 1
    assert warned.stderr.splitlines()[0] == f"{at(fix2, 'flush_work')}: not understood: flush_work(&w); write the statement by hand"
    assert f"'log \"TODO {at(fix2, 'flush_work')}: flush_work(&w)\"'," in warned.stdout
    out = tmp_path / "spec.toml"
    wrote = cli("import", *map(str, STATE_MODULES), "-o", str(out))
    assert wrote.returncode == 0 and wrote.stdout == ""
    assert cli("check", str(out)).returncode == 0


@pytest.mark.parametrize("case", ["missing", "directory", "binary", "not-c", "no-patch"])
@needs_kernel_c
def test_cli_exit_2_on_a_file_it_cannot_read_or_parse(tmp_path, case):
    f = tmp_path / "in.c"
    if case == "directory":
        f.mkdir()
    elif case == "binary":
        f.write_bytes(b"\x7fELF\0\0\0")
    elif case == "not-c":
        f.write_text("This is } not { C at all ((( ]]]\n")
    elif case == "no-patch":
        f.write_text("static int x;\n")
    p = cli("import", str(C / "test_klp_state.c"), str(f))
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith(f"klpmodel: error: {f}: ")
    assert len(p.stderr.splitlines()) == 1


@needs_kernel_c
def test_cli_output_never_overwrites_an_input_nor_follows_a_link(tmp_path):
    src = tmp_path / "lp.c"
    src.write_text((C / "test_klp_state.c").read_text())
    before = src.read_text()
    link = tmp_path / "link.toml"
    target = tmp_path / "target.toml"
    target.write_text("keep")
    link.symlink_to(target)
    hard = tmp_path / "hard.toml"
    os.link(src, hard)
    for out in (src, link, hard):
        p = cli("import", str(src), "-o", str(out))
        assert p.returncode == 2, out
        assert "klpmodel: error: -o " in p.stderr
    assert src.read_text() == before and target.read_text() == "keep"

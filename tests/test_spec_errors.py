"""Every spec mistake is one line `FILE:LINE: what is wrong; what to write instead`, exit 2."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import cli

from klpmodel.errors import UserError
from klpmodel.spec import load_spec

BASE = '[states.s]\nid = 1\n\n[[patch]]\nname = "a"\nstates = { s = 1 }\n'
OBJ = BASE + '\n[patch.objects.vmlinux]\n'

CASES = [
    ("unknown top-level key", 'nmae = "x"\n' + BASE,
     "1: unknown key 'nmae' in the top level; did you mean 'name'? allowed keys: name, kernel, check, states, modules, shadows, objects, patch"),
    ("unknown patch key", BASE + "replcae = true\n",
     "7: unknown key 'replcae' in [[patch]]; did you mean 'replace'? allowed keys: name, replace, states, uses, objects, params, replace_param, replace_set, shadows, init, init_error, exit, code, no_states_param, block_disable_param"),
    ("did you mean: the closest key, not the first with the same prefix", OBJ + 'pre_unptach = []\n',
     "9: unknown key 'pre_unptach' in [patch.objects.vmlinux]; did you mean 'pre_unpatch'? allowed keys: pre_patch, post_patch, pre_unpatch, post_unpatch, pre_patch_error, funcs"),
    ("unknown object key", OBJ + 'post_pach = []\n',
     "9: unknown key 'post_pach' in [patch.objects.vmlinux]; did you mean 'post_patch'? allowed keys: pre_patch, post_patch, pre_unpatch, post_unpatch, pre_patch_error, funcs"),
    ("unknown state name", '[states.s]\nid = 1\n\n[[patch]]\nname = "a"\nstates = { t = 1 }\n',
     "6: unknown state 't'; declare it as [states.t] with an id, or use one of: s"),
    ("unknown object name", BASE + '\n[patch.objects.mod_x]\npre_patch = []\n',
     "8: unknown object 'mod_x'; an object is vmlinux or a module declared as [modules.mod_x]: write vmlinux or declare the module"),
    ("fail outside pre_patch", OBJ + 'post_patch = ["fail"]\n',
     "9: 'fail' is not allowed in post_patch; only pre_patch can stop loading (move it to pre_patch)"),
    ("maybe-fail in pre_patch_error", OBJ + 'pre_patch_error = ["maybe-fail"]\n',
     "9: 'maybe-fail' is not allowed in pre_patch_error; pre_patch_error runs after the failure; remove it"),
    ("state action in module init", '[modules.m]\ninit = ["alloc s"]\n' + BASE,
     "2: 'alloc' is not allowed in module init; a target module's init and exit take only 'log \"TEXT\"' statements "
     "and the shadow variable actions (shadow-alloc, shadow-get-or-alloc, shadow-get, shadow-free, shadow-free-all, "
     "get, put)"),
    # (issue 14) named parent objects of shadow variables
    ("object with a bad owner", '[objects]\nob = "mod"\n' + BASE,
     "2: object 'ob' must name its owner, \"vmlinux\" or a [modules] name (vmlinux), not 'mod'; e.g. ob = \"vmlinux\""),
    ("object named new", '[objects]\nnew = "vmlinux"\n' + BASE,
     "2: 'new' is not an object name ('on new' means an object the patch's code just created); pick another name"),
    ("unknown object", '[shadows.sv]\nid = 1\n[objects]\nob = "vmlinux"\n' + BASE
     + 'shadows = { sv = "x" }\ninit = ["shadow-alloc sv on obj"]\n',
     "12: 'shadow-alloc sv on obj' names object 'obj', which [objects] does not declare; add obj = \"vmlinux\" (or its "
     "module) to [objects] (declared: ob)"),
    ("unknown object in a condition", '[shadows.sv]\nid = 1\n[objects]\nob = "vmlinux"\n' + BASE
     + 'shadows = { sv = "x" }\ninit = ["shadow-free sv on ob if shadow sv on obj"]\n',
     "12: 'shadow sv on obj' in 'shadow-free sv on ob if shadow sv on obj' names an object that [objects] does not "
     "declare; add obj = \"vmlinux\" (or its module) to [objects]"),
    ("free-all on an object", '[shadows.sv]\nid = 1\n[objects]\nob = "vmlinux"\n' + BASE
     + 'shadows = { sv = "x" }\ninit = ["shadow-free-all sv on ob"]\n',
     "12: malformed statement 'shadow-free-all sv on ob': 'on ob' is not an option of shadow-free-all; write \"shadow-free-all SV [with dtor]\""),
    ("named and abstract object mixed", '[shadows.sv]\nid = 1\n[objects]\nob = "vmlinux"\n' + BASE
     + 'shadows = { sv = "x" }\ninit = ["shadow-alloc sv on ob"]\nexit = ["shadow-free sv"]\n',
     "13: shadow variable 'sv' is used on named objects and on the abstract parent object (line 12: 'shadow-alloc sv "
     "on ob'); write 'on OBJ' in every statement of sv, or in none"),
    ("expect without echoes_shadow_calls", '[shadows.sv]\nid = 1\n[modules.m]\nshadows = { sv = "x" }\n'
     'init = ["shadow-get sv expect null"]\n' + BASE,
     "5: malformed statement 'shadow-get sv expect null': 'expect null' is not an option of shadow-get; write \"shadow-get SV [on OBJ] [or fail -ERRNO]\"; 'expect' is "
     "the check line of a module with echoes_shadow_calls = true"),
    ("or fail in a livepatch", '[shadows.sv]\nid = 1\n' + BASE + 'shadows = { sv = "x" }\n'
     'init = ["shadow-get sv or fail -ENOMEM"]\n',
     "10: malformed statement 'shadow-get sv or fail -ENOMEM': 'or fail -ENOMEM' is not an option of shadow-get; write \"shadow-get SV [on OBJ]\""),
    ("ctor-fail in a target module", '[shadows.sv]\nid = 1\n[modules.m]\nshadows = { sv = "x" }\n'
     'init = ["shadow-get-or-alloc sv with ctor-fail"]\n' + BASE,
     "5: 'with ctor-fail' in 'shadow-get-or-alloc sv with ctor-fail': a target module's init takes no explored "
     "choice; write it in a livepatch's callback, init or code"),
    ("shadow variable a module does not list", '[shadows.sv]\nid = 1\n[modules.m]\ninit = ["shadow-get sv"]\n' + BASE,
     "4: 'shadow-get sv' names shadow variable 'sv', which module 'm' does not list in its shadows; add sv = "
     "\"LAYOUT\" to the module's shadows"),
    ("prev on an undeclared state",
     '[states.s]\nid = 1\n[states.t]\nid = 2\n\n[[patch]]\nname = "a"\nstates = { s = 1 }\n\n[patch.objects.vmlinux]\npre_patch = ["alloc s if prev t"]\n',
     "11: 'prev t' in 'alloc s if prev t' names a state that patch 'a' does not declare; klp_get_prev_state needs an id the patch declares: add t = VERSION to its states"),
    ("statement on an undeclared state (multi-line array)",
     '[states.s]\nid = 1\n[states.t]\nid = 2\n\n[[patch]]\nname = "a"\nstates = { s = 1 }\n\n[patch.objects.vmlinux]\npre_patch = [\n  "alloc s",\n  "free t",\n]\n',
     "13: 'free t' names state 't', which patch 'a' does not declare; add t = VERSION to the patch's states"),
    ("duplicate patch name", BASE + '\n[[patch]]\nname = "a"\n',
     "9: patch name 'a' is already used on line 5; give each [[patch]] its own name"),
    ("duplicate state id", '[states.s]\nid = 1\n[states.t]\nid = 1\n\n[[patch]]\nname = "a"\n',
     "4: state id 1 is already used by state 's'; give each state its own id"),
    ("duplicate key (TOML)", BASE + 'name = "b"\n',
     "7: TOML syntax error: Cannot overwrite a value (a key is given twice in one table; keep one of them); fix the TOML syntax (see docs/spec-format.md)"),
    ("negative version", '[states.s]\nid = 1\n\n[[patch]]\nname = "a"\nstates = { s = -1 }\n',
     "6: bad version -1 for state 's'; klp_state.version is an integer from 0 to 4294967295 (an unsigned int), e.g. s = 1"),
    ("string version", '[states.s]\nid = 1\n\n[[patch]]\nname = "a"\nstates = { s = "2" }\n',
     "6: bad version '2' for state 's'; klp_state.version is an integer from 0 to 4294967295 (an unsigned int), e.g. s = 1"),
    ("zero state id", '[states.s]\nid = 0\n',
     "2: state id must be an integer from 1 to 18446744073709551615 (klp_state.id is a non-zero unsigned long), not 0; e.g. id = 1"),
    ("statement without its state", OBJ + 'pre_patch = ["alloc"]\n',
     "9: malformed statement 'alloc': alloc takes one state name; write \"alloc STATE\""),
    ("unknown action", OBJ + 'pre_patch = ["allocate s"]\n',
     "9: unknown action 'allocate' in 'allocate s'; write one of: alloc, free, save, restore, modify, reset, take, copy, free-prev, fail, maybe-fail, return, log, banner, call, shadow-alloc, shadow-get-or-alloc, shadow-get, shadow-free, shadow-free-all, get, put"),
    ("malformed condition", OBJ + 'pre_patch = ["alloc s if s"]\n',
     "9: malformed condition 'if s' in 'alloc s if s'; write 'if prev STATE' or 'unless prev STATE >= 2'"),
    ("bad errno", OBJ + 'pre_patch = ["fail ENOMEM"]\n',
     "9: bad errno 'ENOMEM' in 'fail ENOMEM'; write a negative errno such as -EINVAL, -ENODEV, -ENOMEM or a number from -1 to -4095 or one of the patch's params"),
    ("log without quotes", OBJ + 'pre_patch = ["log hello"]\n',
     "9: malformed statement 'log hello': log takes a double-quoted text; write 'log \"TEXT\"'"),
    ("return with an argument", OBJ + 'pre_patch = ["return 0"]\n',
     "9: malformed statement 'return 0': return takes no argument; write \"return\""),
    ("callback not a list", OBJ + 'pre_patch = "alloc s"\n',
     "9: pre_patch must be a list of statement strings; write e.g. pre_patch = [\"alloc loglevel\"]"),
    ("TOML syntax", BASE + "replace = \n",
     "7: TOML syntax error: Invalid value (a value is missing or malformed after '='); fix the TOML syntax (see docs/spec-format.md)"),
    ("unknown kernel profile", 'kernel = "5.4"\n' + BASE, "1: unknown kernel profile '5.4'; write one of: mainline, 5.5, state-callbacks, replace-set ('klpmodel profiles' says what each is), or leave it out for mainline"),
    ("bad depth", "[check]\ndepth = 0\n" + BASE, "2: depth must be an integer from 1 to 1000000, not 0; e.g. depth = 8"),
    ("unknown operation", '[check]\noperations = ["load", "unload"]\n' + BASE,
     "2: unknown operation 'unload'; write one of: load, complete, reverse, disable, rmmod, modload, modunload, force, call"),
    ("no patch", "[states.s]\nid = 1\n", "1: the spec declares no livepatch; add a [[patch]] table with at least a name"),
    ("bad patch name", '[[patch]]\nname = "my-patch"\n',
     "2: patch name 'my-patch' is not a valid name; use at most 55 letters, digits and '_', starting with a letter or '_', as the kernel takes for a module name (e.g. \"lp_v1\")"),
    ("patch without name", "[[patch]]\nreplace = true\n", "1: [[patch]] has no name; add name = \"...\" (the livepatch module name)"),
    ("uses an undeclared state", '[states.s]\nid = 1\n\n[[patch]]\nname = "a"\nuses = ["s"]\n',
     "6: uses names 's', which patch 'a' does not declare; write the name of a state in its states, or remove it from uses"),
    ("module named vmlinux", "[modules.vmlinux]\nloaded = true\n" + BASE,
     "1: 'vmlinux' is not a module (the kernel refuses a module of that name); pick another name"),
    ("replace not a bool", BASE + 'replace = "yes"\n', "7: replace must be true or false, not 'yes'; write replace = true or replace = false"),
    ("replace_param without the parameter", '[[patch]]\nname = "a"\nreplace_param = "replace"\n',
     "3: replace_param names 'replace', which is not in this patch's params; declare it, e.g. params = { replace = 0 }"),
    ("parameter default not a number", '[[patch]]\nname = "a"\nparams = { x = "yes" }\n',
     "3: parameter 'x' must default to a boolean or an integer from -9223372036854775808 to 18446744073709551615 (a long or unsigned long), not 'yes'; e.g. x = 0"),
    ("sleeps without its parameter", '[modules.m]\nsleeps = { function = "f" }\n[[patch]]\nname = "a"\n',
     '2: sleeps needs function = "FUNC" and while = "PARAM" (a boolean parameter of this module); '
     'write e.g. sleeps = { function = "busymod_work_func", while = "block_transition" }'),
    ("call of a function without code", '[modules.m]\ncode = { f = [\'log "x"\', "call g"] }\n[[patch]]\nname = "a"\n',
     "2: 'call g' calls g, which no target module's or patch's code gives; add g = [...] to a [modules.M] code or "
     "a [patch.code] (functions with code: f)"),
    ("call that recurses", '[modules.m]\ncode = { f = ["call g"], g = ["call f"] }\n[[patch]]\nname = "a"\n',
     "2: 'call f': f -> g -> f calls itself; the model runs a call inline, so a function may not call itself "
     "(directly or through others)"),
    ("call in a callback", '[modules.m]\ncode = { f = [] }\n[[patch]]\nname = "a"\n[patch.objects.vmlinux]\n'
     'pre_patch = ["call f"]\n',
     "6: 'call' is not allowed in pre_patch; only a function's code calls functions: a target module's code, "
     "its sleeps.wake, or a patch's [patch.code]"),
    ("malformed call", '[modules.m]\ncode = { f = [\'call f "x\'] }\n[[patch]]\nname = "a"\n',
     "2: malformed statement 'call f \"x': write 'call FUNCTION' or 'call FUNCTION \"TEXT\"' (TEXT: the "
     "function's string argument, which its log lines print where they write {arg})"),
    ("sleeps wake with an action a module cannot run", '[modules.m]\nparams = { b = 0 }\n[modules.m.sleeps]\n'
     'function = "f"\nwhile = "b"\nwake = ["fail"]\n[[patch]]\nname = "a"\n',
     "6: 'fail' is not allowed in sleeps wake; a target module's code and sleeps.wake take only 'log \"TEXT\"' "
     "and 'call FUNCTION' statements"),
    ("no_states_param without the parameter", 'kernel = "state-callbacks"\n' + BASE + 'no_states_param = "x"\n',
     "8: no_states_param names 'x', which is not in this patch's params; declare it, e.g. params = { no_state = false }"),
    ("block_disable_param of an undeclared state", 'kernel = "state-callbacks"\n' + BASE +
     'params = { b = false }\nblock_disable_param = { t = "b" }\n',
     "9: block_disable_param names state 't', which this patch does not declare; add it to its states or remove it here"),
    ("funcs not a list", '[[patch]]\nname = "a"\n[patch.objects.vmlinux]\nfuncs = "f"\n',
     '4: funcs must be a list of function names; write e.g. funcs = ["busymod_work_func"]'),
    ("condition on an undeclared parameter", '[[patch]]\nname = "a"\n[patch.objects.vmlinux]\npre_patch = [\'log "x" if param nope\']\n',
     "4: 'param nope' in 'log \"x\" if param nope' names no parameter of this module; declare it in params, e.g. params = { nope = 0 }"),
]


@pytest.mark.parametrize("what,text,message", CASES, ids=[c[0] for c in CASES])
def test_error_message(write_spec, what, text, message):
    path = write_spec(text)
    with pytest.raises(UserError) as e:
        load_spec(path)
    assert str(e.value) == f"{path}:{message}"


@pytest.mark.parametrize("command", ["check", "verify"])
def test_cli_bad_spec_is_one_line_exit_2(write_spec, command):
    path = write_spec(OBJ + 'post_patch = ["fail"]\n')
    before = path.read_text()
    p = cli(command, str(path))
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert lines == [(f"klpmodel: error: {path}:9: 'fail' is not allowed in post_patch; "
                      "only pre_patch can stop loading (move it to pre_patch)")]
    assert "Traceback" not in p.stderr
    assert path.read_text() == before          # nothing the user had is touched


def test_missing_file(tmp_path):
    p = cli("verify", str(tmp_path / "nope.toml"))
    assert p.returncode == 2
    assert p.stderr.strip() == f"klpmodel: error: {tmp_path / 'nope.toml'}: no such file; give the path of a spec .toml file"


def test_check_accepts_a_good_spec():
    p = cli("check", "specs/selftest-state.toml")
    assert p.returncode == 0
    assert p.stdout.strip() == "specs/selftest-state.toml: ok (3 patches, 1 state, 0 target modules)"


def test_statements_keep_their_lines():
    spec = load_spec("specs/selftest-state.toml")
    text = Path("specs/selftest-state.toml").read_text().splitlines()
    for p in spec.patches:
        for o in p.objects:
            for _, stmts in o.callbacks:
                for st in stmts:
                    assert st.text in text[st.line - 1], (st.text, st.line)


def test_init_state_parameters_are_keys_of_state_callbacks_only(write_spec):
    """no_states_param/block_disable_param (issue 15) under another profile: FILE:LINE, exit 2."""
    path = write_spec(BASE + 'params = { b = false }\nblock_disable_param = { s = "b" }\n')
    for kernel in ("mainline", "replace-set"):
        p = cli("verify", str(path), "--kernel", kernel, "--depth", "1")
        assert p.returncode == 2, p.stderr
        assert p.stderr.strip().endswith(
            f"{path}:8: patch 'a': block_disable_param is a key of kernel = \"state-callbacks\" (Petr Mladek's "
            f"per-state callbacks, v1, not merged), not of kernel profile '{kernel}'; remove it, or write kernel = "
            f"\"state-callbacks\" (or give --kernel state-callbacks)"), p.stderr

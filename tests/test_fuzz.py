"""Issue 11, item 7: fuzzing the inputs. Spec-shaped TOML (odd names, huge numbers, wrong
types, deep nesting), byte mutations of the shipped specs, and mutated trace files go
through the loader and the commands; the contract: exit 0, 1 or 2 only (3 for replay's
"no longer possible"), a failure is one line `FILE:LINE: what; what instead`, never a
traceback, each example within a generous time bound.

Most examples run in-process (the loader and the commands' functions); a few go through
the command line. The sequence is seeded (derandomized): the same examples on every run.
KLP_FUZZ_EXAMPLES scales the counts (default 1: about 3,800 examples in all);
KLP_FUZZ_SEED draws another sequence."""
from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import SPECS, cli
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from klpmodel import explain, kselftest
from klpmodel.errors import UserError
from klpmodel.kernel import Model
from klpmodel.spec import parse_spec
from klpmodel.traces import load_trace, spec_for
from klpmodel.verify import verify

SCALE = float(os.environ.get("KLP_FUZZ_EXAMPLES", "1"))
SEED = os.environ.get("KLP_FUZZ_SEED")
SHIPPED = sorted(p for p in SPECS.rglob("*.toml") if not any(d.startswith("selftests") for d in p.relative_to(SPECS).parts))
MESSAGE = re.compile(r"^(?P<file>.+?):(?P<line>[1-9][0-9]*): (?P<what>.+?); (?P<instead>.+)$")


def _settings(n: int):
    return settings(max_examples=max(1, int(n * SCALE)), derandomize=SEED is None, deadline=timedelta(seconds=20),
                    database=None, suppress_health_check=list(HealthCheck))


def _seeded(f):
    return seed(int(SEED))(f) if SEED else f


# ------------------------------------------------------------------ spec-shaped TOML

GOOD_NAMES = st.sampled_from(["s", "lp_v1", "vmlinux", "m", "p", "a", "test_klp_state", "loglevel"])
NAMES = st.one_of(
    GOOD_NAMES, st.just("x" * 56),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
    st.sampled_from(["a\n", "a b", "a-b", "$(id)", "`id`", "a\u2028", "\x1b[31m", "é", "", "1a", "_"]),
)
HUGE = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([0, 1, -1, 255, 256, 2**32, 2**63, 2**64, -(2**63) - 1]))
SCALARS = st.one_of(HUGE, st.booleans(), st.floats(allow_nan=True, allow_infinity=True), NAMES,
                    st.sampled_from(["1979-05-27T07:32:00Z", "07:32:00", "9" * 5000, "-0x" + "f" * 80, "1e99999"])
                    .map(lambda s: _Raw(s)))
GOOD_STATEMENTS = st.builds(
    lambda a, arg, cond: f"{a} {arg}{cond}".strip(),
    st.sampled_from(["alloc", "free", "save", "restore", "modify", "reset", "take", "copy", "free-prev"]),
    st.just("s"), st.sampled_from(["", " if prev s", " unless prev s >= 2", " if param p"]),
) | st.sampled_from(["maybe-fail -ENOMEM", "fail -19", "fail p", "return", 'log "text"', "banner"])
STATEMENTS = GOOD_STATEMENTS | st.builds(
    lambda a, arg, cond: f"{a} {arg}{cond}".strip(),
    st.sampled_from(["alloc", "free", "save", "restore", "modify", "reset", "take", "copy", "free-prev", "fail",
                     "maybe-fail", "return", "log", "banner", "bogus", ""]),
    st.one_of(NAMES, st.sampled_from(['"text"', '"a \\" b"', "-ENOMEM", "-19", "-4096", "-" + "9" * 30, "p"])),
    st.sampled_from(["", " if prev s", " unless prev s >= 2", " if prev s == 99999999999999999999999", " if param p",
                     " unless param q", " if", " if prev", " if prev s >=", " if prev s >= -1"]),
)


class _Raw(str):
    """A TOML fragment written as it is (dates, broken syntax)."""


def _string(v: str) -> str:
    """A TOML basic string (control characters escaped, the rest as it is)."""
    body = "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else ("\\" + c if c in '"\\' else c) for c in v)
    return f'"{body}"'


def _key(k: str) -> str:
    return k if k and re.fullmatch(r"[A-Za-z0-9_-]+", k) else _string(k)


def _value(v) -> str:
    if isinstance(v, _Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return {float("inf"): "inf", float("-inf"): "-inf"}.get(v, "nan" if v != v else repr(v))
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(NAMES, inner, max_size=3)), max_leaves=12)


@st.composite
def nested(draw) -> _Raw:
    depth = draw(st.one_of(st.integers(1, 40), st.integers(300, 2000)))       # tomllib recursed past ~300
    kinds = draw(st.lists(st.sampled_from(["[", "{ a = "]), min_size=depth, max_size=depth))
    close = "".join("]" if k == "[" else " }" for k in reversed(kinds))
    return _Raw("".join(kinds) + "1" + close)


@st.composite
def spec_texts(draw, chaos: int | None = None) -> str:
    """TOML shaped like a spec: the right tables and keys, and in them, depending on the
    example's chaos (0: a valid spec, 1: a little wrong, 2: a lot), anything: odd names,
    huge numbers, wrong types, deep nesting, stray lines."""
    chaos = draw(st.sampled_from([0, 0, 1, 2])) if chaos is None else chaos
    names = GOOD_NAMES if chaos == 0 else NAMES
    numbers = st.integers(0, 3) if chaos == 0 else HUGE
    statements = GOOD_STATEMENTS if chaos == 0 else STATEMENTS

    def value(good):
        if chaos and draw(st.integers(0, 8 if chaos == 1 else 2)) == 0:
            return draw(st.one_of(VALUES, nested()) if chaos == 2 else VALUES)
        return draw(good)

    out = []
    if draw(st.booleans()):
        out.append(f"name = {_value(value(names))}")
    if draw(st.integers(0, 3)) == 0:
        out.append(f"kernel = {_value(value(st.just('mainline')))}")
    if draw(st.booleans()):
        out.append(f"[check]\ndepth = {_value(value(st.integers(1, 4)))}")
        if draw(st.booleans()):
            out.append(f"operations = {_value(value(st.lists(st.sampled_from(['load', 'complete', 'disable', 'force', 'rmmod']), max_size=4, unique=chaos == 0)))}")
    states = ["s"] + draw(st.lists(names.filter(lambda x: x != "s"), max_size=2, unique=True))
    for k, name in enumerate(states):
        out.append(f"[states.{_key(name)}]\nid = {_value(value(st.just(k + 1)))}")
    modules = draw(st.lists(st.just("m") if chaos == 0 else names, max_size=1 if chaos == 0 else 2, unique=True))
    for m in modules:
        out.append(f"[modules.{_key(m)}]\nloaded = {_value(value(st.booleans()))}")
        if draw(st.booleans()):
            out.append(f"params = {_value(value(st.dictionaries(names.filter(lambda x: x != 'm'), numbers, max_size=2)))}")
    for k in range(draw(st.integers(1 if chaos == 0 else 0, 3))):
        out.append(f"[[patch]]\nname = {_value(value(st.just(f'p{k}') if chaos == 0 else names))}")
        if draw(st.booleans()):
            out.append(f"replace = {_value(value(st.booleans()))}")
        out.append(f"states = {_value(value(st.fixed_dictionaries({'s': numbers})))}")
        if draw(st.booleans()):
            out.append(f"uses = {_value(value(st.lists(st.just('s'), max_size=1)))}")
        out.append(f"params = {_value(value(st.fixed_dictionaries({'p': numbers})))}")
        for obj in draw(st.lists(st.sampled_from(["vmlinux", *modules]) if chaos == 0 else st.one_of(st.just("vmlinux"), names),
                                 max_size=2, unique=True)):
            out.append(f"[patch.objects.{_key(obj)}]")
            for cb in draw(st.lists(st.sampled_from(["pre_patch", "post_patch", "pre_unpatch", "post_unpatch"]
                                                    + ([] if chaos == 0 else ["pre_patch_error", "funcs", "pre_unptach"])),
                                    max_size=3, unique=True)):
                good = statements if chaos or cb == "pre_patch" else statements.filter(lambda x: "fail" not in x)
                out.append(f"{cb} = {_value(value(st.lists(good, max_size=3)))}")
    if chaos and draw(st.integers(0, 5)) == 0:       # a stray line: dotted keys, odd syntax
        out.insert(draw(st.integers(0, len(out))), draw(st.sampled_from(
            ["a.b.c = 1", 'x = """\nmulti\n"""', "[[patch]", "= 1", "name = 'unclosed", "[a.b]\n[a]", "k = 1\nk = 2",
             ".".join(["a"] * 3000) + " = 1", "[" + "a " * 3000 + "]", "[" + "b." * 40 + "c]"])))
    return "\n".join(out) + "\n"


def _mutate(data: bytes, ops: list[tuple[int, int, bytes]]) -> bytes:
    for kind, pos, chunk in ops:
        if not data:
            break
        pos %= len(data)
        if kind == 0:
            data = data[:pos] + data[pos + 1 + len(chunk) % 16:]                 # delete a run
        elif kind == 1:
            data = data[:pos] + chunk + data[pos:]                               # insert bytes
        elif kind == 2:
            data = data[:pos] + chunk[:1] + data[pos + 1:]                       # replace a byte
        elif kind == 3:
            line_start = data.rfind(b"\n", 0, pos) + 1
            line_end = data.find(b"\n", pos)
            line = data[line_start:line_end + 1 if line_end >= 0 else len(data)]
            data = data[:line_start] + line + line + data[line_start + len(line):]  # duplicate a line
        else:
            data = data[:pos]                                                    # truncate
    return data


MUTATIONS = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 1 << 20),
                               st.one_of(st.binary(max_size=8), st.sampled_from(
                                   [b"[", b"]", b"{", b"}", b'"', b"'", b"\n", b"=", b".", b"\xff", b"\x00", b"#",
                                    b"\xe2\x80\xa8", b"9" * 40, b"[[patch]]\n", b"-", b" if prev "]))),
                     min_size=1, max_size=4)


def check_spec(raw: bytes, run: bool = False) -> None:
    """The loader's contract on any bytes: a Spec, or one UserError `FILE:LINE: what; instead`."""
    try:
        spec = parse_spec("fuzz.toml", raw)
    except UserError as e:
        text = str(e)
        assert "\n" not in text and text.isprintable(), text
        m = MESSAGE.match(text)
        assert m and m["file"] == "fuzz.toml", text
        assert int(m["line"]) <= raw.count(b"\n") + 1, text
        return
    if run:                                           # an accepted spec: both engines run without a crash
        for engine in ("explicit", "z3"):
            r = verify(spec, depth=min(spec.depth, 2), engine=engine, max_states=20_000, timeout=15)
            assert r.exit_code in (0, 1, 3)


@_seeded
@_settings(1500)
@given(spec_texts())
def test_fuzz_spec_shaped_toml(text):
    check_spec(text.encode("utf-8", "surrogatepass"), run=False)


@_seeded
@_settings(150)
@given(spec_texts(chaos=0))
def test_fuzz_accepted_specs_run(text):
    check_spec(text.encode("utf-8", "surrogatepass"), run=True)


@_seeded
@_settings(1500)
@given(st.sampled_from(SHIPPED), MUTATIONS)
def test_fuzz_byte_mutations_of_the_shipped_specs(path, ops):
    check_spec(_mutate(path.read_bytes(), ops))


# ------------------------------------------------------------------ trace files

@pytest.fixture(scope="module")
def traces(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("fuzz-traces")
    for name in ("error-cleanup-bad.toml", "no-use-after-free-bad.toml", "module-state.toml"):
        assert cli("verify", str(SPECS / name), "--out", str(out / name), "--depth", "6").returncode in (0, 1)
    return sorted(out.rglob("*.trace.json"))


JSON_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), HUGE, st.floats(), st.text(max_size=8),
                                     st.sampled_from(["load lp_feature", "complete", "vmlinux", "pre_patch"])),
                           lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                           max_leaves=8)


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated_trace(draw, traces) -> bytes:
    path = draw(st.sampled_from(traces))
    doc = json.loads(path.read_text())
    if draw(st.integers(0, 3)) == 0:                           # bytes, anywhere
        return _mutate(json.dumps(doc, indent=2).encode(), draw(MUTATIONS))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p and p[0] not in ("initial",) and p[:2] != ("spec", "path")
                 and p[:2] != ("spec", "sha256")]
        target = draw(st.sampled_from(paths))
        parent = doc
        for k in target[:-1]:
            parent = parent[k]
        if draw(st.integers(0, 4)) == 0 and isinstance(parent, dict):
            del parent[target[-1]]
        else:
            parent[target[-1]] = draw(JSON_VALUES)
    text = json.dumps(doc, indent=2, allow_nan=True)
    return text.encode()


def check_trace(raw: bytes, where: Path) -> None:
    where.write_bytes(raw)
    try:
        t = load_trace(where)
        model = Model(spec_for(t, None))
        for command in (lambda: explain.explain(model, t), lambda: explain.replay(model, t),
                        lambda: kselftest.script(model, t)):
            try:
                command()
            except UserError as e:
                assert "\n" not in str(e) and str(e).startswith(f"{where}"), str(e)
    except UserError as e:
        text = str(e)
        assert "\n" not in text and text.startswith(f"{where}"), text
        assert "; " in text, text


def test_fuzz_trace_files(traces, tmp_path_factory):
    where = tmp_path_factory.mktemp("fuzz-one") / "t.trace.json"

    @_seeded
    @_settings(600)
    @given(mutated_trace(traces))
    def run(raw):
        check_trace(raw, where)

    run()


# ------------------------------------------------------------------ a few through the command line

def _cli_contract(p, path, codes=(0, 1, 2)) -> None:
    assert p.returncode in codes, (p.returncode, p.stdout[-500:], p.stderr)
    assert "Traceback" not in p.stderr and "INTERNAL ERROR" not in p.stderr
    if p.returncode == 2:
        assert p.stderr.count("\n") == 1 and p.stderr.startswith(f"klpmodel: error: {path}"), p.stderr


def test_fuzz_through_the_command_line(tmp_path, traces):
    """A handful of each kind as a user runs them: check and verify on specs, explain, replay
    and kselftest on traces."""
    specs, trace_files = [], []

    @seed(int(SEED or 0))
    @settings(max_examples=max(1, int(8 * SCALE)), derandomize=SEED is None, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(spec_texts().map(str.encode), st.tuples(st.sampled_from(SHIPPED), MUTATIONS)
                     .map(lambda x: _mutate(x[0].read_bytes(), x[1]))), mutated_trace(traces))
    def collect(spec_raw, trace_raw):
        specs.append(spec_raw)
        trace_files.append(trace_raw)

    collect()
    for n, raw in enumerate(specs):
        path = tmp_path / f"s{n}.toml"
        path.write_bytes(raw)
        for command in (["check"], ["verify", "--depth", "2", "--timeout", "20"]):
            p = cli(command[0], str(path), *command[1:], timeout=120)
            _cli_contract(p, path, (0, 1, 2, 3) if command[0] == "verify" else (0, 2))
            if p.returncode == 3:
                assert "timeout" in p.stdout, p.stdout
    for n, raw in enumerate(trace_files):
        path = tmp_path / f"t{n}.trace.json"
        path.write_bytes(raw)
        for command in ("explain", "replay", "kselftest"):
            p = cli(command, str(path), timeout=120)
            _cli_contract(p, path, (0, 1, 2, 3) if command == "replay" else (0, 2))
            if p.returncode == 3:
                assert "result: the trace is no longer possible" in p.stdout, p.stdout + p.stderr

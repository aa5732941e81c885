"""The command line: `klpmodel verify|check`. One exit point per command, exit codes per the
contract: 0 holds, 1 violation, 2 bad spec or usage, 3 unknown (and internal errors)."""
from __future__ import annotations

import re
import sys
import time
from enum import Enum
from pathlib import Path
from typing import NoReturn, Protocol

import typer

from . import __version__
from .deadline import INTERRUPTED
from .errors import InternalError, Stopped, UserError, printable

STARTED = time.monotonic()          # --timeout counts from here (close to the start of the process)

# what an option's value is, in --help (typer would show the Python type: <int>, <list[str]>)
METAVARS = {"depth": "N", "timeout": "SECONDS", "max_k": "K", "property": "PROPERTY", "run": "OPS",
            "run_file": "FILE", "spec": "FILE", "output": "FILE"}


class _PlainHelp:
    """Help in the user's words: a flag shows no value (typer 0.26+ shows <bool>, for --help
    too), an option shows what to write (N, SECONDS, PROPERTY), an argument only its name."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for p in self.params:
            self._plain(p)
            _Coercion.install(p)

    def get_help_option(self, ctx):
        return _Coercion.install(self._plain(super().get_help_option(ctx)))

    @staticmethod
    def _plain(p):
        if isinstance(p, typer.core.TyperArgument):
            p.display_type_rich = lambda ctx: None              # "SPEC", not "SPEC <path>"
        elif p is not None and getattr(p, "metavar", None) is None:
            if getattr(p, "is_flag", False) or getattr(p, "count", False):
                p.metavar = ""
            elif p.name in METAVARS:
                p.metavar = METAVARS[p.name]
        return p


_OTHER = object()        # a value _Coercion leaves to typer
_DECIMAL = {int: re.compile(r"-?[0-9]{1,18}"), float: re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,15})?")}


class _Coercion:
    """typer 0.29 coerces every parameter's value, given or not, through a pydantic
    TypeAdapter it builds on first use: importing pydantic and building an adapter for each
    of a command's parameters was a quarter of `klpmodel verify`'s start-up (issue 13). This
    coerces the values that need no validation as typer does (no value; an enum's own value,
    with typer's choice matching; a str; a path, with typer's path checks; a plain decimal
    number; a list of these) and hands every other value to typer's own coercion, built only
    then, so what typer refuses, and how it words it, stays typer's. With a typer that does
    not coerce this way (before 0.29) it is not installed. tests/test_cli.py checks that the
    two agree."""

    def __init__(self, param, choice, path):
        self.param, self.typer = param, None
        self.coerce_choice, self.coerce_path = choice, path

    @classmethod
    def install(cls, p):
        if getattr(p, "_runtime_param", False) is not None or not hasattr(p, "type_descriptor"):
            return p
        try:
            from typer._coercion import build_runtime_param  # noqa: F401  (the fallback)
            from typer._param_types import coerce_cli_choice, coerce_cli_path
        except ImportError:
            return p
        p._runtime_param = cls(p, coerce_cli_choice, coerce_cli_path)
        return p

    def coerce(self, value, param, ctx):
        try:
            out = self.simple(value, ctx)
        except (TypeError, AttributeError):     # typer's private helpers changed: use its own coercion
            out = _OTHER
        if out is not _OTHER:
            return out
        if self.typer is None:
            from typer._coercion import build_runtime_param

            self.typer = build_runtime_param(self.param.type_descriptor)
        return self.typer.coerce(value, param=param, ctx=ctx)

    def simple(self, value, ctx):
        """The value typer would make of `value`, or _OTHER."""
        p, annotation = self.param, self.param.type_descriptor.annotation
        if p.multiple or p.nargs == -1:
            if value is None:
                return ()
            if not isinstance(value, (list, tuple)) or getattr(annotation, "__origin__", None) is not list:
                return _OTHER
            out = [self.leaf(annotation.__args__[0], v, ctx) for v in value]
            return _OTHER if any(v is _OTHER for v in out) else out
        return None if value is None else self.leaf(annotation, value, ctx)

    def leaf(self, annotation, value, ctx):
        info = self.param.type_descriptor.parameter_info
        if info.parser is not None:
            return _OTHER
        if isinstance(annotation, type) and issubclass(annotation, Enum):
            try:
                return self.coerce_choice(value, choices=tuple(annotation), case_sensitive=info.case_sensitive, ctx=ctx)
            except ValueError:
                return _OTHER
        if annotation in _DECIMAL:
            if info.min is not None or info.max is not None:
                return _OTHER
            if type(value) is annotation:
                return value
            return annotation(value) if type(value) is str and _DECIMAL[annotation].fullmatch(value) else _OTHER
        if annotation in (str, bool):
            return value if type(value) is annotation else _OTHER
        if annotation is Path and info.path_type is None and isinstance(value, (str, Path)):
            # pydantic makes Path(value) of a str; typer's path checks (exists=, ...) then as typer runs them
            try:
                return self.coerce_path(Path(value), info, path_type=Path, param=self.param, ctx=ctx)
            except ValueError:              # (a NUL in the path) which typer turns into a usage error
                return _OTHER
        return _OTHER


class _Command(_PlainHelp, typer.core.TyperCommand):
    pass


class _Group(_PlainHelp, typer.core.TyperGroup):
    pass


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, cls=_Group,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Model checker for Linux kernel livepatch state transitions (klp_state).")


class Format(str, Enum):
    text = "text"
    json = "json"


class VerifyFormat(str, Enum):
    text = "text"
    json = "json"
    sarif = "sarif"


class Engine(str, Enum):
    auto = "auto"
    explicit = "explicit"
    z3 = "z3"


class Era(str, Enum):
    insmod = "insmod"
    modprobe = "modprobe"


def _emit(text: str, output: Path | None, protect: list[Path]) -> None:
    """The report on stdout, or in the new file `-o OUTPUT` (never over an input: `protect`)."""
    if output is None:
        sys.stdout.write(text)
        return
    from .files import write_new

    write_new(output, text, "-o", protect=protect)


def _fail(e: Exception) -> NoReturn:
    if isinstance(e, UserError):
        typer.echo(f"klpmodel: error: {e}", err=True)
        raise typer.Exit(2)
    if isinstance(e, InternalError):
        typer.echo(f"klpmodel: INTERNAL ERROR (a bug in klpmodel; please report it with the command and its "
                   f"input): {printable(str(e))}", err=True)
        raise typer.Exit(3)
    raise e


def _with_faults(loaded, faults: list[str] | None):
    """The spec with `--faults` added to its [check] faults (each one known)."""
    from dataclasses import replace

    from .spec import FAULTS

    for f in faults or ():
        if f not in FAULTS:
            raise UserError(f"unknown fault '{f}' for --faults; known faults: {', '.join(FAULTS)}")
    if faults:
        loaded = replace(loaded, faults=tuple(f for f in FAULTS if f in set(faults) | set(loaded.faults)))
    return loaded


def _load(spec: Path, faults: list[str] | None = None, kernel: str | None = None):
    """Load a spec; `--faults` adds optional faults to the spec's [check] faults, `--kernel`
    runs it under another kernel profile than its `kernel` key names."""
    from dataclasses import replace

    from .spec import load_spec

    loaded = load_spec(spec)
    loaded = _with_faults(loaded, faults)
    if kernel is not None and kernel != loaded.kernel:
        loaded = replace(loaded, kernel=_profile(kernel), file_kernel=loaded.kernel)
    from .kernel import PROFILES

    PROFILES[loaded.kernel].refuse(loaded)          # a key this profile gives no meaning (replace, replace_set)
    return loaded


def _profile(name: str) -> str:
    from .kernel import PROFILES

    if name not in PROFILES:
        raise UserError(f"unknown kernel profile '{name}' for --kernel; known profiles: {', '.join(PROFILES)} "
                        f"('klpmodel profiles' says what each is)")
    return name


FAULTS_HELP = "Also explore this optional fault (repeatable): patching (klp_patch_object fails)."
KERNEL_HELP = "Run under this kernel profile instead of the spec's `kernel` (see 'klpmodel profiles')."
KERNELS_HELP = ("Run under this kernel profile instead of the spec's `kernel` (see 'klpmodel profiles'); "
                "given twice or more, run under each and lead with the differences (docs/compare.md).")
TIMEOUT_HELP = ("Give up after this many seconds, loading the spec included (exit 3 with what was found); "
                "Ctrl-C stops the same way.")
MAX_STATES_HELP = ("The explicit engine's budget of distinct states (default 1,000,000, about 3 GB of memory): "
                   "past it --engine auto goes on with Z3 and --engine explicit stops (exit 3, unknown).")


def _deadline(timeout: float | None):
    """The command's one Deadline (docs/design.md): --timeout, and Ctrl-C."""
    import math

    from .deadline import Deadline

    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise UserError(f"--timeout must be a positive number of seconds, not {timeout}; e.g. --timeout 60")
    return Deadline(timeout, start=STARTED)


def _stopped(e: Stopped, what: str) -> NoReturn:
    """Stopped before there was anything to report (loading the spec, building the model)."""
    typer.echo(f"klpmodel: unknown: {e.reason} while {what}; nothing was checked", err=True)
    raise typer.Exit(3)


def _version(value: bool):
    if value:
        typer.echo(f"klpmodel {__version__}")
        raise typer.Exit(0)


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")):
    """Check every sequence of livepatch operations up to a bound against the kernel's rules."""


@app.command()
def verify(
    spec: Path = typer.Argument(..., metavar="SPEC", help="The spec (.toml) of a livepatch series."),
    depth: int | None = typer.Option(None, "--depth", "-d", help="Longest operation sequence explored (default: the spec's check.depth, else 8)."),
    property: list[str] | None = typer.Option(None, "--property", "-p", help="Check only this property (repeatable): "
                                              "version-order, revert-restores, disable-restores, error-cleanup, "
                                              "no-use-after-free, no-double-free, no-null-deref, no-leak, recoverable; with shadow "
                                              "variables: shadow-leak, shadow-use-after-free, shadow-duplicate, "
                                              "disable-keeps-shared, shadow-layout, shadow-orphan."),
    timeout: float | None = typer.Option(None, "--timeout", help=TIMEOUT_HELP),
    format: VerifyFormat = typer.Option(VerifyFormat.text, "--format", "-f",
                                        help="text, json (docs/schemas/verify-report.schema.json) or sarif "
                                             "(SARIF 2.1.0, for code-scanning tools: docs/ci.md)."),
    engine: Engine = typer.Option(Engine.auto, "--engine", "-e",
                                  help="explicit (breadth-first), z3 (bounded model checking) or auto."),
    max_states: int = typer.Option(1_000_000, "--max-states", metavar="N", help=MAX_STATES_HELP),
    stats: bool = typer.Option(False, "--stats", help="Add timings (output is then not byte-for-byte reproducible)."),
    max_counterexamples: int = typer.Option(1, "--max-counterexamples", "-n", metavar="N",
                                            help="Report up to N (at most 100) shortest traces per violated property, each a different "
                                                 "operation sequence; the report says when a property has more."),
    out: Path | None = typer.Option(None, "--out", "-o", metavar="DIR",
                                    help="Write each counterexample as a trace file (JSON and ITF) into DIR."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the verdict line (text format)."),
    faults: list[str] | None = typer.Option(None, "--faults", metavar="FAULT", help=FAULTS_HELP),
    kernels: list[str] | None = typer.Option(None, "--kernel", metavar="PROFILE", help=KERNELS_HELP),
):
    """Explore every operation sequence up to the depth; report the shortest counterexample per violated property."""
    if kernels is not None and len(kernels) > 1:
        _verify_side_by_side(spec, kernels, depth=depth, property=property, timeout=timeout, format=format,
                             engine=engine, max_states=max_states, stats=stats,
                             max_counterexamples=max_counterexamples, out=out, quiet=quiet, faults=faults)
    kernel = kernels[0] if kernels else None
    try:
        from . import report
        from .deadline import watch
        from .verify import verify as run

        deadline = _deadline(timeout)
        if out is not None:
            from .traces import check_out_dir
            check_out_dir(out)               # before the search: a write failure must not lose the verdict
        from .term import progress, write

        result = None
        try:
            with watch(deadline):
                loaded = _load(spec, faults, kernel)
                with progress(f"verifying {printable(str(spec))} up to depth {depth or loaded.depth}") as show:
                    def done(eng, d, states):
                        show(f"{eng}: depth {d} done" + (f", {states:,} states" if states is not None else ""))
                    result = run(loaded, depth=depth, properties=property, timeout=deadline, engine=engine.value,
                                 max_counterexamples=max_counterexamples, progress=done, max_states=max_states)
        except Stopped as e:
            if result is None:
                _stopped(e, "loading the spec")
        written, failed = [], None
        if out is not None:
            from .traces import write_all
            try:
                written = write_all(result, out)
            except UserError as e:
                failed = e                       # the verdict first, then why the files are missing
        if format is VerifyFormat.json:
            sys.stdout.write(report.json_text(result, stats, written))
        elif format is VerifyFormat.sarif:
            from .sarif import sarif_text
            sys.stdout.write(sarif_text(result))
        else:
            write(report.summary(result)[0] + "\n" if quiet else report.text(result, stats, written))
        if failed is not None:
            _fail(failed)
    except (UserError, InternalError) as e:
        _fail(e)
    raise typer.Exit(result.exit_code)


def _verify_side_by_side(spec: Path, kernels: list[str], *, depth, property, timeout, format, engine, max_states,
                         stats, max_counterexamples, out, quiet, faults) -> NoReturn:
    """verify with --kernel given twice or more (docs/compare.md): each profile's run, the
    comparison first. Exit code: the worst of the runs that ran (3 if one is unknown or a
    profile was not checked before the --timeout, else 1 if one has a violation, else 0); 2
    if no profile can express the spec. --out DIR writes each profile's trace files into
    DIR/PROFILE."""
    import dataclasses

    try:
        from . import compare as cmp
        from . import report
        from .deadline import watch
        from .term import progress, write
        from .verify import verify as run

        deadline = _deadline(timeout)
        results: dict = {}
        specs: dict = {}
        try:
            with watch(deadline):
                loaded, specs, columns = _loaded_per_profile(spec, kernels, faults)
                if property:
                    every = list(dict.fromkeys(p for k in specs for p in cmp.known(k)))
                    bad = next((p for p in property if p not in every), None)
                    if bad is not None:
                        raise UserError(f"unknown property '{bad}'; known properties: {', '.join(every)}")
                    for k in list(specs):             # a not-applicable column, not an error
                        if not any(p in cmp.known(k) for p in property):
                            del specs[k]
                            columns = [dataclasses.replace(col, lacks=tuple(property)) if col.kernel == k else col
                                       for col in columns]
                if out is not None:
                    for k in specs:
                        _profile_dir(out, k, "--out")   # before the search, as with one profile
                for k, s in specs.items():
                    if deadline.expired():              # the next profiles are not checked (said so)
                        break
                    asked = [p for p in property or () if p in cmp.known(k)]
                    with progress(f"verifying {printable(str(spec))} under {k} up to depth {depth or s.depth}") as show:
                        def done(eng, d, states, show=show):
                            show(f"{eng}: depth {d} done" + (f", {states:,} states" if states is not None else ""))
                        results[k] = run(s, depth=depth, properties=asked or None, timeout=deadline,
                                         engine=engine.value, max_counterexamples=max_counterexamples,
                                         progress=done, max_states=max_states)
        except Stopped as e:
            if not results:
                _stopped(e, "loading the spec" if not specs else f"running under {next(iter(specs))}")
        if not results:                                 # the deadline came before the first run
            _stopped(Stopped(deadline.reason), "loading the spec")
        written: dict = {}
        failed = None
        if out is not None:
            from .traces import write_all
            for k, r in results.items():
                try:
                    written[k] = write_all(r, out / k)
                except UserError as e:
                    failed = failed or e        # the verdicts first, then why the files are missing
        columns = [dataclasses.replace(c, result=results.get(c.kernel),
                                       stopped=deadline.reason if c.kernel in specs and c.kernel not in results
                                       else None) for c in columns]
        c = cmp.compare(loaded, columns)
        if format is VerifyFormat.json:
            sys.stdout.write(cmp.json_text(c, stats, written))
        elif format is VerifyFormat.sarif:
            from .sarif import compare_sarif_text
            sys.stdout.write(compare_sarif_text(c))
        elif quiet:
            write(cmp.headline(c) + "\n")
        else:
            above = cmp.shown(c)
            write(cmp.text(c, {k: report.text(r, stats, written.get(k, ()), above.get(k)) for k, r in results.items()}))
        if failed is not None:
            _fail(failed)
    except (UserError, InternalError) as e:
        _fail(e)
    raise typer.Exit(c.exit_code)


def _profile_dir(out: Path, kernel: str, option: str) -> None:
    """Before the work: DIR/PROFILE, where a profile's trace files go, is a directory that
    takes new files, or can be created; a symbolic link there is refused (nothing is written
    through a link)."""
    from .traces import check_out_dir

    if (out / kernel).is_symlink():
        raise UserError(f"{option} {out}: {out / kernel} is a symbolic link; klpmodel does not write through "
                        f"links: remove it or give another directory")
    check_out_dir(out / kernel, option)


@app.command()
def simulate(
    spec: Path = typer.Argument(..., metavar="SPEC", help="The spec (.toml) of a livepatch series."),
    run: str | None = typer.Option(None, "--run", help="Operations separated by ';', e.g. \"load p; complete\"."),
    run_file: Path | None = typer.Option(None, "--run-file", help="A file with one operation per line ('#' comments)."),
    state: bool = typer.Option(False, "--state", help="Print the model state after each operation."),
    era: Era = typer.Option(Era.insmod, "--era", help="Selftest wording: insmod (6.8+) or modprobe (5.1-6.7)."),
    kernel: str | None = typer.Option(None, "--kernel", metavar="PROFILE", help=KERNEL_HELP),
):
    """Run one operation sequence and print the kernel log the selftests would capture."""
    try:
        from .kernel import Model
        from .simulate import parse_run
        from .simulate import simulate as run_ops

        if (run is None) == (run_file is None):
            raise UserError("give the operations with exactly one of --run \"OP; OP\" or --run-file FILE")
        model = Model(_load(spec, kernel=kernel))
        if run is not None:                          # (then no --run-file: checked above)
            ops = parse_run(run, model, "--run")
        elif run_file is not None:
            from .files import read_regular

            raw = read_regular(run_file, "run file", 1 << 20, "give a file with one operation per line")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise UserError("not UTF-8 text; give a file with one operation per line, in UTF-8",
                                path=str(run_file), line=raw[:e.start].count(b"\n") + 1) from None
            ops = parse_run(text, model, str(run_file), lines=True)
        log, violations = run_ops(model, ops, show_state=state, era=era.value)
        for line in log:
            typer.echo(line)
        for prop, where in violations:
            typer.echo(f"# violation: {prop} ({where})")
    except UserError as e:
        _fail(e)


@app.command()
def conformance(
    folder: Path | None = typer.Argument(None, metavar="DIR",
                                         help="Where the scenario files are (default: the selftest scenarios shipped with klpmodel)."),
    kernel: str | None = typer.Option(None, "--kernel", metavar="PROFILE", help=KERNEL_HELP),
):
    """Run every selftest scenario and compare the simulated log with the kernel's expected one."""
    try:
        from .conformance import run_all
        from .examples import selftests_dir

        code = run_all(selftests_dir() if folder is None else folder, typer.echo, _profile(kernel) if kernel else None)
    except (UserError, InternalError) as e:
        _fail(e)
    raise typer.Exit(code)


class GraphFormat(str, Enum):
    dot = "dot"
    mermaid = "mermaid"
    svg = "svg"


@app.command()
def graph(
    spec: Path = typer.Argument(None, metavar="SPEC", help="The spec whose reachable states to draw (--states is then the default)."),
    lifecycle_: bool = typer.Option(False, "--lifecycle", help="The kernel's per-patch lifecycle (the rules' graph); no SPEC."),
    states: bool = typer.Option(False, "--states", help="The states of SPEC reachable within --depth operations (the default with a SPEC)."),
    depth: int | None = typer.Option(None, "--depth", "-d", help="Cut the state space at this many operations."),
    format: GraphFormat = typer.Option(GraphFormat.dot, "--format", "-f", help="dot, mermaid, or svg (needs Graphviz)."),
    faults: list[str] | None = typer.Option(None, "--faults", metavar="FAULT", help=FAULTS_HELP),
    kernel: str | None = typer.Option(None, "--kernel", metavar="PROFILE", help=KERNEL_HELP),
):
    """Draw the lifecycle graph or a spec's reachable state space (violating transitions in red)."""
    try:
        from . import graph as g

        if lifecycle_ and states:
            raise UserError("give exactly one of --lifecycle or --states")
        if lifecycle_ and spec is not None:
            raise UserError(f"--lifecycle draws the kernel's lifecycle, which needs no spec; drop {spec}, "
                            f"or drop --lifecycle to draw the spec's reachable states")
        if not lifecycle_ and not states:
            if spec is None:
                raise UserError("give a SPEC to draw its reachable states (klpmodel graph SPEC), or --lifecycle "
                                "for the kernel's per-patch lifecycle (exactly one of --lifecycle or --states)")
            states = True                                   # `graph SPEC` means its states
        if states:
            if spec is None:
                raise UserError("--states needs a SPEC: klpmodel graph SPEC [--states]")
            from .kernel import Model

            s = _load(spec, faults, kernel)
            d = s.depth if depth is None else depth
            if d < 1:
                raise UserError(f"--depth must be at least 1, not {d}")
            nodes, edges = g.states_graph(Model(s), d)
            name = s.name
        else:
            profile = _profile(kernel) if kernel else "mainline"
            nodes, edges = g.lifecycle_graph(profile)
            name = f"klp per-patch lifecycle ({profile})"
        if format is GraphFormat.mermaid:
            text = g.mermaid(nodes, edges)
        else:
            text = g.dot(name, nodes, edges)
            if format is GraphFormat.svg:
                text = g.svg(text)
        sys.stdout.write(text)
    except UserError as e:
        _fail(e)


def _trace_and_model(trace: Path, spec: Path | None, kernel: str | None, command: str):
    from .kernel import Model
    from .traces import load_trace, spec_for

    t = load_trace(trace)
    return t, Model(spec_for(t, spec, _profile(kernel) if kernel else None, command=command))


@app.command()
def explain(
    trace: Path = typer.Argument(..., metavar="TRACE.json", help="A trace file written by verify --out."),
    spec: Path | None = typer.Option(None, "--spec", help="The spec (default: the path recorded in the trace)."),
    era: Era = typer.Option(Era.insmod, "--era", help="Selftest wording of the log: insmod (6.8+) or modprobe (5.1-6.7)."),
    kernel: str | None = typer.Option(None, "--kernel", metavar="PROFILE",
                                      help="Check that the trace was found under this kernel profile."),
):
    """Walk through a counterexample: each operation's kernel log, callbacks, statements and changes; what broke."""
    try:
        from .explain import explain as render
        from .term import write

        t, model = _trace_and_model(trace, spec, kernel, "explain")
        write(render(model, t, era.value))
    except UserError as e:
        _fail(e)


@app.command()
def replay(
    trace: Path = typer.Argument(..., metavar="TRACE.json", help="A trace file written by verify --out."),
    spec: Path | None = typer.Option(None, "--spec", help="Run it against this (edited) spec instead of the recorded one."),
    format: Format = typer.Option(Format.text, "--format", "-f", help="Output format."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the result line (text format)."),
    kernel: str | None = typer.Option(None, "--kernel", metavar="PROFILE",
                                      help="Check that the trace was found under this kernel profile."),
):
    """Run a saved counterexample again: still violated (exit 1), fixed (0), or no longer possible (3)."""
    try:
        from .explain import replay as run
        from .explain import replay_json
        from .term import write

        t, model = _trace_and_model(trace, spec, kernel, "replay")
        result = run(model, t)
        if format is Format.json:
            sys.stdout.write(replay_json(result))
        else:
            text = result.text
            write(next(x for x in text.splitlines() if x.startswith("result: ")) + "\n" if quiet else text)
    except UserError as e:
        _fail(e)
    raise typer.Exit(result.exit_code)


@app.command()
def kselftest(
    trace: Path = typer.Argument(..., metavar="TRACE.json", help="A trace file written by verify --out."),
    output: Path | None = typer.Option(None, "-o", "--output", metavar="FILE", help="Write the script here (default: print it)."),
    spec: Path | None = typer.Option(None, "--spec", help="The spec (default: the path recorded in the trace)."),
    era: Era = typer.Option(Era.insmod, "--era", help="insmod (selftests 6.8+, test_modules/*.ko) or modprobe (5.1-6.7)."),
):
    """Print a tools/testing/selftests/livepatch-style script that replays the counterexample on a test VM."""
    try:
        from .kselftest import script

        t, model = _trace_and_model(trace, spec, None, "kselftest")
        text = script(model, t, era.value)
        _emit(text, output, [trace, Path(model.spec.path)])
        if output is not None:
            typer.echo(f"wrote {output}", err=True)
    except UserError as e:
        _fail(e)


@app.command("import")
def import_c(
    files: list[Path] = typer.Argument(..., metavar="FILE.c", help="Livepatch modules' C source in the series' order (target modules' too, optionally)."),
    output: Path | None = typer.Option(None, "-o", "--output", metavar="SPEC.toml", help="Write the spec here (default: print it)."),
):
    """Write a spec from livepatch modules' C source: exit 0 all understood, 1 with warnings (FILE:LINE: not understood: ...), 2 unreadable."""
    try:
        from .cimport import import_files, write_spec

        text, warnings, inputs = import_files(files)
        if output is None:
            sys.stdout.write(text)
        else:
            write_spec(output, text, inputs)
        for w in warnings:
            typer.echo(w, err=True)
        if warnings:
            typer.echo(f"klpmodel import: {len(warnings)} warning(s): the spec has 'log \"TODO ...\"' placeholders "
                       "or guesses to finish by hand (docs/import.md)", err=True)
        elif output is not None:
            typer.echo(f"wrote {output}", err=True)
    except (UserError, InternalError) as e:
        _fail(e)
    raise typer.Exit(1 if warnings else 0)


@app.command()
def profiles():
    """List the kernel profiles (`kernel = "..."` in a spec, --kernel on the commands)."""
    from .kernel import PROFILES

    width = max(map(len, PROFILES))
    for name, rules in PROFILES.items():
        typer.echo(f"{name:<{width}}  {rules.summary}")


@app.command()
def check(spec: Path = typer.Argument(..., metavar="SPEC", help="The spec (.toml) to validate.")):
    """Only validate the spec: exit 0 if it is well-formed, 2 with FILE:LINE: message if not."""
    try:
        from .spec import load_spec

        s = load_spec(spec)
        from .kernel import PROFILES

        PROFILES[s.kernel].refuse(s)                # under the spec's own kernel profile
    except UserError as e:
        _fail(e)
    from .words import plural

    typer.echo(f"{spec}: ok ({plural(len(s.patches), 'patch')}, {plural(len(s.states), 'state')}, "
               f"{plural(len(s.modules), 'target module')})")


class ProveMethod(str, Enum):
    auto = "auto"
    induction = "induction"
    exhaustion = "exhaustion"
    both = "both"


@app.command()
def prove(
    spec: Path = typer.Argument(..., metavar="SPEC", help="The spec (.toml) of a livepatch series."),
    max_k: int = typer.Option(12, "--max-k", "-k", help="Longest induction step tried; violations are searched at least this deep."),
    property: list[str] | None = typer.Option(None, "--property", "-p", help="Prove only this property (repeatable): "
                                              "version-order, revert-restores, disable-restores, error-cleanup, "
                                              "no-use-after-free, no-double-free, no-null-deref, no-leak."),
    timeout: float | None = typer.Option(None, "--timeout", help=TIMEOUT_HELP),
    format: Format = typer.Option(Format.text, "--format", "-f", help="Output format."),
    method: ProveMethod = typer.Option(ProveMethod.auto, "--method",
                                       help="auto (exhaustion while the state space is small, else k-induction), "
                                            "induction, exhaustion, or both (each property both ways, cross-checked)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the verdict line (text format)."),
    faults: list[str] | None = typer.Option(None, "--faults", metavar="FAULT", help=FAULTS_HELP),
    kernel: str | None = typer.Option(None, "--kernel", metavar="PROFILE", help=KERNEL_HELP),
):
    """Prove the properties for operation sequences of ANY length: exit 0 proved, 1 violated, 3 not proved/unknown."""
    try:
        from . import prove as pr
        from .deadline import watch

        deadline = _deadline(timeout)
        from .term import progress, write

        result = None
        try:
            with watch(deadline), progress(f"proving {printable(str(spec))}"):
                result = pr.prove(_load(spec, faults, kernel), properties=property, max_k=max_k, timeout=deadline,
                                  method=method.value)
        except Stopped as e:
            if result is None:
                _stopped(e, "loading the spec")
        if format is Format.json:
            sys.stdout.write(pr.json_text(result))
        else:
            text = pr.text(result)
            write(text.splitlines()[1] + "\n" if quiet else text)
    except (UserError, InternalError) as e:
        _fail(e)
    raise typer.Exit(result.exit_code)


@app.command("prove-theory")
def prove_theory(
    where: Path | None = typer.Argument(None, metavar="DIR",
                                        help="A folder of theorem files, or one file (default: the theorems shipped with klpmodel)."),
    stats: bool = typer.Option(False, "--stats", help="Add timings."),
):
    """Check the theorems about the kernel's rules in proofs/: exit 0 all proved, 1 if one is not."""
    try:
        from . import theory
        from .examples import data_dir

        results = theory.run(data_dir("proofs") if where is None else where)
        sys.stdout.write(theory.text(results, stats))
    except (UserError, InternalError) as e:
        _fail(e)
    raise typer.Exit(0 if all(r.outcome.verdict == "proved" for r in results) else 1)


@app.command()
def examples(
    copy: Path | None = typer.Option(None, "--copy", metavar="DIR",
                                     help="Copy the example specs (DIR/specs) and theorems (DIR/proofs) into DIR; "
                                          "never overwrites a file."),
):
    """List the example specs, selftest scenarios and theorems shipped with klpmodel, or copy them out."""
    try:
        from . import examples as ex

        if copy is None:
            sys.stdout.write(ex.listing())
        else:
            written = ex.copy(copy)
            typer.echo(f"copied {len(written)} file{'s' if len(written) != 1 else ''} into {copy} "
                       f"(specs/, proofs/); try: cd {copy} && klpmodel verify specs/selftest-state.toml")
    except (UserError, InternalError) as e:
        _fail(e)


class _ClickError(Protocol):
    """click's usage errors (typer vendors its own click from 0.29: no one class to name)."""
    def format_message(self) -> str: ...


def _plain(e: _ClickError) -> str:
    """A usage error in plain words, the same whichever typer runs: typer 0.29 validates values
    with pydantic and words its errors so ("Value error, 'xml' is not one of ...", "Input
    should be a valid integer, unable to parse string as an integer"); click said "'abc' is
    not a valid integer"."""
    msg = e.format_message().rstrip(".").replace("Value error, ", "")
    msg = msg.replace("is not a valid integer", "is not a whole number").replace("is not a valid float", "is not a number")
    cause = getattr(e, "__cause__", None)
    try:
        err = cause.errors()[0] if cause is not None and callable(getattr(cause, "errors", None)) else None
    except Exception:
        err = None
    if isinstance(err, dict):
        kind = {"int_parsing": "a whole number", "int_from_float": "a whole number", "int_type": "a whole number",
                "float_parsing": "a number", "float_type": "a number", "bool_parsing": "true or false",
                "path_type": "a path"}.get(str(err.get("type")))
        head, sep, _ = msg.partition(": ")
        if kind and sep:
            msg = f"{head}: {err.get('input')!r} is not {kind}"
    return msg


def run() -> None:
    """Entry point. Exits with os._exit once the output is flushed: tearing down tens of
    thousands of Z3 terms one finalizer at a time would add ~0.15 s to every run."""
    import os

    for info in app.registered_commands:                # every command gets _Command's help
        if info.cls in (None, typer.core.TyperCommand):
            info.cls = _Command
    try:
        rv = app(prog_name="klpmodel", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
        if code == 130:                             # typer's answer to Ctrl-C outside a search
            print(f"klpmodel: stopped: {INTERRUPTED}", file=sys.stderr)
            code = 3
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except (Stopped, KeyboardInterrupt) as e:       # Ctrl-C outside a search: nothing partial to print
        code = 3
        print(f"klpmodel: stopped: {e.reason if isinstance(e, Stopped) else INTERRUPTED}", file=sys.stderr)
    except Exception as e:
        code = _top_level(e)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:                         # the reader went away (| head): not an error of ours
        pass
    os._exit(code)


def _top_level(e: Exception) -> int:
    """An exception no command handled: click's usage errors (exit 2), Ctrl-C as click
    reports it (Abort, exit 3), anything else a bug of klpmodel (exit 3, never 1: 1 means
    a violation). KLPMODEL_DEBUG=1 shows the traceback."""
    import os

    if type(e).__name__ == "Abort":
        print(f"klpmodel: stopped: {INTERRUPTED}", file=sys.stderr)
        return 3
    if isinstance(e, UserError):
        print(f"klpmodel: error: {e}", file=sys.stderr)
        return 2
    if hasattr(e, "format_message") and hasattr(e, "exit_code"):
        if type(e).__name__ == "NoArgsIsHelpError":
            print(e.format_message())
        else:                                       # click's usage errors, as one line
            ctx = getattr(e, "ctx", None)
            where = ctx.command_path if ctx is not None else "klpmodel"
            print(f"klpmodel: error: {printable(_plain(e))}; see '{where} --help'", file=sys.stderr)
        return e.exit_code
    if isinstance(e, BrokenPipeError):
        return 0
    if os.environ.get("KLPMODEL_DEBUG"):
        import traceback
        traceback.print_exception(e)
    text = printable(f"{type(e).__name__}: {e}")
    print(f"klpmodel: INTERNAL ERROR (a bug in klpmodel; please report it with the command and its input): "
          f"{text[:300]}", file=sys.stderr)
    return 3


@app.command()
def review(
    spec: Path = typer.Argument(..., metavar="SPEC", help="The spec (.toml) of a livepatch series."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the review to this file (overwritten) instead of stdout."),
    depth: int | None = typer.Option(None, "--depth", "-d", help="Longest operation sequence explored (default: the spec's check.depth, else 8)."),
    engine: Engine = typer.Option(Engine.auto, "--engine", "-e", help="Engine for the property verdicts (pairs and coverage always use explicit)."),
    stats: bool = typer.Option(False, "--stats", help="Add timings (output is then not byte-for-byte reproducible)."),
    traces: Path | None = typer.Option(None, "--traces", metavar="DIR",
                                       help="Also write the trace file (JSON and ITF) of every violation shown into DIR."),
    faults: list[str] | None = typer.Option(None, "--faults", metavar="FAULT", help=FAULTS_HELP),
    kernels: list[str] | None = typer.Option(None, "--kernel", metavar="PROFILE", help=KERNELS_HELP),
    full: bool = typer.Option(False, "--all", help="Show every unsafe pair, path group and list item in full "
                                                   "(by default the review caps them and says what it left out)."),
):
    """A design review of the series in Markdown: patches, compatibility matrix, upgrade and
    downgrade paths, property verdicts, coverage, lifecycle."""
    if kernels is not None and len(kernels) > 1:
        _review_side_by_side(spec, kernels, output=output, depth=depth, engine=engine, stats=stats, traces=traces,
                             faults=faults, full=full)
    kernel = kernels[0] if kernels else None
    try:
        from . import review as rv

        if output is not None:
            from .files import check_writable

            check_writable(output, "-o", protect=[spec])      # before the work, and never over the spec
        if depth is not None and depth < 1:
            raise UserError(f"--depth must be at least 1, not {depth}; e.g. --depth 8")
        s = _load(spec, faults, kernel)
        command = "klpmodel review " + str(spec) + (f" --depth {depth}" if depth is not None else "") \
            + (f" --engine {engine.value}" if engine is not Engine.auto else "") \
            + "".join(f" --faults {f}" for f in faults or ()) + (f" --kernel {kernel}" if kernel else "") \
            + (" --all" if full else "")
        if traces is not None:
            from .traces import check_out_dir
            check_out_dir(traces, "--traces")
            command += f" --traces {traces}"
        result = rv.review(s, depth=depth, engine=engine.value, full=full)
        if traces is not None:
            rv.write_traces(result, traces)
        text = rv.markdown(result, stats=stats, command=command)
        _emit(text, output, [spec])
    except (UserError, InternalError) as e:
        _fail(e)


def _loaded_per_profile(spec: Path, kernels: list[str], faults: list[str] | None):
    """The spec once, and for each profile either the spec under it or the loader's refusal
    (a key the profile gives no meaning): (loaded, {kernel: spec}, [Column])."""
    from dataclasses import replace

    from . import compare as cmp
    from .kernel import PROFILES
    from .spec import load_spec

    for k in kernels:
        _profile(k)
    dup = next((k for n, k in enumerate(kernels) if k in kernels[:n]), None)
    if dup is not None:
        raise UserError(f"--kernel {dup} is given twice; give each profile once")
    loaded = load_spec(spec)
    loaded = _with_faults(loaded, faults)
    specs, columns = {}, []
    for k in kernels:
        s = loaded if k == loaded.kernel else replace(loaded, kernel=k, file_kernel=loaded.kernel)
        try:
            PROFILES[k].refuse(s)
        except UserError as e:
            columns.append(cmp.Column(k, cannot=str(e)))
            continue
        specs[k] = s
        columns.append(cmp.Column(k))
    if not specs:
        for col in columns:
            typer.echo(f"klpmodel: error: under {col.kernel}: {col.cannot}", err=True)
        raise typer.Exit(2)
    return loaded, specs, columns


def _review_side_by_side(spec: Path, kernels: list[str], *, output, depth, engine, stats, traces, faults,
                         full) -> NoReturn:
    """review with --kernel given twice or more (docs/compare.md): the comparison first,
    then each profile's review. Exit 0 (as review), 2 if no profile can express the spec."""
    try:
        from . import compare as cmp
        from . import review as rv

        if output is not None:
            from .files import check_writable

            check_writable(output, "-o", protect=[spec])
        if depth is not None and depth < 1:
            raise UserError(f"--depth must be at least 1, not {depth}; e.g. --depth 8")
        loaded, specs, columns = _loaded_per_profile(spec, kernels, faults)
        if traces is not None:
            for k in specs:
                _profile_dir(traces, k, "--traces")     # each profile's trace files in DIR/PROFILE
        base = "klpmodel review " + str(spec) + (f" --depth {depth}" if depth is not None else "") \
            + (f" --engine {engine.value}" if engine is not Engine.auto else "") \
            + "".join(f" --faults {f}" for f in faults or ())
        command = base + "".join(f" --kernel {k}" for k in kernels) + (" --all" if full else "") \
            + (f" --traces {traces}" if traces is not None else "")
        reviews = {}
        for k, s in specs.items():
            reviews[k] = rv.review(s, depth=depth, engine=engine.value, full=full)
            if traces is not None:
                rv.write_traces(reviews[k], traces / k)
        import dataclasses

        columns = [dataclasses.replace(c, result=reviews[c.kernel].result) if c.kernel in reviews else c
                   for c in columns]
        c = cmp.compare(loaded, columns)
        texts = {}
        for k, shown in cmp.shown_in_markdown(c).items():
            reviews[k].shown_above.update(shown)          # each trace once: under its difference
        for k in specs:
            texts[k] = rv.markdown(reviews[k], stats=stats, command=base + f" --kernel {k}" + (" --all" if full else "")
                                   + (f" --traces {traces / k}" if traces is not None else ""))
        text = cmp.markdown(c, texts, command)
        _emit(text, output, [spec])
    except (UserError, InternalError) as e:
        _fail(e)
    raise typer.Exit(0)

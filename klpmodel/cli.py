"""The command line: `klpmodel verify|check`. One exit point per command, exit codes per the
contract: 0 holds, 1 violation, 2 bad spec or usage, 3 unknown (and internal errors)."""
from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer

from . import __version__
from .errors import InternalError, UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Model checker for Linux kernel livepatch state transitions (klp_state).")


class Format(str, Enum):
    text = "text"
    json = "json"


class Engine(str, Enum):
    auto = "auto"
    explicit = "explicit"
    z3 = "z3"


class Era(str, Enum):
    insmod = "insmod"
    modprobe = "modprobe"


def _fail(e: Exception) -> None:
    if isinstance(e, UserError):
        typer.echo(f"klpmodel: error: {e}", err=True)
        raise typer.Exit(2)
    if isinstance(e, InternalError):
        typer.echo(f"klpmodel: INTERNAL ERROR (a bug in klpmodel, please report it): {e}", err=True)
        raise typer.Exit(3)
    raise e


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
    depth: int | None = typer.Option(None, "--depth", "-d", help="Longest operation sequence explored (default: [check] depth, else 8)."),
    property: list[str] | None = typer.Option(None, "--property", "-p", help="Check only this property (repeatable)."),
    timeout: float | None = typer.Option(None, "--timeout", help="Give up after this many seconds (exit 3 with what was found)."),
    format: Format = typer.Option(Format.text, "--format", "-f", help="Output format."),
    engine: Engine = typer.Option(Engine.auto, "--engine", "-e",
                                  help="explicit (breadth-first), z3 (bounded model checking) or auto."),
    stats: bool = typer.Option(False, "--stats", help="Add timings (output is then not byte-for-byte reproducible)."),
):
    """Explore every operation sequence up to the depth; report the shortest counterexample per violated property."""
    try:
        from . import report
        from .spec import load_spec
        from .verify import verify as run

        if timeout is not None and timeout <= 0:
            raise UserError(f"--timeout must be a positive number of seconds, not {timeout}")
        result = run(load_spec(spec), depth=depth, properties=property, timeout=timeout, engine=engine.value)
        sys.stdout.write(report.json_text(result, stats) if format is Format.json else report.text(result, stats))
    except (UserError, InternalError) as e:
        _fail(e)
    raise typer.Exit(result.exit_code)


@app.command()
def simulate(
    spec: Path = typer.Argument(..., metavar="SPEC", help="The spec (.toml) of a livepatch series."),
    run: str | None = typer.Option(None, "--run", help="Operations separated by ';', e.g. \"load p; complete\"."),
    run_file: Path | None = typer.Option(None, "--run-file", help="A file with one operation per line ('#' comments)."),
    state: bool = typer.Option(False, "--state", help="Print the model state after each operation."),
    era: Era = typer.Option(Era.insmod, "--era", help="Selftest wording: insmod (6.8+) or modprobe (5.1-6.7)."),
):
    """Run one operation sequence and print the kernel log the selftests would capture."""
    try:
        from .kernel import Model
        from .simulate import parse_run
        from .simulate import simulate as run_ops
        from .spec import load_spec

        if (run is None) == (run_file is None):
            raise UserError("give the operations with exactly one of --run \"OP; OP\" or --run-file FILE")
        model = Model(load_spec(spec))
        if run_file is not None:
            try:
                text = run_file.read_text()
            except OSError as e:
                raise UserError(f"cannot read: {e.strerror}", path=str(run_file)) from None
            ops = parse_run(text, model, str(run_file), lines=True)
        else:
            ops = parse_run(run, model, "--run")
        log, violations = run_ops(model, ops, show_state=state, era=era.value)
        for line in log:
            typer.echo(line)
        for prop, where in violations:
            typer.echo(f"# violation: {prop} ({where})")
    except UserError as e:
        _fail(e)


@app.command()
def conformance(
    folder: Path = typer.Argument(Path("specs/selftests"), metavar="DIR", help="Where the scenario files are."),
):
    """Run every selftest scenario and compare the simulated log with the kernel's expected one."""
    try:
        from .conformance import run_all

        code = run_all(folder, typer.echo)
    except UserError as e:
        _fail(e)
    raise typer.Exit(code)


class GraphFormat(str, Enum):
    dot = "dot"
    mermaid = "mermaid"
    svg = "svg"


@app.command()
def graph(
    spec: Path = typer.Argument(None, metavar="[SPEC]", help="The spec (needed for --states)."),
    lifecycle_: bool = typer.Option(False, "--lifecycle", help="The kernel's per-patch lifecycle (the rules' graph)."),
    states: bool = typer.Option(False, "--states", help="The states of SPEC reachable within --depth operations."),
    depth: int | None = typer.Option(None, "--depth", "-d", help="Cut the state space at this many operations."),
    format: GraphFormat = typer.Option(GraphFormat.dot, "--format", "-f", help="dot, mermaid, or svg (needs Graphviz)."),
):
    """Draw the lifecycle graph or a spec's reachable state space (violating transitions in red)."""
    try:
        from . import graph as g

        if lifecycle_ == states:
            raise UserError("give exactly one of --lifecycle or --states")
        if states:
            if spec is None:
                raise UserError("--states needs a SPEC")
            from .kernel import Model
            from .spec import load_spec

            s = load_spec(spec)
            d = s.depth if depth is None else depth
            if d < 1:
                raise UserError(f"--depth must be at least 1, not {d}")
            nodes, edges = g.states_graph(Model(s), d)
            name = s.name
        else:
            nodes, edges = g.lifecycle_graph()
            name = "klp per-patch lifecycle"
        if format is GraphFormat.mermaid:
            text = g.mermaid(nodes, edges)
        else:
            text = g.dot(name, nodes, edges)
            if format is GraphFormat.svg:
                text = g.svg(text)
        sys.stdout.write(text)
    except UserError as e:
        _fail(e)


@app.command()
def check(spec: Path = typer.Argument(..., metavar="SPEC", help="The spec (.toml) to validate.")):
    """Only validate the spec: exit 0 if it is well-formed, 2 with FILE:LINE: message if not."""
    try:
        from .spec import load_spec

        s = load_spec(spec)
    except UserError as e:
        _fail(e)
    typer.echo(f"{spec}: ok ({len(s.patches)} patches, {len(s.states)} states, {len(s.modules)} target modules)")


class ProveMethod(str, Enum):
    auto = "auto"
    induction = "induction"
    exhaustion = "exhaustion"
    both = "both"


@app.command()
def prove(
    spec: Path = typer.Argument(..., metavar="SPEC", help="The spec (.toml) of a livepatch series."),
    max_k: int = typer.Option(12, "--max-k", "-k", help="Longest induction step tried; violations are searched at least this deep."),
    property: list[str] | None = typer.Option(None, "--property", "-p", help="Prove only this property (repeatable)."),
    timeout: float | None = typer.Option(None, "--timeout", help="Give up after this many seconds (exit 3)."),
    format: Format = typer.Option(Format.text, "--format", "-f", help="Output format."),
    method: ProveMethod = typer.Option(ProveMethod.auto, "--method",
                                       help="auto (exhaustion while the state space is small, else k-induction), "
                                            "induction, exhaustion, or both (each property both ways, cross-checked)."),
):
    """Prove the properties for operation sequences of ANY length: exit 0 proved, 1 violated, 3 not proved/unknown."""
    try:
        from . import prove as pr
        from .spec import load_spec

        if timeout is not None and timeout <= 0:
            raise UserError(f"--timeout must be a positive number of seconds, not {timeout}")
        result = pr.prove(load_spec(spec), properties=property, max_k=max_k, timeout=timeout, method=method.value)
        sys.stdout.write(pr.json_text(result) if format is Format.json else pr.text(result))
    except (UserError, InternalError) as e:
        _fail(e)
    raise typer.Exit(result.exit_code)


@app.command("prove-theory")
def prove_theory(
    where: Path = typer.Argument(Path("proofs"), metavar="DIR", help="A folder of theorem files, or one file."),
    stats: bool = typer.Option(False, "--stats", help="Add timings."),
):
    """Check the theorems about the kernel's rules in proofs/: exit 0 all proved, 1 if one is not."""
    try:
        from . import theory

        results = theory.run(where)
        sys.stdout.write(theory.text(results, stats))
    except UserError as e:
        _fail(e)
    raise typer.Exit(0 if all(r.outcome.verdict == "proved" for r in results) else 1)


def run() -> None:
    """Entry point. Exits with os._exit once the output is flushed: tearing down tens of
    thousands of Z3 terms one finalizer at a time would add ~0.15 s to every run."""
    import os

    try:
        rv = app(prog_name="klpmodel", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except Exception as e:
        if not hasattr(e, "format_message") or not hasattr(e, "exit_code"):
            raise                                   # not a usage error: a bug, show it
        code = e.exit_code
        if type(e).__name__ == "NoArgsIsHelpError":
            print(e.format_message())
        else:                                       # click's usage errors, as one line
            ctx = getattr(e, "ctx", None)
            where = ctx.command_path if ctx is not None else "klpmodel"
            print(f"klpmodel: error: {e.format_message().rstrip('.')}; see '{where} --help'", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

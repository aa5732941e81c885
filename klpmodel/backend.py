"""The tiny value interface the kernel rules are written against.

`kernel.step` is written once. Run with `Concrete`, it is the interpreter (Python ints and
bools, real control flow). Run with `Symbolic`, the same code builds Z3 terms: a `when`
block pushes its condition onto a path condition, and every assignment inside becomes
`If(pc, new, old)`. Loops in the rules are over the spec's static patches, objects and
statements, so both runs visit the same code.

Values are Python ints/bools or (symbolic only) Z3 terms; constants stay Python values as
long as possible so static facts of the spec fold away before Z3 sees them.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from .events import Event, Judged

Val = Any        # a value of the rules: a Python bool or int, or (symbolic runs) a Z3 term
Key = Any        # a choice key (kernel.Choice)
Choose = Callable[[Key], bool]

_ONCE = (None,)


class Backend(Protocol):
    """The value interface kernel.step is written against (Concrete, Tracking, Symbolic)."""

    symbolic: bool
    recording: bool
    pc: Val
    st: dict[str, Val]

    def eq(self, a: Val, b: Val) -> Val: ...
    def ne(self, a: Val, b: Val) -> Val: ...
    def lt(self, a: Val, b: Val) -> Val: ...
    def le(self, a: Val, b: Val) -> Val: ...
    def not_(self, a: Val) -> Val: ...
    def and_(self, *xs: Val) -> Val: ...
    def or_(self, *xs: Val) -> Val: ...
    def ite(self, c: Val, a: Val, b: Val) -> Val: ...
    def add(self, a: Val, b: Val) -> Val: ...
    def sub(self, a: Val, b: Val) -> Val: ...
    def count(self, xs: Iterable[Val]) -> Val: ...
    def get(self, name: str) -> Val: ...
    def set(self, name: str, value: Val) -> None: ...
    def when(self, cond: Val) -> Iterable[None]: ...
    def cases(self, branches: Iterable[tuple[Val, Callable[[], object]]]) -> None: ...
    def choice(self, key: Key) -> Val: ...
    def violate(self, prop: str, cond: Val, where: Any = None, reached: Val = True) -> None: ...
    def judged(self, prop: str, reached: Val) -> None: ...
    def event(self, ev: Event) -> None: ...


class Concrete:
    """Concrete run: conditions are Python bools, `when` runs its body 0 or 1 times."""

    symbolic = False
    pc: Val = True

    def __init__(self, state: dict[str, Val], choose: Choose | None = None, record: bool = True):
        self.st = state
        self.recording = record     # keep the events (reports, logs); a search needs none
        self.choose: Choose = choose or (lambda key: False)
        self.violations: list[tuple[str, Any]] = []
        self.events: list[Event] = []

    # values
    @staticmethod
    def eq(a: Val, b: Val) -> Val: return a == b
    @staticmethod
    def ne(a: Val, b: Val) -> Val: return a != b
    @staticmethod
    def lt(a: Val, b: Val) -> Val: return a < b
    @staticmethod
    def le(a: Val, b: Val) -> Val: return a <= b
    @staticmethod
    def not_(a: Val) -> Val: return not a
    @staticmethod
    def and_(*xs: Val) -> Val: return all(xs)
    @staticmethod
    def or_(*xs: Val) -> Val: return any(xs)
    @staticmethod
    def ite(c: Val, a: Val, b: Val) -> Val: return a if c else b
    @staticmethod
    def add(a: Val, b: Val) -> Val: return a + b
    @staticmethod
    def sub(a: Val, b: Val) -> Val: return a - b
    @staticmethod
    def count(xs: Iterable[Val]) -> Val: return sum(1 for x in xs if x)

    # state
    def get(self, name: str) -> Val: return self.st[name]
    def set(self, name: str, value: Val) -> None: self.st[name] = value

    # control
    def when(self, cond: Val) -> tuple[None, ...]:
        """`for _ in c.when(cond):` runs its body once if cond holds (a tuple: cheaper
        than a generator, and the interpreter needs no clean-up after the body)."""
        return _ONCE if cond else ()

    def cases(self, branches: Iterable[tuple[Val, Callable[[], object]]]) -> None:
        """Mutually exclusive branches [(cond, thunk)]: run the one whose cond holds."""
        for cond, thunk in branches:
            if cond:
                thunk()
                return

    def choice(self, key: Key) -> Val:
        return bool(self.choose(key))

    def violate(self, prop: str, cond: Val, where: Any = None, reached: Val = True) -> None:
        """prop is judged here when `reached` holds, and broken when `cond` holds too."""
        if reached:
            if self.recording:
                self.events.append(Judged(prop))         # coverage: the review's vacuity check
            if cond:
                self.violations.append((prop, where))

    def judged(self, prop: str, reached: Val) -> None:
        """The code prop judges was reached, though the verdict is given later (no-leak)."""
        if reached and self.recording:
            self.events.append(Judged(prop))

    def event(self, ev: Event) -> None:
        if self.recording:
            self.events.append(ev)


class Tracking(Concrete):
    """A concrete run (no events) that notes what it depends on: the variables of the state
    it started from that it read, with their values, in the order first read (`reads`,
    which several runs may share), and the variables it wrote. The rules are deterministic,
    so any state with those values gives the same run (interp.Memo relies on it)."""

    def __init__(self, state: dict[str, Val], choose: Choose | None, reads: dict[str, Val]):
        super().__init__(state, choose, record=False)
        self.reads = reads
        self.written: set[str] = set()
        self._known = set(reads)            # read before, or written by this run

    def get(self, name: str) -> Val:
        if name not in self._known:
            self._known.add(name)
            self.reads[name] = self.st[name]
        return self.st[name]

    def set(self, name: str, value: Val) -> None:
        self.written.add(name)
        self._known.add(name)
        self.st[name] = value


class Symbolic:
    """Symbolic run: builds Z3 terms over the pre-state constants it was given."""

    symbolic = True
    recording = False

    def __init__(self, z3: Any, state: dict[str, Val], widths: dict[str, int]):
        self.z3 = z3
        self.st = state
        self.widths = widths       # bit-vector width of each small-int variable
        self.pc: Val = True      # path condition: guards violations, leaks, choices
        self.wpc: Val = True     # write guard: pc minus conditions a `cases` merge already tests
        self.viol: dict[str, Val] = {}
        self.choices: dict[Key, Val] = {}

    def _t(self, x: Val, width: int = 1) -> Val:
        """A Z3 term for x; Python ints become bit-vectors of at least `width` bits."""
        z3 = self.z3
        if isinstance(x, bool):
            return z3.BoolVal(x)
        if isinstance(x, int):
            return z3.BitVecVal(x, max(width, x.bit_length(), 1))
        return x

    def fit(self, x: Val, width: int) -> Val:
        """x as a bit-vector of exactly `width` bits (values always fit their variable)."""
        z3 = self.z3
        if isinstance(x, (bool, z3.BoolRef)):
            return self._t(x)
        if isinstance(x, int):
            return z3.BitVecVal(x, width)
        if x.size() < width:
            return z3.ZeroExt(width - x.size(), x)
        if x.size() > width:
            return z3.Extract(width - 1, 0, x)
        return x

    def _pair(self, a: Val, b: Val) -> tuple[Val, Val]:
        """Two operands of one sort: bit-vectors zero-extended to the wider width."""
        z3 = self.z3
        if isinstance(a, (bool, z3.BoolRef)) or isinstance(b, (bool, z3.BoolRef)):
            return self._t(a), self._t(b)
        wa = a.size() if isinstance(a, z3.BitVecRef) else max(1, a.bit_length())
        wb = b.size() if isinstance(b, z3.BitVecRef) else max(1, b.bit_length())
        w = max(wa, wb)
        return self.fit(a, w), self.fit(b, w)

    @staticmethod
    def _py(*xs: Val) -> bool:
        return all(isinstance(x, (bool, int)) for x in xs)

    def eq(self, a: Val, b: Val) -> Val:
        if self._py(a, b):
            return a == b
        x, y = self._pair(a, b)
        return x == y

    def ne(self, a: Val, b: Val) -> Val:
        return self.not_(self.eq(a, b))

    def lt(self, a: Val, b: Val) -> Val:
        if self._py(a, b):
            return a < b
        return self.z3.ULT(*self._pair(a, b))

    def le(self, a: Val, b: Val) -> Val:
        if self._py(a, b):
            return a <= b
        return self.z3.ULE(*self._pair(a, b))

    def not_(self, a: Val) -> Val:
        if isinstance(a, bool):
            return not a
        return self.z3.Not(a)

    def and_(self, *xs: Val) -> Val:
        rest = []
        for x in xs:
            if x is False:
                return False
            if x is not True:
                rest.append(x)
        if not rest:
            return True
        return rest[0] if len(rest) == 1 else self.z3.And(*rest)

    def or_(self, *xs: Val) -> Val:
        rest = []
        for x in xs:
            if x is True:
                return True
            if x is not False:
                rest.append(x)
        if not rest:
            return False
        return rest[0] if len(rest) == 1 else self.z3.Or(*rest)

    def ite(self, c: Val, a: Val, b: Val) -> Val:
        if isinstance(c, bool):
            return a if c else b
        if self._py(a, b) and a == b and type(a) is type(b):
            return a
        if isinstance(a, bool) or isinstance(b, bool):
            if a is True and b is False:
                return c
            if a is False and b is True:
                return self.z3.Not(c)
        return self.z3.If(c, *self._pair(a, b))

    def add(self, a: Val, b: Val) -> Val:
        if self._py(a, b):
            return a + b
        if isinstance(b, int) and b < 0:            # only ever to step down a position
            x, y = self._pair(a, -b)
            return x - y
        x, y = self._pair(a, b)
        w = x.size() + 1                            # room for the carry
        return self.fit(x, w) + self.fit(y, w)

    def sub(self, a: Val, b: Val) -> Val:
        """a - b, where a >= b (a position stepping down)."""
        if self._py(a, b):
            return a - b
        x, y = self._pair(a, b)
        return x - y

    def count(self, xs: Iterable[Val]) -> Val:
        total: Val = 0
        for x in xs:
            total = self.add(total, self.ite(x, 1, 0))
        return total

    def get(self, name: str) -> Val:
        return self.st[name]

    def set(self, name: str, value: Val) -> None:
        if name in self.widths and not isinstance(value, int):
            value = self.fit(value, self.widths[name])
        if self.wpc is True:
            self.st[name] = value
        else:
            self.st[name] = self.ite(self.wpc, value, self.st[name])

    def when(self, cond: Val) -> Iterator[None]:
        if cond is False:
            return
        saved = self.pc, self.wpc
        self.pc = self.and_(saved[0], cond)
        self.wpc = self.and_(saved[1], cond)
        try:
            yield
        finally:
            self.pc, self.wpc = saved

    def cases(self, branches: Iterable[tuple[Val, Callable[[], object]]]) -> None:
        """Mutually exclusive branches: each runs on the same input state and the results
        are merged with one `If` per changed variable (no branch reads another's writes,
        which keeps the terms small)."""
        base, saved = self.st, (self.pc, self.wpc)
        results: list[tuple[Val, dict[str, Val]]] = []
        for cond, thunk in branches:
            if cond is False:
                continue
            self.st = dict(base)
            self.pc, self.wpc = self.and_(saved[0], cond), saved[1]
            thunk()
            results.append((cond, self.st))
        self.pc, self.wpc = saved
        merged = dict(base)
        for name, old in base.items():
            val = old
            for cond, st in reversed(results):
                if st[name] is not old:
                    val = self.ite(cond, st[name], val)
            merged[name] = val
        self.st = merged

    def choice(self, key: Key) -> Val:
        if key not in self.choices:
            self.choices[key] = self.z3.Bool("choice:" + "/".join(map(str, key)))
        return self.choices[key]

    def violate(self, prop: str, cond: Val, where: Any = None, reached: Val = True) -> None:
        c = self.and_(self.pc, self.and_(reached, cond))
        if c is not False:
            self.viol[prop] = self.or_(self.viol.get(prop, False), c)

    def judged(self, prop: str, reached: Val) -> None:
        pass

    def event(self, ev: Event) -> None:
        pass

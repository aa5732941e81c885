"""Drive the concrete interpreter one operation at a time (for the kernel-rule tests)."""
from __future__ import annotations

from klpmodel import interp
from klpmodel.events import Callback, Ran
from klpmodel.kernel import PHASES, Model, Op
from klpmodel.spec import load_spec


def parse_op(text: str) -> Op:
    word, _, arg = text.partition(" ")
    return Op(word, arg or None)


class Sim:
    def __init__(self, path, **model_options):
        self.model = Model(load_spec(path), **model_options)
        self.state = interp.initial(self.model)
        self.history = []

    def refusal(self, op: str):
        return interp.refusal(self.model, self.state, parse_op(op))

    def do(self, op: str, fail=()):
        """Run op; `fail` names the sites that fail: (patch, object) for every fallible
        statement of that object, or (patch, object, callback, index) for one site
        (callback "patching", index 0: the patching fault)."""
        o = parse_op(op)
        why = interp.refusal(self.model, self.state, o)
        assert why is None, f"{op} refused: {why}"
        choices: dict = {}
        picked = {f for f in fail if len(f) == 4}
        objs = {f for f in fail if len(f) == 2}

        def wanted(k):
            return k[:4] in picked or ((k.patch, k.obj) in objs and k.callback != "patching")
        while True:
            out = interp.apply(self.model, self.state, o, choices)
            more = {k: True for k in out.choices if wanted(k) and k not in choices}
            if not more:
                break
            choices.update(more)
        self.state = out.state
        self.history.append(out)
        return out

    # ---- what happened
    @staticmethod
    def callbacks(out) -> list[str]:
        return [f"{e.patch}:{e.callback}({e.obj})" for e in out.events if isinstance(e, Callback)]

    @staticmethod
    def prev_seen(out) -> list:
        """klp_get_prev_state results seen by statements: [(statement, (state, patch|None))]."""
        return [(e.where.stmt.text, e.prev) for e in out.events if isinstance(e, Ran) and e.prev]

    @staticmethod
    def log(m, out) -> list[str]:
        """The kernel log lines of the operation (klog renders kernel.step's events)."""
        from klpmodel import klog
        return klog.event_lines(out.op, out.events)

    @staticmethod
    def violations(out) -> list[str]:
        return sorted({p for p, _ in out.violations})

    def phase(self, patch: str) -> str:
        return PHASES[self.state[f"phase[{patch}]"]]

    def order(self) -> list[str]:
        """klp_patches, oldest first."""
        listed = [p.name for p in self.model.P if self.phase(p.name) in ("patching", "enabled", "unpatching")]
        return sorted(listed, key=lambda n: self.state[f"pos[{n}]"])

"""What the local Lambda runtime's tests observe across execution environments: this module is imported once and
shared, while ``tests/local/stateful_lambda.py`` is loaded afresh in each environment."""

from __future__ import annotations

import threading
from collections import Counter


class Probe:
    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.active: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.modules: dict[str, set[int]] = {}  # function → ids of the module copies that served it
        self.release = threading.Event()  # the blocking handler waits for it

    def enter(self, name: str, module_id: int) -> None:
        with self.guard:
            self.active[name] += 1
            self.peak[name] = max(self.peak[name], self.active[name])
            self.modules.setdefault(name, set()).add(module_id)

    def leave(self, name: str) -> None:
        with self.guard:
            self.active[name] -= 1


PROBE = Probe()

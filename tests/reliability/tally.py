"""What the reliability suite tried, counted while it runs: printed as a table at the end of the pytest run and
written to ``out/reliability/summary.json`` (the README's table comes from such a run).

Tests add what they did (``TALLY.add("bad input", "inputs tried", 37)``); quantities that must stay zero (lost or
double-charged jobs) are recorded with ``TALLY.zero(...)`` after the test has asserted them, so the table shows
what was checked, not what was hoped.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = ROOT / "out" / "reliability" / "summary.json"
SECTIONS = ("bad input", "faults", "security", "load")


class Tally:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, dict[str, int]] = defaultdict(dict)
        self.measures: dict[str, dict[str, Any]] = defaultdict(dict)

    def add(self, section: str, item: str, n: int = 1) -> None:
        if section not in SECTIONS:
            raise ValueError(f"unknown section {section!r}; one of {SECTIONS}")
        with self._lock:
            self.counts[section][item] = self.counts[section].get(item, 0) + n

    def zero(self, section: str, item: str) -> None:
        """Record a quantity the test has just proved to be zero (lost jobs, double charges...)."""
        with self._lock:
            self.counts[section].setdefault(item, 0)

    def measure(self, section: str, item: str, value: Any) -> None:
        """A measurement that is reported, not summed (throughput, latency percentiles)."""
        with self._lock:
            self.measures[section][item] = value

    def empty(self) -> bool:
        return not self.counts and not self.measures

    def rows(self) -> list[tuple[str, str, str]]:
        rows: list[tuple[str, str, str]] = []
        for section in SECTIONS:
            for item, n in self.counts.get(section, {}).items():
                rows.append((section, item, f"{n:,}"))
            for item, value in self.measures.get(section, {}).items():
                rows.append((section, item, str(value)))
        return rows

    def write(self, path: Path = SUMMARY) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps({"counts": self.counts, "measures": self.measures}, indent=2, sort_keys=True) + "\n",
            encoding="utf-8",
        )

    def render(self) -> str:
        rows = self.rows()
        width = max((len(s) + len(i) + 3 for s, i, _ in rows), default=10)
        lines = [f"{s} · {i}".ljust(width) + f" {v:>12}" for s, i, v in rows]
        return "\n".join(lines)


TALLY = Tally()

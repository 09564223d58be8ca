"""What the user sees: messages and progress on stderr (rich), results on stdout (text, or JSON with ``--json``)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def human_bytes(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


class Ui:
    def __init__(
        self, *, quiet: bool = False, json_output: bool = False, progress: bool | None = None
    ) -> None:
        self.quiet, self.json_output = quiet, json_output
        self.err = Console(file=sys.stderr, highlight=False, soft_wrap=True)
        self.out = Console(file=sys.stdout, highlight=False, soft_wrap=True)
        self.live = (self.err.is_terminal if progress is None else progress) and not quiet

    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(message, markup=False)

    def warn(self, message: str) -> None:
        self.err.print(message, style="yellow", markup=False)

    def error(self, message: str) -> None:
        self.err.print(f"error: {message}", style="bold red", markup=False)

    def result(self, text: str) -> None:
        """A command's answer (stdout); in ``--json`` mode the JSON answer is printed instead."""
        if not self.json_output:
            self.out.print(text, markup=False)

    def table(self, rows: list[list[str]], header: list[str]) -> None:
        if self.json_output:
            return
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            self.out.print(
                "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), markup=False
            )

    def json(self, data: Any) -> None:
        if self.json_output:
            sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
            sys.stdout.flush()

    def progress(self, *columns: ProgressColumn | str) -> Progress:
        """A rich progress display on stderr; silent when stderr is not a terminal (or ``--quiet``)."""
        if not columns:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
        return Progress(*columns, console=self.err, disable=not self.live, transient=False)

"""``python -m modamoda_cli`` is the ``modamoda`` command."""

from modamoda_cli.cli import main

raise SystemExit(main())

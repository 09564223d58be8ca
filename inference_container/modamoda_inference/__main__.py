"""``python -m modamoda_inference`` serves the SageMaker contract (same as the ``serve`` entry point)."""

from modamoda_inference.server import main

raise SystemExit(main())

"""ponder's benchmarks: `python -m bench NAME` (see bench/__main__.py). Results go to bench/results/."""

import ponder  # noqa: F401  (run from the checkout, this takes its root off sys.path; see ponder/__init__)

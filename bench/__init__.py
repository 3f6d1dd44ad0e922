"""ponder's benchmarks: `python -m bench NAME` (see bench/__main__.py). Results go to bench/results/."""

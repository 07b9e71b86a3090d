"""`python -m laptop_agents` is the same program as the `la` console script."""

import sys

from laptop_agents.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""`python -m laptop_agents.mock_exchange [flags]`: run the mock exchange until SIGTERM/SIGINT."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

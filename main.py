"""Entry point: `python main.py COMMAND ...` (the same as the `kerascnn` script)."""

import sys

from kerascnn.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""`python -m bench --smoke | --quick | --full`: see `python -m bench --help`."""

import sys

from bench.suite.run import main

if __name__ == "__main__":
    sys.exit(main())

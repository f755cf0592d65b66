"""`python -m dvsapp` runs the CLI."""

import sys

from dvsapp.cli import main

sys.exit(main())

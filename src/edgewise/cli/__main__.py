"""`python -m edgewise.cli`: the same as the `edgewise` command."""

import sys

from .main import main

sys.exit(main())

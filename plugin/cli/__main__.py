"""`python -m plugin.cli`: the same as the `patron` command."""

import sys

from plugin.cli import main

sys.exit(main())

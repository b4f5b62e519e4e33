"""`python -m bakehouse_engine …` — the container entrypoint."""

import sys

from bakehouse_engine.cli import main

sys.exit(main())

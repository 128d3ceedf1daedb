"""`python -m marketlake.simulator --port 8765`: the simulator without the CLI wiring."""

import sys

from marketlake.simulator.server import main

sys.exit(main())

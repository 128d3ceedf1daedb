"""`python -m marketlake.simulator.websocket --port 9443` (or `--replay FILE`): see cli.py."""

from marketlake.simulator.websocket.cli import main

raise SystemExit(main())

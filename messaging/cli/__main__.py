"""``python -m messaging.cli``: the ``messaging`` command."""

from messaging.cli.main import main

raise SystemExit(main())

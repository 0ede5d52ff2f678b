"""``python -m messaging``: the ``messaging`` command, for when its script is not on the PATH."""

from messaging.cli.main import main

raise SystemExit(main())

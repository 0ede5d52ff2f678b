"""The ``messaging`` command line.

``messaging`` (the console script) and ``python -m messaging.cli`` run
:func:`messaging.cli.main.main`. This package is not imported by ``import
messaging``.
"""

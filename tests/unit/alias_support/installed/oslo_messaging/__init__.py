"""Stands for an installed oslo.messaging: importing it is what the alias must prevent."""

raise ImportError("the installed oslo_messaging was imported instead of messaging")

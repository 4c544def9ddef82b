"""Readers of the raw datasets in ``data/`` that more than one study uses."""

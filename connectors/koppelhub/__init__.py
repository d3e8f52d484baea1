"""Connector kind ``koppelhub``: hub-to-hub federation (see :mod:`connectors.koppelhub.connector`)."""

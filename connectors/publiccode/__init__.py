"""Connector kind ``publiccode``: publiccode.yml files as applicaties, aanbieders and gebruik proposals."""

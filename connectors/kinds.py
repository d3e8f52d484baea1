"""Importing this module registers every connector kind (see :data:`connectors.registry.KINDS`)."""

from __future__ import annotations

from connectors.ameff.connector import AmeffConnector
from connectors.registry import KINDS
from connectors.tabular.connector import CsvConnector, ExcelConnector

__all__ = ["KINDS", "AmeffConnector", "CsvConnector", "ExcelConnector"]

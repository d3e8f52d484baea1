"""Importing this module registers every connector kind (see :data:`connectors.registry.KINDS`)."""

from __future__ import annotations

from connectors.ameff.connector import AmeffConnector
from connectors.publiccode.connector import PubliccodeConnector
from connectors.registry import KINDS
from connectors.rest.connector import RestConnector
from connectors.signalen.connector import SignalenConnector
from connectors.tabular.connector import CsvConnector, ExcelConnector

__all__ = [
    "KINDS",
    "AmeffConnector",
    "CsvConnector",
    "ExcelConnector",
    "PubliccodeConnector",
    "RestConnector",
    "SignalenConnector",
]

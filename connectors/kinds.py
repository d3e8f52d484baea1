"""Importing this module registers every connector kind (see :data:`connectors.registry.KINDS`)."""

from __future__ import annotations

from connectors.ameff.connector import AmeffConnector
from connectors.koppelhub.connector import KoppelhubConnector
from connectors.publiccode.connector import PubliccodeConnector
from connectors.registry import KINDS
from connectors.rest.connector import RestConnector
from connectors.signalen.connector import SignalenConnector
from connectors.softwarecatalogus.connector import SoftwarecatalogusConnector
from connectors.tabular.connector import CsvConnector, ExcelConnector

__all__ = [
    "KINDS",
    "AmeffConnector",
    "CsvConnector",
    "ExcelConnector",
    "KoppelhubConnector",
    "PubliccodeConnector",
    "RestConnector",
    "SignalenConnector",
    "SoftwarecatalogusConnector",
]

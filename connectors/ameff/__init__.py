"""ArchiMate Model Exchange File Format (AMEFF): safe import and XSD-valid export."""

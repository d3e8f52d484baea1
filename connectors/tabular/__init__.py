"""CSV and Excel (xlsx) files of landscape objects: reading, mapping, templates, export."""

"""``python -m hub`` is the ``koppelhub`` command."""

from hub.cli import main

main()

"""Connectors: sources that become landscape CloudEvents.

:mod:`connectors.base` is the interface (a config model, ``fetch`` since a checkpoint, a pure
``map``), :mod:`connectors.registry` the kinds by name (:mod:`connectors.kinds` registers them),
:mod:`connectors.ids` the deterministic event ids, :mod:`connectors.events` the events,
:mod:`connectors.mapping` the pure batch mapping a worker process may run.
Kinds: ``csv`` and ``excel`` (:mod:`connectors.tabular`), ``ameff`` (:mod:`connectors.ameff`).
Exports: :func:`connectors.ameff.export.export_ameff`,
:func:`connectors.tabular.export.export_gebruik_csv` and ``…_xlsx`` over a
:class:`connectors.landschap.Landschap`. Nothing here imports Kafka, SQL or the hub.
"""

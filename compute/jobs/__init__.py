"""The compute process's floor above the algorithms: jobs that adapt them to the app.

A job is ``fn(workspace, progress, **params) -> dict`` of plain values and numpy arrays, one module per family
(``explore``, ``details``, ``attribution``, ``faithfulness``, ``channels``, ``weights``, ``maximize``, ``evolution``,
``adversarial``, ``images``, ``neighbours``, ``uploads``, ``diagnostics``); :mod:`compute.jobs.table` holds the
table of all of them and runs one by name. The algorithms below never import this package, so a notebook can use
them alone; this package imports nothing on import, so importing one family never loads the others.
"""

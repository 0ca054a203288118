"""Imports every compute family that registers jobs (``@workspace.job``), so the compute process knows them all.

One line per family module; a new view's family adds its line here.
"""
from compute import core, diagnostics  # noqa: F401
from compute import channels, weights  # noqa: F401
from compute import maximize  # noqa: F401
from compute import evolution  # noqa: F401
from compute import adversarial  # noqa: F401
from compute import images, neighbours, uploads  # noqa: F401
from compute import faithfulness_jobs  # noqa: F401

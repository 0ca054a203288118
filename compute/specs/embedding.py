"""The embedding methods as the page lists them (``EMBEDDERS``: pca, tsne, umap), without torch.

Each entry names ``function(features (N, D), seed, progress, initialization=None) -> Fitted`` in
:mod:`compute.embedding`; ``initialization`` (N, 2) is where the points start (the PCA layout), for the methods that
iterate.
"""
from __future__ import annotations

from compute.specs.params import Method

EMBEDDERS: dict[str, Method] = {
    "pca": Method("compute.embedding:fit_pca", "PCA", description="linear: the two directions of largest variance"),
    "tsne": Method("compute.embedding:fit_tsne", "t-SNE", description="openTSNE, perplexity 30, grown from the PCA layout"),
    "umap": Method("compute.embedding:fit_umap", "UMAP",
                   description="umap-learn, 15 neighbours, started from the PCA layout"),
}
ITERATIVE = ("tsne", "umap")  # methods that start from the PCA layout and are fitted on a sample when N is large


def label(method: str) -> str:
    """The method's name as the page writes it ("t-SNE"), or the name itself when it is not in the table."""
    return EMBEDDERS[method].label if method in EMBEDDERS else method

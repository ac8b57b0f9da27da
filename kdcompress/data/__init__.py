"""Datasets: Fashion-MNIST from Debian's package, ``.npz`` files and ImageFolder trees, as in-memory splits."""

from kdcompress.data.splits import DataSplits, Preprocess, load_data

__all__ = ["DataSplits", "Preprocess", "load_data"]

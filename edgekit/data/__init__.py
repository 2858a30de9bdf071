"""Datasets: the synthetic generator, importers, the on-disk store and leakage-free splits.

Submodules are imported where they are used; importers pull in scipy, the device side must not.
"""

"""prober: which file-locking calls actually exclude each other on this storage?"""

__version__ = "0.1.0"

"""nitejarctl: admin and maintenance tool for a nitejar database."""

__version__ = "0.1.0"

"""vocalmix: automatic mixing of a lead vocal with a backing track."""

__version__ = "0.1.0"

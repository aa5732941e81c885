"""klpmodel: a model checker for Linux kernel livepatch state transitions."""
__version__ = "0.1.0"

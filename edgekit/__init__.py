"""edgekit: condition-monitoring models from training to embedded hardware, and back."""

__version__ = "0.1.0"

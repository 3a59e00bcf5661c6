"""tinyhost: compile PyTorch models into training plans and train them on microcontrollers."""
from __future__ import annotations

__version__ = "0.1.0"

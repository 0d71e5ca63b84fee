"""edgetune engine: fine-tune, merge, export and chat with open LLMs.

Importing this package is cheap on purpose: torch, transformers and friends are
imported lazily inside the functions that need them, so `engine --help` and
`engine plan` start in well under a second.
"""

__version__ = "0.1.0"

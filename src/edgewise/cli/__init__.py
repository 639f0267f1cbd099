"""The command line, thin: it parses, calls the library, prints. Heavy stages load inside each command."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]

"""The interop stage: other tools' names and files. ACDC's hook names and circuits (`acdc`), MIB's circuit files
(`mib`, EAP-IG's `Graph.to_json` format)."""

from .mib import from_mib, load_mib, save_mib, to_mib

__all__ = ["from_mib", "load_mib", "save_mib", "to_mib"]

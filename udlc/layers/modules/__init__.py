"""The torch modules of the layer types, one file per family (as udlc/layers/ has), each a named class at module
level so that a built network pickles, deep-copies and names its parts.

Only the builders import these files, inside the builder functions: they import torch, and `udlc check` (the
config and shape path) must never. This package's own file imports nothing.
"""

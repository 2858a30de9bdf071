"""Export/quantize core: a trained run -> verified artifacts for a target profile -> a signed bundle.

With ``edgekit.train`` the only package that imports torch (inside its modules, never at ``import edgekit``).
"""

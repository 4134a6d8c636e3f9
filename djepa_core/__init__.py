"""djepa_core: the D-JEPA model, its heads, samplers, tokenizers and checkpoint compatibility.

Importable with torch, numpy and safetensors alone (GPU checks run it without the service stack).
"""

__version__ = "0.1.0"

"""quantize: Magistral Hugging Face checkpoints to MLX weights (`magimac quantize`).

Import it as `magimac.quantize` (``magimac/quantize`` links to this folder). The repository
root is on ``sys.path`` in an editable install, so ``import quantize`` would also work and load
a second copy of every module (two `QuantizeError` classes, two module states): it is refused.
"""

if __name__ != "magimac.quantize":
    raise ImportError(f"import the quantize library as magimac.quantize, not {__name__!r} "
                      "(that name loads a second copy of every module)")

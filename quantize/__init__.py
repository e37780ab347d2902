"""quantize: Magistral Hugging Face checkpoints to MLX weights (`magimac quantize`)."""

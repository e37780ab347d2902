"""What runs for a model's tool call: the python sandbox, the toolbox, MCP servers (no MLX)."""

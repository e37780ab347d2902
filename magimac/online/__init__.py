"""Models on Mistral's API behind the session layer: an engine with the local engine's methods
and events (`engine.OnlineEngine`), the request it sends (`request`), the streamed content split
into reasoning and answer deltas (`deltas`), the failures as one line each (`failures`) and the API key
(`keys`). The `mistralai` SDK is imported only when an online model is used; nothing here
imports MLX."""

"""The session layer: what every front-end (`magimac chat`, the app, later a server or a
remote model) does with a model.

- `magimac.session.model`: open a model by name (resolved once, the demo as fallback with a
  notice), as a `ChatSession` around one engine.
- `magimac.session.turn`: run one turn with its documents and images (`TurnRun`, an event
  iterator that survives Ctrl-C), and build the answer record to store (`AnswerRecord`).

No MLX and no Textual here: the engine does the work on its own thread; this layer only talks
to it through `magimac.core.events`.
"""

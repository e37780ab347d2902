"""The Textual chat app (`magimac` with no command); see `magimac.tui.app`.

Modules: `app` (the App, actions, engine workers), `chat` (conversation view and message
widgets), `reasoning` (the folding reasoning block), `composer`, `sidebar`, `status_bar`,
`screens` (help, rename, delete, missing model, attach), `settings_screen`, `streaming`
(delta batching between the engine thread and the UI), `export` (conversation to Markdown).
The UI never imports MLX: it talks to a `magimac.session.model.ChatSession` from thread workers.
"""

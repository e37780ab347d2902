"""The attachments waiting for the next message: a line above the composer.

``📎 cat.png  📄 notes.md (Markdown, 1,204 tokens)  (Esc removes)``; hidden when empty. Images
are checked with Pillow when attached (a broken one is refused before it becomes part of the
conversation); documents are read at once and their tokens counted in a thread worker.
"""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.widgets import Static

from magimac.text.documents import DocumentError, describe, load_document_cached
from magimac.tui.messages import TokensCounted
from magimac.tui.screens import IMAGE_SUFFIXES


def image_problem(path: Path) -> str | None:
    """Why ``path`` is no image Pillow can read (one line), None when it is one."""
    try:
        from PIL import Image  # noqa: PLC0415

        with Image.open(path) as im:
            im.verify()
    except Exception as e:  # Pillow raises many types for unreadable files
        return f"{path.name}: not an image Pillow can read ({type(e).__name__})"
    return None


class PendingAttachments(Static):
    """Images and documents attached to the message being written.

    Attributes:
        images: resolved image paths, in order. documents: resolved path -> its label
            (``notes.md (Markdown, 3 pages, 1,204 tokens)``).
        session: the app's `ChatSession` once a model is chosen (for token counts; None: no counts).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", markup=False, **kwargs)
        self.images: list[Path] = []
        self.documents: dict[Path, str] = {}
        self.session = None

    def on_mount(self) -> None:
        self.display = False

    @property
    def empty(self) -> bool:
        return not self.images and not self.documents

    def attach(self, path: Path) -> bool:
        """Attach the file at ``path`` (an image by its suffix, else a document); a missing or
        unreadable file is refused with a notification. Returns whether it was attached."""
        path = path.expanduser()
        if not path.is_file():
            self.notify(f"{path}: no such file", severity="error")
            return False
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            return self._attach_document(path)
        if problem := image_problem(path):
            self.notify(problem, severity="error")
            return False
        self.images.append(path.resolve())
        self._show()
        return True

    def _attach_document(self, path: Path) -> bool:
        try:
            doc = load_document_cached(path)
        except DocumentError as e:
            self.notify(str(e), severity="error", timeout=10)
            return False
        path = path.resolve()
        if self.session is None:
            self.documents[path] = describe(doc)
        else:
            self.documents[path] = f"{describe(doc)} · counting tokens…"
            self._count_worker(self.session, path, doc)
        self._show()
        return True

    @work(thread=True, group="count")
    def _count_worker(self, session, path: Path, doc) -> None:
        try:
            tokens = session.count_tokens(doc.text)
        except Exception:  # no tokenizer (model failed to load): the document without a count
            tokens = None
        self.post_message(TokensCounted(path, doc, tokens))

    def on_tokens_counted(self, message: TokensCounted) -> None:
        message.stop()
        if message.path in self.documents:  # not sent or removed meanwhile
            self.documents[message.path] = describe(message.document, message.tokens)
            self._show()

    def take(self) -> tuple[list[Path], list[Path]]:
        """The attached (images, documents), and empty the line."""
        images, documents = list(self.images), list(self.documents)
        self.drop_all()
        return images, documents

    def drop_all(self) -> None:
        """Drop every attachment."""
        self.images.clear()
        self.documents.clear()
        self._show()

    def _show(self) -> None:
        self.update("  ".join([f"📎 {p.name}" for p in self.images]
                              + [f"📄 {label}" for label in self.documents.values()] + ["(Esc removes)"]))
        self.display = not self.empty

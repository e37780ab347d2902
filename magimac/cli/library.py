"""`magimac library add NAME FOLDER... | list | update NAME | rm NAME`: folders of documents
indexed once (`magimac.text.library`), then searched by `magimac chat --library NAME` and the app.

``add`` and ``update`` draw a progress bar (files and pages, then vectors when an embedding
model is installed), list each file that could not be read with its one-line reason, and end
with one line of counts. Exit status 0, also when some files could not be read; 1 on an error.
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.text import Text
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from magimac.core.units import format_bytes
from magimac.text.controls import show_controls
from magimac.text.library import index, store


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = sub.add_parser("add", help="index folders into a new library")
    a.add_argument("name", help="the library's name (letters, digits, . _ -)")
    a.add_argument("folders", nargs="+", metavar="FOLDER", help="folders to index (read, never written)")
    sub.add_parser("list", help="the libraries and what they hold")
    u = sub.add_parser("update", help="re-read changed files, drop deleted ones")
    u.add_argument("name")
    r = sub.add_parser("rm", help="remove a library's index (the files stay)")
    r.add_argument("name")
    for q in (a, u):
        q.add_argument("--no-embeddings", action="store_true",
                       help="index words only, even with an embedding model installed")
        q.add_argument("--read-scans", action="store_true",
                       help="read scanned PDF pages (no text layer) with the model's vision: slow, off by default")
        q.add_argument("--model", help="the vision model for --read-scans (default: the default model)")


class BarProgress(index.Progress):
    """`index.Progress` as a rich bar on stderr: files with the pages read so far, then vectors;
    unreadable files printed above the bar as they come."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[extra]}"), TimeElapsedColumn(),
                            console=console, transient=False)
        self.pages = 0
        self.files_task = self.embed_task = None

    def __enter__(self):
        self.bar.start()
        return self

    def __exit__(self, *exc):
        self.bar.stop()

    def start(self, total_files: int) -> None:
        self.files_task = self.bar.add_task("files", total=total_files, extra="0 pages")

    def file_done(self, path: str, pages: int, problem: str | None, read: bool) -> None:
        self.pages += pages
        if problem:
            # a Text, not markup: a file name may hold "[...]"
            self.bar.console.print(Text.assemble(("not indexed", "yellow"), f": {show_controls(problem)}"),
                                   soft_wrap=True)
        self.bar.update(self.files_task, advance=1, extra=f"{self.pages:,} pages")

    def page_read(self, label: str, seconds: float) -> None:
        self.bar.console.print(Text(f"read {label} from its image in {seconds:.1f} s"), soft_wrap=True)

    def embed_start(self, total_passages: int) -> None:
        if total_passages:
            self.embed_task = self.bar.add_task("vectors", total=total_passages, extra="")

    def embed_done(self, passages: int) -> None:
        self.bar.update(self.embed_task, advance=passages)


def _embedder(args: argparse.Namespace, err: Console):
    if getattr(args, "no_embeddings", False):
        return None
    from magimac.session.library import BM25_ONLY_NOTE, library_embedder

    embedder = library_embedder()
    if embedder is None:
        err.print(f"magimac: {BM25_ONLY_NOTE}", highlight=False, soft_wrap=True)
    return embedder


def _summary(name: str, r: index.Report) -> str:
    parts = [f"{r.added} added", f"{r.changed} changed", f"{r.unchanged} unchanged", f"{r.deleted} deleted"]
    line = (f"library {name}: {', '.join(parts)}; {r.pages:,} pages read, {r.passages:,} passages"
            + (f", {r.embedded:,} vectors" if r.embedded else "")
            + (f"; {r.scans_read} scanned pages read by the model in {r.scan_seconds:.1f} s" if r.scans_read else "")
            + (f"; {len(r.problems)} not readable" if r.problems else "")
            + (f"; skipped {len(r.skipped)} that {'is' if len(r.skipped) == 1 else 'are'} not a regular file"
               if r.skipped else "") + f" ({r.seconds:.1f} s)")
    for folder in r.missing_folders:
        line += f"\nfolder {folder} not found: its files are kept in the index"
    return line


def run(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    if args.action == "list":
        return _list()
    if args.action == "rm":
        store.remove(args.name)
        print(f"removed library {args.name} (its files are untouched)", file=sys.stderr)
        return 0
    if args.action == "add":
        store.check_name(args.name)
        index.check_folders(args.folders)
        if store.exists(args.name):
            index.add(args.name, args.folders)  # raises the one-line "already exists"
    else:
        store.open_index(args.name).close()  # a missing library is said before anything else
    embedder = _embedder(args, err)
    session = _vision_session(args)
    try:
        reader = None
        if session is not None:
            from magimac.session.scans import vision_page_reader

            reader = vision_page_reader(session)
        with BarProgress(err) as bar:
            if args.action == "add":
                report = index.add(args.name, args.folders, embedder, bar, reader)
            else:
                report = index.update(args.name, embedder, bar, reader)
    finally:
        if session is not None:
            session.close()
    print(_summary(args.name, report), file=sys.stderr)
    return 0


def _vision_session(args: argparse.Namespace):
    """The model that reads scanned pages (``--read-scans``), loading; else None."""
    if not args.read_scans:
        return None
    from magimac.session.model import choose_model, open_model

    choice = choose_model(args.model)
    if choice.notice:
        print(f"magimac: {choice.notice}", file=sys.stderr)
    return open_model(choice=choice)


def _list() -> int:
    """One line per library: name, counts, how it is searched, size, folders."""
    names = store.names()
    if not names:
        print("no libraries yet: 'magimac library add NAME FOLDER' makes one", file=sys.stderr)
        return 0
    for name in names:
        i = store.info(name)
        search = f"words + meaning ({i.embedder})" if i.embedder else "words (BM25)"
        scanned = f" ({i.scanned_pages} scanned)" if i.scanned_pages else ""
        print(f"{name}: {i.files:,} files, {i.pages:,} pages{scanned}, {i.passages:,} passages, "
              f"{i.problems} not readable; {search}; {format_bytes(i.bytes)}; {', '.join(i.folders)}")
    return 0

"""The whole `magimac bench` run, in order: check the settings, resolve the source, convert
(or reuse) each variant, compute (or reuse) the reference log-probs, measure each variant and
write the outputs after each one, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from magimac.core import paths, staging
from magimac.engine import evaluate, measure
from magimac.bench import reference as refcache
from magimac.bench.measure import Row, measure_variant, pick_reference, task_runner
from magimac.bench.progress import Steps
from magimac.bench.report import RunInfo, document, write_outputs
from magimac.bench.settings import DEFAULT_PROMPT_LENGTHS, Settings, parse_levels
from magimac.bench.variants import Variant, ensure_variant, plan_variants, resolve_source


@dataclass
class Outcome:
    """What a run gives the front-end: ``rows`` (one per variant), the ``files`` written, the
    run's `RunInfo`, and what the bench ``caches`` hold at the end."""

    rows: list[Row]
    files: list[Path]
    info: RunInfo
    caches: list[refcache.CacheEntry]


def _eval_set(source: Path, s: Settings) -> tuple[list, list]:
    texts = evaluate.load_eval_texts(measure.load_tokenizer(source), s.eval_dir)
    return texts, evaluate.make_chunks(texts, s.chunk_len)


def _bandwidth(s: Settings) -> tuple[str | None, float | None, str | None]:
    from magimac.models import chips

    brand, chip = chips.detect_chip()
    if s.bandwidth:
        return brand, s.bandwidth, "--bandwidth"
    return brand, (chip.bandwidth_gbs if chip else None), (chip.source if chip else None)


def _convert_all(source: Path, variants: list[Variant], s: Settings, steps: Steps) -> None:
    for v in variants:
        steps.start(f"converting {v.label}")
        v.path = ensure_variant(source, v, group_size=s.group_size, mode=s.mode, force=s.force)
        steps.advance()


def run(s: Settings, steps: Steps) -> Outcome:
    """Run the bench with ``s``, showing each step on ``steps``.

    Raises:
        MagimacError: bad settings or sources (before anything is written), a conversion or
            an output directory that cannot be written. KeyboardInterrupt passes through; the
            caches then hold only complete entries and ``out`` the variants measured so far.
    """
    s.check()
    lengths = s.prompt_lengths or [int(n) for n in DEFAULT_PROMPT_LENGTHS.split(",")]
    recipes = s.recipes or [None]
    variants = plan_variants(parse_levels(s.levels), recipes, s.methods)
    source = resolve_source(s.model)
    texts, chunks = _eval_set(source, s)
    tasks_fn = task_runner(s.tasks, s.task_max_tokens)
    out = s.out or paths.data_dir() / "bench" / "runs" / datetime.now().strftime("%Y%m%d-%H%M%S")
    staging.check_writable(out, "pass --out DIR somewhere writable")
    brand, bandwidth, bandwidth_source = _bandwidth(s)

    _convert_all(source, variants, s, steps)
    ref_label, ref_path = pick_reference(s.reference, source, variants)
    steps.start(f"reference log-probs ({ref_label})", len(chunks))
    reference = refcache.ensure_reference(ref_path, chunks, label=ref_label,
                                          advance=lambda: steps.advance("chunk"))
    info = RunInfo(source, ref_label, ref_path, reference.path, reference, brand, bandwidth,
                   bandwidth_source, recipes, lengths, texts, chunks)
    rows: list[Row] = []
    for v in variants:
        row = measure_variant(v, s, lengths=lengths, chunks=chunks, reference=reference,
                              bandwidth_gbs=bandwidth, tasks_fn=tasks_fn, steps=steps)
        row.is_reference = v.path is not None and v.path.resolve() == ref_path.resolve()
        rows.append(row)
        write_outputs(out, document(s, info, rows), rows, plots=False)
    steps.start("writing outputs")
    files = write_outputs(out, document(s, info, rows), rows, plots=s.plots)
    steps.advance()
    return Outcome(rows, files, info, refcache.caches())

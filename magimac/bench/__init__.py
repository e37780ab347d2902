"""`magimac bench` as a library: quantization levels side by side (docs/bench.md).

- `settings`: what to measure (levels, recipes, prompt lengths, ...), checked up front;
- `variants`: the source checkpoint and the conversion cache (one directory per level);
- `reference`: the reference log-probabilities cache, its size, and clearing both caches;
- `measure`: one variant measured (size, speed, quality, tasks), one model in memory at a time;
- `progress`: progress of each long step on stderr (a live bar, or a line per step off a TTY);
- `report`: the bench.json document, bench.csv and the terminal tables; `plots`: the plots;
- `run`: the whole run, in order.

No MLX here: the MLX calls are `magimac.engine.measure`, `speed`, `evaluate` and `tasks`.
"""

"""Shared memory throughput and recall latency at N entries, embedded and on a Chroma server.

    .venv/bin/python benchmarks/memory.py            # 10k entries, both modes
    .venv/bin/python benchmarks/memory.py --n 1000 --modes embedded

Prints one JSON line. Per mode: `add_docs_per_s` (batched `add_many`, embedding + near-duplicate check
+ insert), `add_one_ms_p50` (a single `add`), `recall_ms_p50/p95` (a text query, k=5, through the async
API: embed + search), `recall_filtered_*` (the same with the data-class filter an `internal` run
applies), and `search_by_vector_ms_p50` (Chroma alone, embedding excluded). Offline; the server
mode starts `chroma run` on a free loopback port and stops it by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import anyio
import anyio.to_thread

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'tests'))

from memory_server import ChromaServer

from proctor.memory import ChromaMemory, Provenance, classes_up_to
from proctor.memory._embedding import embed, load_model, model_info

NS = 'bench/memory'


def vocabulary() -> list[str]:
    """Real words, deterministic: taken from a few standard-library sources."""
    import argparse as a
    import json as j
    import logging as lg
    import shutil as s
    import subprocess as sp

    words: set[str] = set()
    for mod in (a, j, lg, s, sp):
        words.update(re.findall(r'\b[a-z]{4,12}\b', Path(mod.__file__).read_text()))
    return sorted(words)


def documents(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    vocab = vocabulary()
    return [f'Note {i}: ' + ' '.join(rng.sample(vocab, 12)) + '.' for i in range(n)]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 2)


async def measure(memory: ChromaMemory, docs: list[str], queries: list[str], batch: int) -> dict[str, object]:
    prov = Provenance(data_class='internal', run_id='bench', agent_path='bench', source='tool:bench')
    started = time.perf_counter()
    merged = 0
    for i in range(0, len(docs), batch):
        merged += sum(e.merged for e in await memory.add_many(docs[i : i + batch], namespace=NS, provenance=prov))
    add_s = time.perf_counter() - started

    async def timed(**kw: object) -> list[float]:
        out = []
        for q in queries:
            t = time.perf_counter()
            hits = await memory.recall(q, namespace=NS, k=5, **kw)  # type: ignore[arg-type]
            out.append(time.perf_counter() - t)
            assert hits, 'recall returned nothing'
        return out

    await timed()  # warm the collection handle and HNSW index
    plain = await timed()
    filtered = await timed(data_classes=classes_up_to('internal'))
    vectors = embed(queries)
    col = memory._collection(NS, create=False)
    by_vector = []
    for v in vectors:
        t = time.perf_counter()
        await anyio.to_thread.run_sync(lambda v=v: col.query(query_embeddings=[v], n_results=5))
        by_vector.append(time.perf_counter() - t)
    embeds = []
    for q in queries:
        t = time.perf_counter()
        embed([q])
        embeds.append(time.perf_counter() - t)
    # Single adds last: right after a bulk load Chroma is still compacting, which would inflate them.
    singles = []
    for i, q in enumerate(queries[:30]):
        t = time.perf_counter()
        await memory.add(f'Single note {i}: {q}', namespace=NS, provenance=prov)
        singles.append(time.perf_counter() - t)
    stats = await memory.stats()
    return {
        'entries': stats['entries'],
        'merged_on_add': merged,
        'add_docs_per_s': round(len(docs) / add_s, 1),
        'add_total_s': round(add_s, 1),
        'add_one_ms_p50': pct(singles, 0.5),
        'recall_ms_p50': pct(plain, 0.5),
        'recall_ms_p95': pct(plain, 0.95),
        'recall_filtered_ms_p50': pct(filtered, 0.5),
        'recall_filtered_ms_p95': pct(filtered, 0.95),
        'search_by_vector_ms_p50': pct(by_vector, 0.5),
        'embed_query_ms_p50': pct(embeds, 0.5),
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=10_000, help='entries to add (default 10000)')
    ap.add_argument('--queries', type=int, default=200, help='recall queries to time')
    ap.add_argument('--batch', type=int, default=256, help='texts per add_many call')
    ap.add_argument('--modes', default='embedded,server', help='comma-separated: embedded, server')
    args = ap.parse_args()

    t = time.perf_counter()
    load_model()
    result: dict[str, object] = {
        'benchmark': 'memory',
        'n': args.n,
        'queries': args.queries,
        'model_load_s': round(time.perf_counter() - t, 1),
        'embedding': model_info()['name'],
        'cpus': os.cpu_count(),
        'loadavg_1m_start': round(os.getloadavg()[0], 2),
    }
    docs = documents(args.n, seed=1)
    queries = [' '.join(d.split()[2:8]) for d in documents(args.queries, seed=2)]
    with tempfile.TemporaryDirectory(prefix='proctor-bench-memory-') as tmp:
        for mode in [m.strip() for m in args.modes.split(',') if m.strip()]:
            if mode == 'embedded':
                memory = ChromaMemory(Path(tmp) / 'embedded')
                result['embedded'] = await measure(memory, docs, queries, args.batch)
                memory.close()
            elif mode == 'server':
                with ChromaServer(Path(tmp) / 'server') as server:
                    memory = ChromaMemory(url=server.url)
                    result['server'] = await measure(memory, docs, queries, args.batch)
                    memory.close()
            else:
                raise SystemExit(f'unknown mode {mode!r} (embedded, server)')
    result['loadavg_1m_end'] = round(os.getloadavg()[0], 2)  # other work on the machine skews latencies
    print(json.dumps(result))


if __name__ == '__main__':
    anyio.run(main)

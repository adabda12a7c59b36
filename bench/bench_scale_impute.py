"""Scale-out imputation benchmark (issue 12): throughput and peak memory, one process vs Dask.

Synthetic series (one sine per feature, scaled, plus noise, hourly timestamps, 10 % of cells
missing at random) in Parquet files. For 1e5, 1e6 and 1e7 cells (10 features) each file is
imputed three ways, each in a fresh process so that peaks do not carry over:

* ``memory``: one process, ``read_table`` + ``DiffusionImputer.impute`` + ``write_table``;
* ``stream``: one process, ``io.stream.impute_parquet`` (chunks of bounded memory);
* ``dask``: ``diffimpute.dask.impute`` on a ``LocalCluster`` of 2 single-threaded worker
  processes, the file read by ``dd.read_parquet`` one partition per row group (8 of them),
  one Parquet file per partition written.

Then the 1,000,000 x 100 file (1e8 cells) is streamed: on a prefix with the diffusion network, and
in full (with the network when the prefix's rate says it ends within ``--full-limit`` seconds,
otherwise with the guess path, which writes the same amount of data through the same chunks).

``--memory ROWS...`` (part ``memory``) streams files of ``--memory-features`` features (100) at
each number of rows, with the guess path and, at the rows of ``--memory-network``, the network
path, to show whether the peak RSS depends on the rows (it should not: only on the chunk).

Throughput is cells of the file (observed and missing) per second of wall time from the first
read to the last byte written, not counting Python start, imports, the model's loading or the
cluster's start (reported apart). Peak memory is sampled every 50 ms with psutil as the RSS
summed over the run's process and all its descendants (the cluster's nanny and worker
processes), so pages shared between processes (torch's libraries) count once per process; the
child also reports its own exact peak (``maxrss_mib``, ``getrusage``) and its RSS once the model is
loaded, before the first read (``rss_before_mib``: Python, torch, pyarrow and the model).

The model is small and fast on purpose, the point being memory and throughput: 8 channels, one
residual layer, window 48, 4 draws per cell of 3-step DDIM, fitted for 2 epochs on 2,000 rows and
set to sample from its network (``refines_ = True``) even though such a short fit would fall back
to its guess. Run under the shared lock:

    OMP_NUM_THREADS=1 flock /work/bench.lock /work/venv/bin/python bench/bench_scale_impute.py
    /work/venv/bin/python bench/bench_scale_impute.py --report
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

RESULTS = Path(__file__).resolve().parent / "results"
DATA = RESULTS / "scale_data"
LOG = RESULTS / "scale_impute.jsonl"
WINDOW = 48
N_SAMPLES = 4
MISSING = 0.1
MODEL = {"window": WINDOW, "channels": 8, "n_layers": 1, "n_heads": 2, "max_epochs": 2, "time_budget": 60.0,
         "n_samples": N_SAMPLES, "sampler": "ddim", "sampling_steps": 3, "device": "cpu", "verbose": False}


# ---------------------------------------------------------------------------- data and model


def synthetic(start: int, rows: int, features: int, seed: int = 0) -> pd.DataFrame:
    """Rows ``[start, start + rows)`` of the benchmark series; any slice is the same as in the whole."""
    rng = np.random.default_rng([seed, start])
    t = np.arange(start, start + rows)
    values = np.sin(2 * np.pi * t / 24)[:, None] * np.linspace(1.0, 3.0, features)
    values = values + 0.1 * rng.standard_normal((rows, features))
    values[rng.random(values.shape) < MISSING] = np.nan
    index = pd.DatetimeIndex(pd.Timestamp("2020-01-01") + pd.to_timedelta(t, unit="h"), name="time")
    return pd.DataFrame(values, index=index, columns=[f"f{j}" for j in range(features)])


def write_data(path: Path, rows: int, features: int, row_group: int) -> Path:
    """The series in Parquet, written in pieces so that making it never holds it all in memory."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    writer = None
    for start in range(0, rows, row_group):
        table = pa.Table.from_pandas(synthetic(start, min(row_group, rows - start), features))
        writer = writer or pq.ParquetWriter(partial, table.schema)
        writer.write_table(table, row_group_size=row_group)
    writer.close()
    partial.rename(path)
    return path


def write_model(path: Path, features: int, refines: bool) -> Path:
    if path.exists():
        return path
    from diffimpute import DiffusionImputer

    model = DiffusionImputer(**MODEL).fit(synthetic(0, 2000, features, seed=1))
    model.refines_ = refines
    model.save(path)
    return path


# ---------------------------------------------------------------------------- one run (a child process)


def run_one(mode: str, data: Path, model_path: Path, output: Path) -> dict:
    import torch

    from diffimpute import DiffusionImputer

    torch.set_num_threads(1)
    model = DiffusionImputer.load(model_path)
    record: dict = {"rss_before_mib": psutil.Process().memory_info().rss / 2**20}
    if mode == "memory":
        from diffimpute.io.files import read_table, write_table

        started = time.perf_counter()
        write_table(model.impute(read_table(data)).median(), output)
    elif mode == "stream":
        from diffimpute.io.stream import impute_parquet

        started = time.perf_counter()
        report = impute_parquet(data, model, output, verbose=False)
        record.update(chunks=report.chunks, chunk_rows=report.chunk_rows)
    else:
        import dask.dataframe as dd

        from diffimpute import dask as ddi

        begun = time.perf_counter()
        with ddi.local_cluster(n_workers=2) as client:
            client.run(lambda: bool(__import__("diffimpute.dask")))  # workers import torch before the clock
            record["cluster_start_s"] = time.perf_counter() - begun
            started = time.perf_counter()
            paths = ddi.impute(dd.read_parquet(data, split_row_groups=True), model, output=output)
            record["partitions"] = len(paths)
            seconds = time.perf_counter() - started
        record["seconds"] = seconds
        return record
    record["seconds"] = time.perf_counter() - started
    record["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux
    return record


def measure(mode: str, data: Path, model_path: Path, output: Path) -> dict:
    """Run one imputation in a child process, sampling the RSS of its whole process tree."""
    if output.exists():
        for part in sorted(output.iterdir()) if output.is_dir() else [output]:
            part.unlink()
        if output.is_dir():
            output.rmdir()
    command = [sys.executable, __file__, "--run", mode, "--data", str(data), "--model", str(model_path),
               "--output", str(output)]
    child = psutil.Popen(command, stdout=subprocess.PIPE, text=True)
    peak_sum, peak_one, done = 0, 0, threading.Event()

    def sample() -> None:
        nonlocal peak_sum, peak_one
        while not done.is_set():
            try:
                processes = [child, *child.children(recursive=True)]
                sizes = []
                for process in processes:
                    try:
                        sizes.append(process.memory_info().rss)
                    except psutil.Error:
                        continue
                peak_sum, peak_one = max(peak_sum, sum(sizes)), max(peak_one, max(sizes, default=0))
            except psutil.Error:
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    out, _ = child.communicate()
    done.set()
    watcher.join()
    if child.returncode:
        raise RuntimeError(f"{mode} on {data.name} failed with status {child.returncode}")
    record = json.loads(out.strip().splitlines()[-1])
    return {**record, "peak_rss_mib": peak_sum / 2**20, "peak_rss_one_process_mib": peak_one / 2**20}


# ---------------------------------------------------------------------------- the benchmark


def log(record: dict) -> None:
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("a") as file:
        file.write(json.dumps(record) + "\n")
    print(json.dumps(record), flush=True)


def compare(sizes: list[float], features: int) -> None:
    model = write_model(DATA / f"model_f{features}.safetensors", features, refines=True)
    for cells in sizes:
        rows = int(cells) // features
        data = write_data(DATA / f"series_{rows}x{features}.parquet", rows, features, max(4 * WINDOW, rows // 8))
        outputs = {}
        for mode in ("memory", "stream", "dask"):
            outputs[mode] = DATA / f"out_{mode}" if mode == "dask" else DATA / f"out_{mode}.parquet"
            measured = measure(mode, data, model, outputs[mode])
            log({"part": "compare", "mode": mode, "rows": rows, "features": features, "cells": rows * features,
                 "input_mib": data.stat().st_size / 2**20, "values_per_s": rows * features / measured["seconds"],
                 **measured})
        frames = {mode: pd.read_parquet(path) if path.is_file() else pd.concat(map(pd.read_parquet, sorted(path.iterdir())))
                  for mode, path in outputs.items()}
        log({"part": "identical", "cells": rows * features,
             "stream_equals_memory": bool(frames["stream"].equals(frames["memory"])),
             "dask_equals_memory": bool(frames["dask"].equals(frames["memory"]))})


def stream_large(rows: int, features: int, prefix: int, full_limit: float) -> None:
    network = write_model(DATA / f"model_f{features}.safetensors", features, refines=True)
    guess = write_model(DATA / f"model_f{features}_guess.safetensors", features, refines=False)
    whole = write_data(DATA / f"series_{rows}x{features}.parquet", rows, features, 50_000)
    part = write_data(DATA / f"series_{prefix}x{features}.parquet", prefix, features, 50_000)
    output = DATA / "out_large.parquet"
    rates = {}
    for label, model in (("network", network), ("guess", guess)):
        measured = measure("stream", part, model, output)
        rates[label] = prefix * features / measured["seconds"]
        log({"part": "large", "path": label, "rows": prefix, "features": features, "cells": prefix * features,
             "input_mib": part.stat().st_size / 2**20, "values_per_s": rates[label], **measured})
    label = "network" if rows * features / rates["network"] <= full_limit else "guess"
    log({"part": "large-plan", "full_rows": rows, "network_estimate_s": rows * features / rates["network"],
         "full_run_path": label})
    measured = measure("stream", whole, network if label == "network" else guess, output)
    log({"part": "large", "path": label, "rows": rows, "features": features, "cells": rows * features,
         "input_mib": whole.stat().st_size / 2**20, "values_per_s": rows * features / measured["seconds"], **measured})


def stream_memory(sizes: list[int], features: int, network_sizes: list[int]) -> None:
    """Peak RSS of streaming files of ``features`` features and ``sizes`` rows (guess path), and of
    ``network_sizes`` rows with the network path: flat in rows if memory is bounded by the chunk."""
    models = {"guess": write_model(DATA / f"model_f{features}_guess.safetensors", features, refines=False),
              "network": write_model(DATA / f"model_f{features}.safetensors", features, refines=True)}
    runs = [("guess", rows) for rows in sizes] + [("network", rows) for rows in network_sizes]
    for label, rows in runs:
        data = write_data(DATA / f"series_{rows}x{features}.parquet", rows, features, 50_000)
        measured = measure("stream", data, models[label], DATA / "out_memory_scan.parquet")
        log({"part": "memory", "path": label, "rows": rows, "features": features, "cells": rows * features,
             "input_mib": data.stat().st_size / 2**20, "values_per_s": rows * features / measured["seconds"],
             **measured})


def report() -> None:
    records = [json.loads(line) for line in LOG.read_text().splitlines() if line.strip()]
    compared = pd.DataFrame([r for r in records if r["part"] == "compare"])
    if len(compared):
        compared = compared.drop_duplicates(["mode", "cells"], keep="last")
        table = compared.pivot(index="cells", columns="mode", values=["values_per_s", "peak_rss_mib"])
        print("cells      | values/s: memory  stream    dask  dask/stream | peak RSS MiB: memory  stream  dask | input MiB")
        for cells, row in table.iterrows():
            size = compared[compared.cells == cells].input_mib.iloc[0]
            speed, peak = row["values_per_s"], row["peak_rss_mib"]
            print(f"{cells:10.0e} | {speed['memory']:16,.0f} {speed['stream']:7,.0f} {speed['dask']:7,.0f} "
                  f"{speed['dask'] / speed['stream']:8.2f}x   | {peak['memory']:19,.0f} {peak['stream']:7,.0f} "
                  f"{peak['dask']:5,.0f} | {size:8,.1f}")
    for record in records:
        if record["part"] in ("identical", "large", "large-plan"):
            print(record)
    memory = pd.DataFrame([r for r in records if r["part"] == "memory"])
    if len(memory):
        memory = memory.drop_duplicates(["path", "rows", "features"], keep="last").sort_values(["path", "rows"])
        print("path     rows      features | input MiB | peak RSS MiB (sampled, maxrss) | before | peak - before "
              "| peak / input | chunk rows | s")
        for _, r in memory.iterrows():
            print(f"{r.path:8} {r.rows:9,} {r.features:8} | {r.input_mib:9,.0f} | {r.peak_rss_mib:14,.0f} "
                  f"{r.maxrss_mib:7,.0f} | {r.rss_before_mib:6,.0f} | {r.maxrss_mib - r.rss_before_mib:13,.0f} "
                  f"| {r.maxrss_mib / r.input_mib:12.2f} | {r.chunk_rows:10,} | {r.seconds:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", choices=["memory", "stream", "dask"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=float, nargs="*", default=[1e5, 1e6, 1e7], help="cells of the compared files")
    parser.add_argument("--features", type=int, default=10, help="features of the compared files")
    parser.add_argument("--large", type=int, nargs=3, default=[1_000_000, 100, 20_000], metavar=("ROWS", "FEATURES", "PREFIX"),
                        help="the streamed file and the prefix the network path is measured on")
    parser.add_argument("--full-limit", type=float, default=1200.0,
                        help="seconds the full file may take with the network path (else the guess path)")
    parser.add_argument("--memory", type=int, nargs="*", default=[], metavar="ROWS",
                        help="rows of the files whose streamed peak RSS is measured (guess path)")
    parser.add_argument("--memory-features", type=int, default=100, help="features of those files")
    parser.add_argument("--memory-network", type=int, nargs="*", default=[], metavar="ROWS",
                        help="rows of the files also measured with the network path")
    parser.add_argument("--skip", choices=["compare", "large"], nargs="*", default=[])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for data, outputs and the log")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    global DATA, LOG
    DATA, LOG = args.results / "scale_data", args.results / "scale_impute.jsonl"
    if args.run:
        print(json.dumps(run_one(args.run, args.data, args.model, args.output)))
        return
    if args.report:
        report()
        return
    if args.memory or args.memory_network:
        stream_memory(args.memory, args.memory_features, args.memory_network)
        report()
        return
    if "compare" not in args.skip:
        compare(args.sizes, args.features)
    if "large" not in args.skip:
        stream_large(*args.large, full_limit=args.full_limit)
    report()


if __name__ == "__main__":
    main()

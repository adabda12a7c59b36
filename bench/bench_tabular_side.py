"""Our TabularImputer and MissForest fitted side by side on the same gappy table, in one process,
so that the fit-time ratio is measured under the same load (the issue's target: <= 1.5 x).

    OMP_NUM_THREADS=1 python bench/bench_tabular_side.py --tables wine,cars,iris,penguins,diabetes \\
        --masks mcar:0.3,mar:0.3 --seed 0

Needs the tabular bench environment (``bench/requirements-tabular-peers.txt``).
"""

from __future__ import annotations

import argparse
import warnings

from bench_tabular import ours, score
from tabular_peers import missforest
from tabular_tables import TABLES, hide


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=lambda s: s.split(","), default=list(TABLES))
    parser.add_argument("--masks", type=lambda s: s.split(","), default=["mcar:0.3", "mar:0.3"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # the fit's own advice (guess kept, value dependence) is not a figure
    print("table, mask | ours MAE / accuracy / coverage90 / set coverage90 | MissForest MAE / accuracy | "
          "fit s ours / MissForest (ratio)")
    for table in args.tables:
        truth = TABLES[table]()
        for mask in args.masks:
            gappy, hidden = hide(truth, mask, args.seed)
            mine, peer = ours(gappy, args.seed), missforest(gappy, args.seed)
            a, b = score(truth, hidden, mine), score(truth, hidden, peer)
            print(f"{table} {mask} | {a['mae']:.3f} / {a['accuracy']:.3f} / {a['coverage90']:.3f} / "
                  f"{a['set_coverage90']:.3f} | "
                  f"{b['mae']:.3f} / {b['accuracy']:.3f} | {mine.fit_s:.1f} / {peer.fit_s:.1f} "
                  f"({mine.fit_s / peer.fit_s:.2f})", flush=True)


if __name__ == "__main__":
    main()

"""Wall-clock time of `make train-full`: the shipped recipe trained from nothing.

Runs what the Makefile target runs (``pneumo train --data DATA [--external DIR]``) into a
fresh temporary run folder and model folder, so no cache is reused and the shipped model is
not touched, and writes the minutes with the machine's load to JSON. Budget: 15 minutes on
the 2 cores.

    python benchmarks/bench_train_full.py --data ../shared/data/chest_xray \
        --external ../shared/data/chest_xray_external
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_MINUTES = 15


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/chest_xray")
    parser.add_argument("--external", default=None)
    parser.add_argument("--out", default="benchmarks/results/train_full.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pneumo-bench-train-") as work:
        command = [sys.executable, "-m", "pneumo_helpers.cli", "train", "--data", args.data,
                   "--run-dir", f"{work}/run", "--out", f"{work}/model"]
        if args.external:
            command += ["--external", args.external]
        load = os.getloadavg()[0]
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        minutes = (time.perf_counter() - start) / 60
        record = json.loads((Path(work) / "run" / "train_full.json").read_text())
    result = {"command": "pneumo train --data DATA" + (" --external DIR" if args.external
                                                         else ""),
              "data": args.data, "wall_minutes": round(minutes, 2),
              "training_minutes": record["minutes"], "budget_minutes": BUDGET_MINUTES,
              "within_budget": minutes <= BUDGET_MINUTES,
              "load_average_1min": [round(load, 2), round(os.getloadavg()[0], 2)],
              "cpus": os.cpu_count(), "python": platform.python_version()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

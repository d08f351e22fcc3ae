"""Time one evaluation of a program under the test mocks, in this (fresh) process.

``python3 bench/evaluate.py lab|baseline [--stack lab]`` prints one JSON line: seconds from
before the first import of Pulumi to the end of the run, and how many resources it registered.
Run by ``bench/run.py``, once per sample, so that every sample pays the imports; the baseline
reads the modules to import from ``K8S_LAB_BENCH_MODULES`` (see one_resource_program.py).
"""

import time

START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script, from anywhere

from tools import mocks  # noqa: E402

PROGRAMS = {"lab": None, "baseline": ROOT / "bench" / "one_resource_program.py"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("program", choices=sorted(PROGRAMS))
    parser.add_argument("--stack", default="lab")
    parser.add_argument("--modules-out", type=Path, help="write the modules loaded by the end of the run here")
    args = parser.parse_args()
    run = mocks.run_program(args.stack, program=PROGRAMS[args.program])
    seconds = time.perf_counter() - START
    if args.modules_out:
        # Modules only: skip __main__ and the namespace entries some packages register.
        loaded = sorted(m for m, mod in sys.modules.items() if m != "__main__" and getattr(mod, "__spec__", None))
        args.modules_out.write_text("\n".join(loaded) + "\n")
    print(json.dumps({"seconds": seconds, "resources": len(run.resources)}))


if __name__ == "__main__":
    main()

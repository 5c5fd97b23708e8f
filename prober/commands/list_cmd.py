"""`prober list`: the experiments, the lock APIs and the targets, with why any is unavailable."""

from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from prober.apis import NAMES, get_api
from prober.errors import EXIT_OK
from prober.experiments import load
from prober.run_options import RunOptions, docker_host_option
from prober.targets import registry


def run(*, path: Path | None) -> int:
    experiments = load()
    print(f"Experiments ({len(experiments)}):")
    rows = [(e.id, e.question.strip()) for e in experiments]
    print(tabulate(rows, headers=("id", "question"), tablefmt="plain", maxcolwidths=[None, 90]))
    print("\nLock APIs:")
    apis = [(name, get_api(name).available() or "available") for name in NAMES]
    print(tabulate(apis, tablefmt="plain"))
    print("\nTargets:")
    # The lab targets say whether the user's Docker daemon (DOCKER_HOST) can run them.
    options = RunOptions(docker_host=docker_host_option(None))
    targets = registry.select(",".join(registry.names()), path, options)
    target_rows = [
        (
            t.name,
            "available" if (why := t.unavailable_reason()) is None else "unavailable",
            why or t.description,
        )
        for t in targets
    ]
    print(tabulate(target_rows, tablefmt="plain", maxcolwidths=[None, None, 90]))
    print(f"\nGroups for --fs: {', '.join(registry.group_names())}")
    return EXIT_OK

"""What every bench worker does when run: its result as one JSON line (the last line, which bench/run.py
reads), after its table with ``--table`` (a worker run alone)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any


def run(main: Callable[[], Any], table: Callable[[Any], str]) -> None:
    result = main()
    if "--table" in sys.argv:
        print(table(result))
    print(json.dumps(result))

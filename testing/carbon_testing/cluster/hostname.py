"""``[core] hostname_callable`` for a cluster worker that cannot have a hostname of its own.

Used only where ``unshare --uts`` is not permitted (carbon_testing.cluster picks it at start): each worker gets
``AIRFLOW__CORE__HOSTNAME_CALLABLE=carbon_testing.cluster.hostname.from_env`` and ``CARBON_CLUSTER_HOSTNAME``. Stdlib
only: Airflow imports it in every worker and task process.
"""

from __future__ import annotations

import os
import socket

ENV_VAR = "CARBON_CLUSTER_HOSTNAME"


def from_env() -> str:
    """The worker's name from ``CARBON_CLUSTER_HOSTNAME``, else this machine's hostname."""
    return os.environ.get(ENV_VAR) or socket.gethostname()

"""Layer 7: remote data science. Owners publish datasets (a mock in the store, private
data kept outside it), scientists submit code packages by RPC app ``rds``, owners review,
run them in a sandbox and decide what leaves.

Start from :func:`connect` (the notebook API); ``fedbox dataset``, ``fedbox job`` and
``fedbox serve`` are the same operations on the command line.
"""

from fedbox.rds.client import OwnedJob, Rds, SubmittedJob, connect
from fedbox.rds.datasets import DatasetError
from fedbox.rds.models import DatasetInfo, FileInfo, JobRecord, Manifest
from fedbox.rds.package import PackageError
from fedbox.rds.states import JobState, TransitionError

__all__ = [
    "DatasetError",
    "DatasetInfo",
    "FileInfo",
    "JobRecord",
    "JobState",
    "Manifest",
    "OwnedJob",
    "PackageError",
    "Rds",
    "SubmittedJob",
    "TransitionError",
    "connect",
]

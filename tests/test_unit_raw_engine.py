"""bench.raw_engine sets LMDeploy alone beside a Compare export only when both ran on one machine in one boot."""

import pytest

from bench.raw_engine import same_run_or_exit
from telemetry.machine import boot_id, describe_machine


def test_an_export_of_this_machine_and_boot_is_taken():
    same_run_or_exit({"machine": describe_machine(), "boot_id": boot_id()})


@pytest.mark.parametrize(
    "export",
    [
        {"machine": "Machine: 1 x NVIDIA H100 80GB HBM3", "boot_id": boot_id()},
        {"machine": describe_machine(), "boot_id": "another-boot"},
        {"machine": describe_machine()},  # an export from before boots were recorded
    ],
)
def test_an_export_of_another_machine_or_run_is_refused(export):
    with pytest.raises(SystemExit, match="another machine or before a restart"):
        same_run_or_exit(export)

"""The bench's boot breakdown: phase durations from the phase end times LabHost records."""

from __future__ import annotations

from xen_test_lab.bench import phase_durations


def test_each_phase_lasts_from_the_previous_end_and_the_median_is_taken() -> None:
    boots = [
        {"xen": 2.0, "dom0_kernel": 5.0, "ssh": 6.0},
        {"xen": 2.5, "dom0_kernel": 5.0, "ssh": 7.0},
        {"xen": 3.0, "dom0_kernel": 7.0, "ssh": 7.5},
    ]
    assert phase_durations(boots) == {"xen": 2.5, "dom0_kernel": 3.0, "ssh": 1.0}


def test_no_boots_no_phases() -> None:
    assert phase_durations([]) == {}

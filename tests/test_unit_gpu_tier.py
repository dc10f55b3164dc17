"""The gpu tier's runner: its verdict and what it reads back from pytest's reports."""

import subprocess
import sys

from tests.run_gpu_tier import by_cases, crowded_out, outcomes, report

PASSED = ("passed", "")


def test_a_failed_case_fails_the_tier(tmp_path):
    assert report({"t.py::a": PASSED, "t.py::b": ("failed", "boom")}, {"t.py::a", "t.py::b"}, tmp_path) == 1


def test_a_collected_case_that_never_ran_fails_the_tier(tmp_path, capsys):
    assert report({"t.py::a": PASSED}, {"t.py::a", "t.py::b"}, tmp_path) == 1
    assert "NOT RUN  t.py::b" in capsys.readouterr().out


def test_a_tier_of_skips_fails_and_says_why(tmp_path, capsys):
    assert report({"t.py::a": ("skipped", "no TurboMind")}, {"t.py::a"}, tmp_path) == 1
    out = capsys.readouterr().out
    assert "SKIPPED  t.py::a  (no TurboMind)" in out and "ran no test" in out


def test_passes_with_expected_failures_and_skips(tmp_path):
    results = {"t.py::a": PASSED, "t.py::b": ("xfailed", "135M model"), "t.py::c": ("skipped", "one GPU")}
    assert report(results, set(results), tmp_path) == 0


def test_only_cases_that_ran_out_of_gpu_memory_are_run_again_alone():
    results = {
        "t.py::oom": ("failed", "LMDeploy could not load m: OutOfMemoryError: CUDA out of memory. Tried to allocate"),
        "t.py::wrong": ("failed", "assert '5' in 'four'"),
        "t.py::ok": PASSED,
        "t.py::known": ("xfailed", "out of memory on a small card"),
    }
    assert crowded_out(results) == ["t.py::oom"]


def test_a_case_run_again_alone_is_named_so_and_judged_by_that_run(tmp_path, capsys):
    results = {"t.py::a": PASSED, "t.py::oom": PASSED}
    assert report(results, set(results), tmp_path, retried=["t.py::oom"]) == 0
    assert "PASSED   t.py::oom  [ran out of GPU memory beside other engines; this is its run alone]" in (
        capsys.readouterr().out
    )
    assert report({**results, "t.py::oom": ("failed", "out of memory")}, set(results), tmp_path, ["t.py::oom"]) == 1


def test_files_with_most_cases_start_first():
    nodes = {"tests/x.py::a", "tests/y.py::a", "tests/y.py::b[1]", "tests/y.py::b[2]", "tests/z.py::a"}
    assert by_cases(nodes) == ["tests/y.py", "tests/x.py", "tests/z.py"]


def test_outcomes_read_from_a_real_pytest_report(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_ok(): pass\n"
        "@pytest.mark.parametrize('n', [1])\n"
        "def test_bad(n): assert n == 2\n"
        "@pytest.mark.skip(reason='needs a GPU')\n"
        "def test_skipped(): pass\n"
        "@pytest.mark.xfail(reason='known')\n"
        "def test_known(): assert False\n"
    )
    junit = tmp_path / "report.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", "test_sample.py"]
    subprocess.run(command, cwd=tmp_path, capture_output=True)
    found = outcomes(junit)
    assert {node: outcome for node, (outcome, _) in found.items()} == {
        "test_sample.py::test_ok": "passed",
        "test_sample.py::test_bad[1]": "failed",
        "test_sample.py::test_skipped": "skipped",
        "test_sample.py::test_known": "xfailed",
    }
    assert found["test_sample.py::test_skipped"][1] == "needs a GPU"

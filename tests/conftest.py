"""The tests' import path, and the edit loop: `pytest -m "not slow"` leaves out the tests marked
slow below and runs each property test on the `fast` hypothesis profile's few examples;
`python -m pytest tests` (scripts/test.sh) runs everything, each test with its own settings."""

import sys
from pathlib import Path

import pytest
from hypothesis import settings

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))

# No example may fail for the time it took: hypothesis's default deadline (200 ms an example)
# is wall time, which a loaded machine (load average 20) exceeds in any test.
settings.register_profile("qmmar", deadline=None)
settings.load_profile("qmmar")
settings.register_profile("fast", settings.get_profile("qmmar"), max_examples=10)
"""At most this many examples for every property test, whatever its own @settings says.
Loaded by `-m "not slow"`, or named: `--hypothesis-profile=fast`."""

SLOW = {
    # whole modules: most of their tests start processes, compilers or a browser
    "tests/test_torch_compile.py": "torch.compile and ranks as threads/processes; one setup takes minutes",
    "tests/test_torch_backend.py": "Dynamo traces and the fused op's kernels, per graph",
    "tests/test_torch_cli.py": "each test exports a torch program and runs qmmar-import as a process",
    "tests/test_torch_run_cli.py": "exports torch programs and runs them with qmmar-run",
    "tests/test_mpi.py": "mpiexec starts ranks as processes, each importing qmmar",
    "tests/test_llama_w8a8.py": "builds transformers models, exports and interprets them, and compiles them on "
                                "gloo ranks as processes; minutes",
    "tests/test_sequence_parallel.py::test_under_mpiexec_the_fused_program_computes_the_threaded_bits": "mpiexec",
    "tests/test_sequence_parallel.py::test_the_fused_example_lowers_compiles_and_runs_under_the_recording_runtime":
        "compiles the emitted C++ with g++, AddressSanitizer and UBSan",
    "tests/test_torch_sequence_parallel.py::test_the_documented_command_line_fuses_both_chains":
        "the example script, qmmar-import and qmmar-opt as processes",
    "tests/test_torch_sequence_parallel.py::test_under_mpiexec_the_fused_program_computes_the_threaded_unfused_bits":
        "mpiexec starts W ranks as processes, each importing torch",
    "tests/test_torch_sequence_parallel.py::test_torch_compile_runs_both_chains_as_custom_ops_bit_for_bit":
        "torch.compile on W gloo processes",
    "tests/test_aclnn_cpp.py": "compiles the emitted C++ with g++, AddressSanitizer and UBSan",
    "tests/test_aclnn_cpp_placement.py": "compiles the arena placement with g++ and AddressSanitizer",
    "tests/test_aclnn_cpp_a3.py": "compiles the emitted C++ with g++, AddressSanitizer and UBSan",
    "tests/test_a3_form.py::test_under_mpiexec_the_a3_form_computes_the_threaded_bits": "mpiexec",
    "tests/test_torch_a3_op.py::test_the_cpu_kernel_is_the_interpreters_a3_form": "gloo processes",
    "tests/test_packaging.py": "builds the wheel",
    "tests/test_lowering_generated.py": "generated programs through fusion, both lowerings and g++, minutes",
    "tests/test_lowering_total.py": "g++ on each lowered program",
    "tests/test_tools_cli.py": "every console script started as a process, several times each",
    "tests/test_cli.py": "the console scripts as processes",
    "tests/test_run_cli.py": "qmmar-run as a process, per case",
    "tests/test_compare_cli.py": "qmmar-run and qmmar-compare as processes",
    "tests/test_run_progress.py": "qmmar-run as a process, waiting for its progress lines",
    "tests/test_report.py": "Graphviz and headless Chromium as processes, per report",
    # single tests
    "tests/test_source.py::test_every_16_bit_value_round_trips_in_lists_and_splats": "all 65536 values",
    "tests/test_source.py::test_every_16_bit_pattern_written_by_mlir_is_read_as_those_bits": "all 65536 values",
    "tests/test_opt_cli.py::test_every_bad_input_is_exit_1_and_one_located_line": "qmmar-opt as a process",
    "tests/test_opt_cli.py::test_an_unwritable_output_is_named": "qmmar-opt as a process",
    "tests/test_opt_cli.py::test_deep_nesting_is_one_located_line": "qmmar-opt as a process",
    "tests/test_opt_cli.py::test_a_failing_pass_is_one_located_line": "qmmar-opt as a process",
    "tests/test_opt_cli.py::test_errors_on_standard_input_are_located_in_stdin": "qmmar-opt as a process",
    "tests/test_opt_cli.py::test_help_leads_with_qmmars_passes_and_options": "qmmar-opt as a process",
    "tests/test_opt_cli.py::test_startup_builds_no_help_and_imports_no_pass": "qmmar-opt as a process",
    "tests/test_opt_cli.py::test_print_include_dir_holds_the_headers": "qmmar-opt as a process",
    "tests/test_ideal.py::test_the_cli_prints_the_figures_and_stores_them": "qmmar-run as a process",
    "tests/test_gemm.py::test_torch_is_loaded_only_by_a_large_gemm": "a process that imports torch",
    "tests/test_gemm.py::test_without_torch_the_f32_path_is_chosen": "a process that hides torch",
}  # fmt: skip
"""Test modules (tests/x.py) or tests (tests/x.py::name), each with why it is slow: the ones
`pytest --durations` showed at 3 s and more, by module where most of a module's tests were.
Property tests are not here: the fast profile makes them quick."""


def pytest_configure(config: pytest.Config) -> None:
    for node in SLOW:
        module, _, name = node.partition("::")
        path = TESTS.parent / module
        if not path.is_file() or (name and f"def {name}(" not in path.read_text()):
            raise pytest.UsageError(f"tests/conftest.py: SLOW names {node}, which does not exist")
    if "not slow" in config.option.markexpr and not config.getoption("--hypothesis-profile"):
        settings.load_profile("fast")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    fast = settings.get_current_profile_name() == "fast"
    cap = settings.get_profile("fast").max_examples
    for item in items:
        if item.nodeid.split("::")[0] in SLOW or item.nodeid.split("[")[0] in SLOW:
            item.add_marker(pytest.mark.slow)
        test = getattr(item, "obj", None)
        if fast and getattr(test, "is_hypothesis_test", False):
            # @given reads the settings it runs with from this attribute at each call
            # (hypothesis 6.x core.py: wrapped_test._hypothesis_internal_use_settings).
            own = test._hypothesis_internal_use_settings
            test._hypothesis_internal_use_settings = settings(own, max_examples=min(own.max_examples, cap))

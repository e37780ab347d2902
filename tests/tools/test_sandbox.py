"""The python tool's sandbox: each way out is contained, with a clear result (limits lowered
so the suite stays quick; the fork bomb meets RLIMIT_NPROC before it can hurt the machine)."""

from __future__ import annotations

from magimac.tools.sandbox import SandboxLimits, run_python

LIMITS = SandboxLimits(time_s=2.0, memory_bytes=256 << 20, output_bytes=4096, processes=8)


def run(code: str):
    return run_python(code, LIMITS)


def test_prints_come_back_stripped_and_errors_are_one_line():
    assert run("print(347 * 29)\n").output == "10063"
    r = run("1 / 0")
    assert (r.output, r.error) == (None, "ZeroDivisionError: division by zero")


def test_an_endless_loop_meets_the_time_limit():
    r = run("while True:\n    pass")
    assert r.error == "time limit of 2 s reached" and 2 <= r.seconds < 5


def test_a_huge_allocation_meets_the_memory_limit():
    r = run("x = bytearray(8 << 30)")
    assert r.error == "memory limit of 256 MiB reached (MemoryError)"


def test_megabytes_of_output_are_cut_at_the_cap():
    r = run("import sys\nwhile True:\n    sys.stdout.write('y' * 100000)")
    assert r.error is None and r.output == "y" * 4096 + "\n[output cut at 4 KiB]"


def test_a_fork_bomb_is_stopped_by_the_process_limit():
    r = run("import os\nwhile True:\n    os.fork()")
    assert r.error is not None and ("Resource temporarily unavailable" in r.error or "time limit" in r.error)


def test_the_folder_is_fresh_and_home_points_there():
    r = run("import os\nprint(os.getcwd() == os.environ['HOME'], sorted(os.listdir('.')))")
    assert r.output == "True ['main.py']"


def test_a_cancel_stops_a_running_program_at_once():
    import threading
    import time

    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    start = time.monotonic()
    r = run_python("import time\ntime.sleep(30)", LIMITS, cancel=cancel)
    assert r.error == "cancelled" and time.monotonic() - start < 1.5


def test_attached_documents_are_the_files_the_code_sees(tmp_path):
    from magimac.core.events import ToolCall
    from magimac.tools.toolbox import Toolbox

    doc = tmp_path / "data.csv"
    doc.write_text("a,b\n1,2\n")
    code = "import os\nprint(sorted(os.listdir('.')), open('data.csv').read().split()[1])"
    call = ToolCall("c00000001", "python", {"code": code}, "")
    assert Toolbox(("python",), LIMITS).run(call, [str(doc)]).output == "['data.csv', 'main.py'] 1,2"


def test_what_a_run_printed_before_its_time_limit_reaches_the_model():
    from magimac.core.events import ToolResult

    r = run("import time\nprint('started', flush=True)\nwhile True:\n    time.sleep(0.05)")
    assert (r.output, r.error) == ("started", "time limit of 2 s reached")
    content = ToolResult("c1", "python", r.output, r.error).content
    assert content == "error: time limit of 2 s reached; what it printed until then:\nstarted"
